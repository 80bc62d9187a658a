/** Turns schema issues into `path: message` lines an operator can act on. */
import type { z } from 'zod';

export interface ConfigProblem {
  /** `services[2].realservers[0].address`, or '' for the whole file. */
  path: string;
  message: string;
  /** 1-based line in the file where the offending value is, when known. */
  line?: number;
  /** The path as keys, for locating the value in the source file. */
  keys?: PropertyKey[];
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    // Keys that are empty or not identifiers (typos, stray punctuation) are quoted so the path still shows them.
    else if (!/^[A-Za-z_][\w-]*$/.test(String(p))) out += `[${JSON.stringify(String(p))}]`;
    else out += out ? `.${String(p)}` : String(p);
  }
  return out;
}

export function problemsFromIssues(issues: readonly z.core.$ZodIssue[]): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  for (const i of issues) {
    if (i.code === 'unrecognized_keys') {
      for (const k of i.keys) out.push({ path: formatPath([...i.path, k]), message: 'unknown setting', keys: [...i.path, k] });
    } else if (i.code === 'invalid_type' && /received undefined$/.test(i.message)) {
      out.push({ path: formatPath(i.path), message: `required (${i.expected})`, keys: i.path });
    } else {
      out.push({ path: formatPath(i.path), message: i.message, keys: i.path });
    }
  }
  return out;
}

export function formatProblem(file: string | undefined, p: ConfigProblem): string {
  const where = file ? `${file}${p.line ? `:${p.line}` : ''}: ` : '';
  return `${where}${p.path ? `${p.path}: ` : ''}${p.message}`;
}
