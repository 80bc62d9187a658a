/**
 * The only part of the IPVS subsystem that touches the kernel: reads the table through
 * ipvsadm and /proc, applies batches through one long-lived `ipvsadm -R` (restore.ts), flushes
 * conntrack entries. Every spawn and batch has a timeout. It decides nothing: manager.ts says
 * what to read and apply.
 */
import { access, readFile, writeFile } from 'node:fs/promises';
import { exec, type ExecOptions, type ExecResult } from '../util/exec.js';
import { type Dest, type KernelTable, type ServiceKey } from './model.js';
import { parseList, parseProcCounts, type ConnCounts, type Listing, type Stats } from './parse.js';
import type { Op } from './plan.js';
import { renderOp, serviceArgs } from './render.js';
import { IpvsadmRestore, type RestoreSession } from './restore.js';

/** How the subsystem reaches the system; tests substitute a simulated kernel. */
export interface Runner {
  exec(file: string, args: readonly string[], opts: ExecOptions): Promise<ExecResult>;
  /** A long-lived `ipvsadm -R` (restore.ts) that applies batch after batch. */
  restore(ipvsadm: string): RestoreSession;
  readFile(path: string): Promise<string>;
  writeFile(path: string, data: string): Promise<void>;
  exists(path: string): Promise<boolean>;
}

export const systemRunner: Runner = {
  exec,
  restore: (ipvsadm) => new IpvsadmRestore(ipvsadm),
  readFile: (path) => readFile(path, 'utf8'),
  writeFile: (path, data) => writeFile(path, data),
  exists: (path) => access(path).then(
    () => true,
    () => false,
  ),
};

export interface KernelTimeouts {
  /** A full table read; grows with the table (see readTimeout). */
  readMs: number;
  /** `ipvsadm -R`: base plus a share per operation. */
  applyBaseMs: number;
  applyPerOpMs: number;
  /** conntrack, modprobe and single-service reads. */
  toolMs: number;
}

export const DEFAULT_TIMEOUTS: KernelTimeouts = { readMs: 120_000, applyBaseMs: 30_000, applyPerOpMs: 5, toolMs: 30_000 };

/** A tool that failed or said something on stderr; `command` names what was run. */
export class KernelError extends Error {
  constructor(
    readonly command: string,
    readonly result: ExecResult | undefined,
    why: string,
  ) {
    super(`${command}: ${why}`);
    this.name = 'KernelError';
  }
}

export interface DestCounters extends ConnCounts {
  stats?: Stats;
}

export interface ServiceCounters {
  stats?: Stats;
  dests: Map<string, DestCounters>;
}

/** Below this many services, counts are read per service (cost independent of the table). */
const PER_SERVICE_READS = 4;

export class Kernel {
  /** Destinations in the last full read, to scale the next read's timeout. */
  private lastSize = 0;
  private readonly restore: RestoreSession;

  constructor(
    private readonly ipvsadm: string,
    private readonly conntrack: string,
    private readonly runner: Runner,
    private readonly timeouts: KernelTimeouts = DEFAULT_TIMEOUTS,
  ) {
    this.restore = runner.restore(ipvsadm);
  }

  /** Ends the restore process (vipd stopping); a later apply() starts another. */
  close(): Promise<void> {
    return this.restore.close();
  }

  private readTimeout(): number {
    // Under emulation a 200,000-destination listing takes ~10 s; allow 1 ms per destination.
    return Math.max(this.timeouts.readMs, this.lastSize);
  }

  private async list(args: readonly string[], timeoutMs: number): Promise<Listing> {
    const command = `${this.ipvsadm} ${args.join(' ')}`;
    const r = await this.runner.exec(this.ipvsadm, args, { timeoutMs });
    if (r.code !== 0) throw new KernelError(command, r, failure(r));
    try {
      return parseList(r.stdout);
    } catch (e) {
      throw new KernelError(command, r, `unreadable output: ${(e as Error).message}`);
    }
  }

  /**
   * The whole table with every attribute, destinations in add order. Two listings (weights and
   * thresholds: ipvsadm prints them in different layouts), read concurrently.
   */
  async read(): Promise<KernelTable> {
    const t = this.readTimeout();
    const [main, thr] = await Promise.all([
      this.list(['-Ln', '--exact', '--nosort'], t),
      this.list(['-Ln', '--exact', '--nosort', '--thresholds'], t),
    ]);
    const thresholds = new Map<string, Map<string, { upper: number; lower: number }>>();
    for (const s of thr.services) {
      thresholds.set(s.spec.id, new Map(s.dests.map((d) => [d.id, { upper: d.upper ?? 0, lower: d.lower ?? 0 }])));
    }
    const table: KernelTable = new Map();
    let size = 0;
    for (const s of main.services) {
      const dests = new Map<string, Dest>();
      const thrOf = thresholds.get(s.spec.id);
      // Listed newest first; the model keeps add order.
      for (let i = s.dests.length - 1; i >= 0; i--) {
        const d = s.dests[i];
        if (!d || d.fwd === undefined || d.weight === undefined) continue;
        const th = thrOf?.get(d.id);
        dests.set(d.id, { id: d.id, address: d.address, port: d.port, fwd: d.fwd, weight: d.weight, upper: th?.upper ?? 0, lower: th?.lower ?? 0 });
      }
      size += dests.size;
      table.set(s.spec.id, { spec: s.spec, dests });
    }
    this.lastSize = size;
    return table;
  }

  /**
   * Active and inactive connection counts of the given services' destinations. A few services:
   * one `ipvsadm -Ln` each, whose cost does not grow with the table; many: one read of
   * /proc/net/ip_vs for all.
   */
  async counts(keys: readonly ServiceKey[]): Promise<Map<string, Map<string, ConnCounts>>> {
    if (keys.length > PER_SERVICE_READS) {
      try {
        return parseProcCounts(await this.runner.readFile('/proc/net/ip_vs'));
      } catch (e) {
        throw new KernelError('read /proc/net/ip_vs', undefined, (e as Error).message);
      }
    }
    const out = new Map<string, Map<string, ConnCounts>>();
    await Promise.all(
      keys.map(async (key) => {
        const r = await this.list(['-Ln', '--exact', ...serviceArgs(key)], this.timeouts.toolMs).catch((e: unknown) => {
          // The service is gone (deleted behind vipd's back): nothing to count.
          if (e instanceof KernelError && /No such service/i.test(e.result?.stderr ?? '')) return undefined;
          throw e;
        });
        for (const s of r?.services ?? []) {
          out.set(s.spec.id, new Map(s.dests.map((d) => [d.id, d.counts ?? { active: 0, inactive: 0 }])));
        }
      }),
    );
    return out;
  }

  /** Connection counts and traffic counters of the whole table, for status. */
  async counters(): Promise<Map<string, ServiceCounters>> {
    const t = this.readTimeout();
    const [main, stats] = await Promise.all([this.list(['-Ln', '--exact', '--nosort'], t), this.list(['-Ln', '--exact', '--nosort', '--stats'], t)]);
    const out = new Map<string, ServiceCounters>();
    for (const s of main.services) {
      out.set(s.spec.id, { dests: new Map(s.dests.map((d) => [d.id, d.counts ?? { active: 0, inactive: 0 }])) });
    }
    for (const s of stats.services) {
      const c = out.get(s.spec.id);
      if (!c) continue;
      if (s.stats) c.stats = s.stats;
      for (const d of s.dests) {
        const dc = c.dests.get(d.id);
        if (dc && d.stats) dc.stats = d.stats;
      }
    }
    return out;
  }

  /**
   * Applies the ipvsadm ops as one restore batch, rendered as ipvsadm reads them. ipvsadm -R
   * carries on after a failing line, printing the error on stderr without saying which line:
   * any stderr output is a failure, and the caller re-reads the table to learn what did not
   * apply.
   */
  async apply(ops: readonly Op[], count: number): Promise<ExecResult> {
    const command = `${this.ipvsadm} -R (${count} operations)`;
    const timeoutMs = this.timeouts.applyBaseMs + count * this.timeouts.applyPerOpMs;
    const r = await this.restore.run(chunks(ops), { timeoutMs });
    if (r.code !== 0 || r.signal !== null || r.stderr.trim() !== '') throw new KernelError(command, r, failure(r));
    return r;
  }

  /**
   * Starts the restore process with two empty batches: an ipvsadm that does not take batches as
   * restore.ts expects (one that exits after a batch) fails here, once, not every batch.
   */
  async probe(): Promise<void> {
    const command = `${this.ipvsadm} -R`;
    let pid: number | undefined;
    for (let i = 0; i < 2; i++) {
      const r = await this.restore.run([], { timeoutMs: this.timeouts.toolMs });
      if (r.code !== 0 || r.signal !== null || r.stderr.trim() !== '') throw new KernelError(command, r, `cannot apply batches (${failure(r)})`);
      if (i === 1 && this.restore.pid !== pid) throw new KernelError(command, r, 'cannot apply batches (the process did not outlive its first one)');
      pid = this.restore.pid;
    }
  }

  /** `conntrack -D ...`; finding nothing to delete is success (conntrack exits 1 then). */
  async flush(args: readonly string[]): Promise<void> {
    const command = `${this.conntrack} ${args.join(' ')}`;
    const r = await this.runner.exec(this.conntrack, args, { timeoutMs: this.timeouts.toolMs });
    if (r.code === 0) return;
    if (r.code === 1 && /\b0 flow entries have been deleted/.test(r.stderr)) return;
    throw new KernelError(command, r, failure(r));
  }
}

/** Restore lines in chunks of about 64 KiB. */
function* chunks(ops: readonly Op[]): Generator<string> {
  let buf = '';
  for (const op of ops) {
    const line = renderOp(op);
    if (line === undefined) continue;
    buf += `${line}\n`;
    if (buf.length >= 65536) {
      yield buf;
      buf = '';
    }
  }
  if (buf) yield buf;
}

function failure(r: ExecResult): string {
  const why = r.signal ? `killed by ${r.signal}` : r.code === 0 ? 'reported errors' : `exit ${r.code}`;
  const err = r.stderr.trim().split('\n').filter(Boolean);
  return err.length ? `${why}: ${err.slice(0, 5).join('; ')}${err.length > 5 ? ` (+${err.length - 5} more)` : ''}` : why;
}
