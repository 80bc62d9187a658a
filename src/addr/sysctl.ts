/**
 * Applies kernel settings through /proc/sys (no process to spawn, and interface names with dots,
 * like VLAN eth0.100, need no escaping there as they would for sysctl(8)).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join, normalize } from 'node:path';
import type { SysctlSetting } from './plan.js';

export interface SysctlResult extends SysctlSetting {
  /** Value before vipd wrote it; undefined when unreadable (interface absent). */
  before?: number;
  changed: boolean;
  error?: string;
}

async function readNumber(file: string): Promise<number | undefined> {
  try {
    const n = Number.parseInt((await readFile(file, 'utf8')).trim(), 10);
    return Number.isNaN(n) ? undefined : n;
  } catch {
    return undefined;
  }
}

/** Writes each setting that differs; never throws: a setting that fails is reported with its error. */
export async function applySysctls(settings: readonly SysctlSetting[], root = '/proc/sys'): Promise<SysctlResult[]> {
  const out: SysctlResult[] = [];
  for (const s of settings) {
    const file = normalize(join(root, s.path));
    if (!file.startsWith(`${normalize(root)}/`) || s.path.includes('..')) {
      out.push({ ...s, changed: false, error: 'path outside /proc/sys' });
      continue;
    }
    const before = await readNumber(file);
    if (before === s.value) {
      out.push({ ...s, before, changed: false });
      continue;
    }
    try {
      await writeFile(file, `${s.value}\n`);
      out.push({ ...s, before, changed: true });
    } catch (e) {
      out.push({ ...s, before, changed: false, error: (e as Error).message });
    }
  }
  return out;
}
