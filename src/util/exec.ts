import { spawn } from 'node:child_process';

export interface ExecResult {
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  durationMs: number;
}

export interface ExecOptions {
  /** Kill the child (SIGKILL) after this many milliseconds. Required: nothing we spawn may hang. */
  timeoutMs: number;
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Cap on captured output per stream; the rest is dropped so a chatty tool cannot grow memory. */
  maxOutputBytes?: number;
}

export class ExecError extends Error {
  constructor(
    readonly command: string,
    readonly result: ExecResult,
  ) {
    const why = result.signal ? `killed by ${result.signal}` : `exit ${result.code}`;
    const detail = result.stderr.trim().split('\n').slice(-3).join('; ');
    super(`${command}: ${why}${detail ? `: ${detail}` : ''}`);
    this.name = 'ExecError';
  }
}

/** Runs a program without a shell, with a hard timeout; the child is always reaped. */
export function exec(file: string, args: readonly string[], opts: ExecOptions): Promise<ExecResult> {
  const max = opts.maxOutputBytes ?? 64 * 1024 * 1024;
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
      cwd: opts.cwd,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outLen = 0;
    let errLen = 0;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs);
    child.stdout.on('data', (b: Buffer) => {
      if (outLen < max) out.push(b);
      outLen += b.length;
    });
    child.stderr.on('data', (b: Buffer) => {
      if (errLen < max) err.push(b);
      errLen += b.length;
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stderr = Buffer.concat(err).toString('utf8');
      resolve({
        code: code ?? -1,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: timedOut ? `${stderr}\ntimeout after ${opts.timeoutMs} ms` : stderr,
        durationMs: performance.now() - started,
      });
    });
    child.stdin.on('error', () => {
      /* the child may exit before reading its input; its exit status tells what happened */
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** Like exec, but rejects with an ExecError naming the command unless it exits 0. */
export async function run(file: string, args: readonly string[], opts: ExecOptions): Promise<ExecResult> {
  const r = await exec(file, args, opts);
  if (r.code !== 0) throw new ExecError(`${file} ${args.join(' ')}`, r);
  return r;
}
