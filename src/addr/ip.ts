/** iproute2 effects for VIP addresses: every call is one `ip` process with a timeout. */
import { exec, run } from '../util/exec.js';
import { parseIpAddr, type CurrentAddress } from './plan.js';

export interface IpOptions {
  /** The iproute2 binary; busybox `ip` has no `-j` and no `-batch`. */
  binary?: string;
  timeoutMs?: number;
}

/** Per line of a batch: the kernel's error, when the line failed. */
export interface BatchOutcome {
  errors: Map<number, string>;
}

/**
 * Splits `ip -force -batch` stderr into per-line errors. ip prints the error text first and then
 * `Command failed -:N` naming the 1-based line, so text before that marker belongs to line N.
 */
export function parseBatchErrors(stderr: string): Map<number, string> {
  const errors = new Map<number, string>();
  let pending: string[] = [];
  for (const raw of stderr.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    const m = /^Command failed (?:-|\S+):(\d+)$/.exec(line);
    if (m) {
      errors.set(Number(m[1]), pending.join('; ') || 'failed');
      pending = [];
    } else {
      pending.push(line.replace(/^Error: /, ''));
    }
  }
  return errors;
}

export class IpCommand {
  private readonly binary: string;
  private readonly timeoutMs: number;

  constructor(opts: IpOptions = {}) {
    this.binary = opts.binary ?? 'ip';
    this.timeoutMs = opts.timeoutMs ?? 5000;
  }

  get path(): string {
    return this.binary;
  }

  async addresses(): Promise<CurrentAddress[]> {
    const r = await run(this.binary, ['-j', 'addr', 'show'], { timeoutMs: this.timeoutMs });
    return parseIpAddr(r.stdout || '[]');
  }

  /** Runs all lines in one process; `-force` goes on after a failed line so one bad VIP blocks no other. */
  async batch(lines: readonly string[]): Promise<BatchOutcome> {
    if (lines.length === 0) return { errors: new Map() };
    const r = await exec(this.binary, ['-force', '-batch', '-'], { timeoutMs: this.timeoutMs, input: `${lines.join('\n')}\n` });
    if (r.signal) throw new Error(`ip -batch: killed by ${r.signal}: ${r.stderr.trim()}`);
    return { errors: parseBatchErrors(r.stderr) };
  }

  async linkExists(name: string): Promise<boolean> {
    const r = await exec(this.binary, ['-j', 'link', 'show', 'dev', name], { timeoutMs: this.timeoutMs });
    return r.code === 0;
  }

  /** Creates and raises a dummy interface; false when the kernel has no dummy driver. */
  async ensureDummy(name: string): Promise<boolean> {
    if (!(await this.linkExists(name))) {
      const r = await exec(this.binary, ['link', 'add', name, 'type', 'dummy'], { timeoutMs: this.timeoutMs });
      if (r.code !== 0) return false;
    }
    await run(this.binary, ['link', 'set', name, 'up'], { timeoutMs: this.timeoutMs });
    return true;
  }

  /** The source address the kernel would use towards `dest` (how that peer sees us). */
  async routeSource(dest: string): Promise<string | undefined> {
    const r = await exec(this.binary, ['-j', 'route', 'get', dest], { timeoutMs: this.timeoutMs });
    if (r.code !== 0) return undefined;
    const doc: unknown = JSON.parse(r.stdout || '[]');
    if (!Array.isArray(doc)) return undefined;
    const first: unknown = doc[0];
    if (typeof first !== 'object' || first === null || !('prefsrc' in first)) return undefined;
    return typeof first.prefsrc === 'string' ? first.prefsrc : undefined;
  }
}
