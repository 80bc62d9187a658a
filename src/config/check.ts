/** `check-config`: validates files and reports every problem with its path, never a stack trace. */
import { formatProblem } from './errors.js';
import { loadConfig } from './load.js';

export interface CheckReport {
  file: string;
  ok: boolean;
  version?: string;
  problems: string[];
}

export function checkConfigFiles(files: readonly string[]): CheckReport[] {
  return files.map((file) => {
    // Only the file is checked: environment and command-line layers belong to a running daemon.
    const r = loadConfig({ file, env: {} });
    return r.ok
      ? { file, ok: true, version: r.version, problems: [] }
      : { file, ok: false, problems: r.problems.map((p) => formatProblem(file, p)) };
  });
}

/** Prints a report (text or JSON) and returns the process exit code: 0 all valid, 1 otherwise. */
export function printCheckReport(reports: readonly CheckReport[], json: boolean, out: NodeJS.WritableStream = process.stdout): number {
  if (json) out.write(`${JSON.stringify({ files: reports }, null, 2)}\n`);
  else {
    for (const r of reports) {
      if (r.ok) out.write(`${r.file}: OK (version ${r.version})\n`);
      else for (const p of r.problems) out.write(`${p}\n`);
    }
  }
  return reports.every((r) => r.ok) ? 0 : 1;
}
