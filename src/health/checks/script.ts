/**
 * Script check: runs a program (absolute path, no shell, no PATH lookup) with its arguments;
 * exit 0 is up. The program learns the target from VIPD_CHECK_ADDRESS and VIPD_CHECK_PORT.
 */
import type { CheckConfig } from '../../config/schema.js';
import { exec } from '../../util/exec.js';
import type { Checker, CheckOutcome, Target } from '../types.js';
import { abortReason, errorReason, fail } from './common.js';

type ScriptCheckConfig = Extract<CheckConfig, { type: 'script' }>;

/** Output kept from a script: enough for a one-line reason, never a memory risk. */
const OUTPUT_LIMIT = 4096;

function firstLine(s: string): string {
  const line = s.trim().split('\n', 1)[0] ?? '';
  return line.length > 80 ? `${line.slice(0, 80)}…` : line;
}

export class ScriptChecker implements Checker {
  constructor(private readonly cfg: ScriptCheckConfig) {}

  async run(target: Target, signal: AbortSignal): Promise<CheckOutcome> {
    if (signal.aborted) return fail(abortReason(signal));
    const { command, args, timeout } = this.cfg;
    try {
      // exec kills the child (SIGKILL) at the check timeout, so waiting for it out here, even
      // past an abort, keeps to one run per target and never leaves a process behind.
      const r = await exec(command, args, {
        timeoutMs: timeout,
        maxOutputBytes: OUTPUT_LIMIT,
        env: { ...process.env, VIPD_CHECK_ADDRESS: target.address, VIPD_CHECK_PORT: String(target.port) },
      });
      if (r.code === 0 && !r.signal) return { ok: true, reason: 'exit 0' };
      if (r.signal === 'SIGKILL' && r.durationMs >= timeout - 1) return fail(`timeout after ${timeout} ms`);
      const why = r.signal ? `killed by ${r.signal}` : `exit ${r.code}`;
      const said = firstLine(r.stderr) || firstLine(r.stdout);
      return fail(said ? `${why}: ${said}` : why);
    } catch (e) {
      return fail(errorReason(e));
    }
  }
}
