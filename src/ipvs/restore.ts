/**
 * One long-lived `ipvsadm -R` that applies batch after batch: a batch costs writing its lines
 * to a pipe, not a process start (fork and exec of ipvsadm is most of a one-line change's cost,
 * tens of ms on a busy or emulated host).
 *
 * ipvsadm -R executes each line as it reads it and prints kernel errors on stderr without
 * stopping. Each batch ends with a line ipvsadm cannot parse and answers on stderr at once,
 * `-Z --vipd-sync-N` ("--vipd-sync-N: unknown option"): no kernel call, no side effect. When
 * that answer arrives every line before it has been executed, and whatever stderr carried
 * since the previous marker is this batch's errors. A batch that outlives its timeout kills
 * the process; one that dies (ipvsadm exits on a malformed line) fails its batch; either way
 * the next batch starts a fresh one.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { once } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import type { ExecResult } from '../util/exec.js';

/** Applies batches of restore lines; resolves with what that batch printed on stderr. */
export interface RestoreSession {
  run(input: Iterable<string>, opts: { timeoutMs: number }): Promise<ExecResult>;
  /** The running process (none between processes, or for a simulated kernel). */
  readonly pid: number | undefined;
  /** Ends the process (EOF on its stdin, SIGKILL if it lingers); a later run() starts another. */
  close(): Promise<void>;
}

const STDERR_CAP = 1 << 20;
const CLOSE_GRACE_MS = 2000;
const MARKER = /^--vipd-sync-(\d+): /;

type Child = ChildProcessByStdio<Writable, null, Readable>;

interface Batch {
  seq: number;
  errors: string[];
  bytes: number;
  finish: (r: { code: number; signal: NodeJS.Signals | null; extra?: string }) => void;
}

class Process {
  readonly exited: Promise<[number | null, NodeJS.Signals | null]>;
  batch?: Batch;
  private partial = '';
  alive = true;

  constructor(readonly child: Child) {
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => this.stderr(s));
    child.stdin.on('error', () => {
      /* the process died mid-write; its exit says why */
    });
    this.exited = new Promise((resolve) => {
      child.once('error', () => resolve([null, null]));
      child.once('close', (code, signal) => resolve([code, signal]));
    });
    void this.exited.then(([code, signal]) => {
      this.alive = false;
      this.batch?.finish({ code: code ?? -1, signal, extra: code === 0 && !signal ? 'ipvsadm -R exited before the batch ended' : undefined });
    });
  }

  private stderr(s: string): void {
    this.partial += s;
    let nl;
    while ((nl = this.partial.indexOf('\n')) >= 0) {
      const line = this.partial.slice(0, nl);
      this.partial = this.partial.slice(nl + 1);
      const b = this.batch;
      const m = MARKER.exec(line);
      if (m) {
        if (b && Number(m[1]) === b.seq) b.finish({ code: 0, signal: null });
        continue;
      }
      if (b && b.bytes < STDERR_CAP) {
        b.errors.push(line);
        b.bytes += line.length + 1;
      }
    }
    // A line without end is not kept whole: its tail still shows a marker that follows it.
    if (this.partial.length > STDERR_CAP) this.partial = this.partial.slice(-1024);
  }
}

/** The session on the real system: `ipvsadm` spawned with `args` (['-R']). */
export class IpvsadmRestore implements RestoreSession {
  private proc?: Process;
  private seq = 0;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly file: string,
    private readonly args: readonly string[] = ['-R'],
  ) {}

  /** The running process's pid (diagnostics and tests). */
  get pid(): number | undefined {
    return this.proc?.alive ? this.proc.child.pid : undefined;
  }

  run(input: Iterable<string>, opts: { timeoutMs: number }): Promise<ExecResult> {
    return this.serial(() => this.runOne(input, opts));
  }

  /** Batches and close() one at a time, in call order. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.chain.then(fn);
    this.chain = p.catch(() => undefined);
    return p;
  }

  private async spawn(): Promise<Process> {
    // A process whose stdin broke is on its way out: never handed another batch.
    if (this.proc?.alive && !this.proc.child.stdin.destroyed) return this.proc;
    const child = spawn(this.file, this.args, { stdio: ['pipe', 'ignore', 'pipe'] });
    const proc = new Process(child);
    // A missing binary fails here, before any line is written.
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    this.proc = proc;
    return proc;
  }

  private async runOne(input: Iterable<string>, opts: { timeoutMs: number }): Promise<ExecResult> {
    const started = performance.now();
    const proc = await this.spawn();
    const seq = ++this.seq;
    let timedOut = false;
    const done = new Promise<{ code: number; signal: NodeJS.Signals | null; extra?: string }>((finish) => {
      proc.batch = { seq, errors: [], bytes: 0, finish };
    });
    const batch = proc.batch as Batch;
    const timer = setTimeout(() => {
      timedOut = true;
      proc.child.kill('SIGKILL');
    }, opts.timeoutMs);
    try {
      const stdin = proc.child.stdin;
      // Fed as produced: a cold sync's 200,000 lines are never held as one string.
      for (const chunk of withMarker(input, seq)) {
        if (!proc.alive || timedOut || stdin.destroyed) break;
        // A process dying mid-batch breaks the pipe: its exit, awaited below, says why.
        if (!stdin.write(chunk)) await Promise.race([once(stdin, 'drain').catch(() => undefined), done]);
      }
      const r = await done;
      const stderr = [...batch.errors, ...(r.extra ? [r.extra] : []), ...(timedOut ? [`timeout after ${opts.timeoutMs} ms`] : [])].join('\n');
      if (r.code !== 0 || r.signal || batch.errors.length) await this.discard(proc);
      return { code: r.code, signal: r.signal, stdout: '', stderr, durationMs: performance.now() - started };
    } finally {
      clearTimeout(timer);
      proc.batch = undefined;
    }
  }

  /** After a failure the process starts afresh: nothing of a bad batch can reach the next one. */
  private async discard(proc: Process): Promise<void> {
    if (this.proc === proc) this.proc = undefined;
    if (!proc.alive) return;
    proc.child.stdin.end();
    const grace = setTimeout(() => proc.child.kill('SIGKILL'), CLOSE_GRACE_MS);
    await proc.exited;
    clearTimeout(grace);
  }

  close(): Promise<void> {
    return this.serial(async () => {
      if (this.proc) await this.discard(this.proc);
    });
  }
}

function* withMarker(input: Iterable<string>, seq: number): Generator<string> {
  yield* input;
  yield `-Z --vipd-sync-${seq}\n`;
}
