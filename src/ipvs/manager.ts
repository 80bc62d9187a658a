/**
 * The IPVS subsystem's facade for the coordinator: desired table in, one kernel batch out.
 *
 * It keeps the table it last applied in memory and plans against that, so a reconcile costs
 * what changed, not what exists: one weight change in a 200,000-destination table is one
 * `ipvsadm -e` line. The kernel is read in full only at start (adopting what is there: vipd
 * leaves IPVS in place when it exits) and after a failed batch; draining destinations' counts
 * are read per service by a poll that runs only while something drains.
 *
 * Reconciles run one at a time, in call order.
 */
import type { Config } from '../config/schema.js';
import type { Logger } from '../log/logger.js';
import { inPrefix } from '../util/ip.js';
import { DEFAULT_TIMEOUTS, Kernel, KernelError, systemRunner, type KernelTimeouts, type Runner, type ServiceCounters } from './kernel.js';
import { flagNames, serviceId, type DesiredTable, type Forwarding, type KernelTable, type Persistence, type ServiceKey } from './model.js';
import { changedSince } from './desired.js';
import { applyOps, plan, type Counts, type Plan } from './plan.js';
import { conntrackArgs, renderScript } from './render.js';
import { applySysctls, loadModules, wantedSysctls, type SysctlReport } from './sysctl.js';

export type IpvsConfig = Config['ipvs'] & { vipRanges: readonly string[] };

export interface IpvsManagerOptions {
  /** How to reach the system; a simulated kernel in tests. */
  runner?: Runner;
  /** Milliseconds clock for drain timing (default Date.now). */
  clock?: () => number;
  /** How often connection counts of draining destinations are read (default 2000). */
  drainPollMs?: number;
  conntrack?: string;
  modprobe?: string;
  timeouts?: Partial<KernelTimeouts>;
}

export interface StartReport extends SysctlReport {
  adopted: { services: number; destinations: number; owned: number };
  durationMs: number;
}

export interface ReconcileResult {
  /** Kernel operations issued: ipvsadm lines plus conntrack deletions. 0 when nothing changed. */
  ops: number;
  durationMs: number;
  /** Destinations held at weight 0 until their connections end or the drain timeout passes. */
  draining: number;
  /** Whether the kernel table was read first (start, or after a failure). */
  reread: boolean;
  /** Desired services outside vipRanges, left alone. */
  refused: string[];
}

/** A reconcile that did not fully apply. The next reconcile re-reads what it needs and retries. */
export class IpvsError extends Error {
  constructor(
    message: string,
    /** The first operation that failed (an ipvsadm restore line or a command). */
    readonly op: string,
    /** Every operation known to have failed. */
    readonly failed: readonly string[],
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'IpvsError';
  }
}

export interface DestView {
  id: string;
  fwd: Forwarding;
  weight: number;
  upper: number;
  lower: number;
  /** Present while draining: clock time the drain began and the last counts read. */
  draining?: { since: number; active?: number; inactive?: number };
}

export interface ServiceView {
  id: string;
  key: ServiceKey;
  owned: boolean;
  scheduler: string;
  flags: string[];
  persistence?: Persistence;
  onePacket: boolean;
  /** In the order they were added (the kernel lists them newest first). */
  dests: DestView[];
}

export interface TableView {
  /** False before start() and after a failed batch, until the kernel has been read again. */
  known: boolean;
  services: ServiceView[];
  draining: number;
}

export class IpvsManager {
  private readonly kernel: Kernel;
  private readonly runner: Runner;
  private readonly clock: () => number;
  private readonly drainPollMs: number;
  private readonly modprobe: string;
  private readonly toolMs: number;
  /** What the kernel holds as far as vipd knows; undefined: read it before planning. */
  private current: KernelTable | undefined;
  private drains: Plan['drains'] = new Map();
  private counts = new Map<string, Map<string, Counts>>();
  /** conntrack -D argument lists that failed; retried by the next reconcile. */
  private pendingFlushes: string[][] = [];
  private flushConntrack = false;
  private desired: DesiredTable = new Map();
  /**
   * The last table applied in full while the model stayed in step with the kernel: the next
   * plan need only visit what changed since (desired.ts changedSince).
   */
  private lastApplied: DesiredTable | undefined;
  /** Firewall-mark services declared during this process's life (they have no VIP to own them by). */
  private readonly fwmarks = new Set<string>();
  private vipRanges: readonly string[];
  /** Set by resync(): the table in memory may no longer be the kernel's. */
  private stale = false;
  private readonly ownedAddress = new Map<string, boolean>();
  private readonly refusedLogged = new Set<string>();
  private readonly schedulers = new Set<string>();
  private chain: Promise<unknown> = Promise.resolve();
  private pollTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly cfg: IpvsConfig,
    private readonly log: Logger,
    opts: IpvsManagerOptions = {},
  ) {
    this.runner = opts.runner ?? systemRunner;
    this.vipRanges = cfg.vipRanges;
    const timeouts = { ...DEFAULT_TIMEOUTS, ...opts.timeouts };
    this.kernel = new Kernel(cfg.ipvsadm, opts.conntrack ?? 'conntrack', this.runner, timeouts);
    this.clock = opts.clock ?? Date.now;
    this.drainPollMs = opts.drainPollMs ?? 2000;
    this.modprobe = opts.modprobe ?? 'modprobe';
    this.toolMs = timeouts.toolMs;
  }

  /**
   * Loads modules (ip_vs, the given schedulers', config's), applies net.ipv4.vs.* and adopts
   * the kernel's table, and starts the restore process. Throws only if the table cannot be read
   * or ipvsadm -R cannot take batches; module and setting failures are in the report (and logged).
   */
  start(opts: { schedulers?: Iterable<string> } = {}): Promise<StartReport> {
    return this.serialize(async () => {
      const started = performance.now();
      const schedulers = [...new Set(opts.schedulers ?? [])];
      const modules = await loadModules(this.runner, ['ip_vs', ...schedulers.map((s) => `ip_vs_${s}`), ...this.cfg.modules], this.modprobe, this.toolMs);
      for (const m of modules) {
        if (m.state === 'failed') this.log.warn('kernel module not loaded', { module: m.name, error: m.error });
        else if (m.name.startsWith('ip_vs_')) this.schedulers.add(m.name.slice(6));
      }
      const sysctls = await applySysctls(this.runner, wantedSysctls(this.cfg.sysctls));
      for (const s of sysctls) {
        if (!s.ok) this.log.warn('kernel setting not applied', { setting: `net.ipv4.vs.${s.name}`, wanted: s.wanted, value: s.after, error: s.error });
      }
      // Stale conntrack entries only exist when IPVS keeps conntrack (and NATs its reply tuple).
      this.flushConntrack = sysctls.find((s) => s.name === 'conntrack')?.after === 1;
      this.log.info('kernel settings', Object.fromEntries(sysctls.map((s) => [s.name, s.after ?? null])));
      const table = await this.read();
      try {
        await this.kernel.probe();
      } catch (e) {
        throw this.wrap(e, 'IPVS restore process');
      }
      let destinations = 0;
      let owned = 0;
      for (const s of table.values()) {
        destinations += s.dests.size;
        if (this.owns(s.spec.key)) owned++;
      }
      const adopted = { services: table.size, destinations, owned };
      this.log.info('adopted the kernel table', adopted);
      return { modules, sysctls, adopted, durationMs: performance.now() - started };
    });
  }

  /**
   * A reload changed vipRanges: ownership is decided again, and the next reconcile plans the
   * whole table (orphans inside a new range are removed; a range given up is left alone).
   */
  setVipRanges(ranges: readonly string[]): void {
    if (ranges.join() === this.vipRanges.join()) return;
    this.vipRanges = ranges;
    this.ownedAddress.clear();
    this.refusedLogged.clear();
    this.lastApplied = undefined;
  }

  /** The next reconcile reads the kernel's table instead of trusting the one in memory, so drift is repaired. */
  resync(): void {
    this.stale = true;
  }

  /** Makes the kernel match `desired` within vipRanges, in one batch. */
  reconcile(desired: DesiredTable): Promise<ReconcileResult> {
    this.desired = desired;
    return this.serialize(() => this.converge(desired, false));
  }

  /**
   * The operations a reconcile with `desired` would issue now (ipvsadm restore lines, then
   * conntrack commands), planned against the table in memory; nothing is applied or read.
   * Empty while the kernel's table is unknown (before start, after a failed batch).
   */
  preview(desired: DesiredTable): string[] {
    if (!this.current) return [];
    const p = this.plan(this.current, desired);
    return [...renderScript(p.ops), ...flushArgs(p).map((args) => `conntrack ${args.join(' ')}`)];
  }

  /** What vipd believes the kernel holds, with drain state; no kernel access. */
  table(): TableView {
    const services: ServiceView[] = [];
    let draining = 0;
    for (const [id, s] of this.current ?? []) {
      const drains = this.drains.get(id);
      const counts = this.counts.get(id);
      const dests: DestView[] = [];
      for (const d of s.dests.values()) {
        const view: DestView = { id: d.id, fwd: d.fwd, weight: d.weight, upper: d.upper, lower: d.lower };
        const since = drains?.get(d.id);
        if (since !== undefined) {
          draining++;
          const c = counts?.get(d.id);
          view.draining = c ? { since, active: c.active, inactive: c.inactive } : { since };
        }
        dests.push(view);
      }
      const spec = s.spec;
      const view: ServiceView = {
        id,
        key: spec.key,
        owned: this.owns(spec.key),
        scheduler: spec.scheduler,
        flags: flagNames(spec.flags, spec.scheduler),
        onePacket: spec.onePacket,
        dests,
      };
      if (spec.persistence) view.persistence = spec.persistence;
      services.push(view);
    }
    return { known: this.current !== undefined, services, draining };
  }

  /** Connection and traffic counters of the whole table, read from the kernel (for status). */
  async counters(): Promise<Map<string, ServiceCounters>> {
    try {
      return await this.kernel.counters();
    } catch (e) {
      throw this.wrap(e, 'read counters');
    }
  }

  /** Stops the drain poll. IPVS stays as it is: directors keep forwarding while vipd restarts. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.pollTimer);
    this.pollTimer = undefined;
    await this.kernel.close();
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn, fn);
    this.chain = next.catch(() => undefined);
    return next;
  }

  private owns(key: ServiceKey, desired: DesiredTable = this.desired): boolean {
    if (key.kind === 'fwmark') {
      const id = serviceId(key);
      // Remembered only from tables actually reconciled, not from previews.
      if (desired === this.desired && desired.has(id)) this.fwmarks.add(id);
      return this.fwmarks.has(id) || desired.has(id);
    }
    let owned = this.ownedAddress.get(key.address);
    if (owned === undefined) {
      owned = this.vipRanges.some((r) => inPrefix(key.address, r));
      this.ownedAddress.set(key.address, owned);
    }
    return owned;
  }

  private async read(): Promise<KernelTable> {
    this.lastApplied = undefined;
    try {
      this.current = await this.kernel.read();
    } catch (e) {
      this.current = undefined;
      throw this.wrap(e, 'read the IPVS table');
    }
    // Drains of destinations that vanished meanwhile are over.
    for (const [id, d] of this.drains) {
      const s = this.current.get(id);
      const left = new Map([...d].filter(([dest]) => s?.dests.has(dest)));
      if (left.size) this.drains.set(id, left);
      else this.drains.delete(id);
    }
    return this.current;
  }

  private async converge(desired: DesiredTable, poll: boolean): Promise<ReconcileResult> {
    const started = performance.now();
    // First: a count read may find the table changed behind vipd's back and drop it.
    if (poll && this.drains.size > 0 && this.current) await this.readDrainCounts();
    const reread = this.current === undefined || this.stale;
    this.stale = false;
    const current = reread ? await this.read() : this.current!;

    const p = this.plan(current, desired, this.lastApplied && changedSince(this.lastApplied, desired));
    for (const id of p.refused) {
      if (this.refusedLogged.has(id)) continue;
      this.refusedLogged.add(id);
      this.log.warn('service outside vipRanges: not programmed', { service: id, vipRanges: this.vipRanges });
    }
    await this.loadSchedulers(p);

    const kernelOps = p.ops.reduce((n, op) => (op.kind === 'flush-conntrack' ? n : n + 1), 0);
    if (kernelOps > 0) {
      try {
        await this.kernel.apply(p.ops, kernelOps);
      } catch (e) {
        throw await this.failed(e, renderScript(p.ops), desired, p);
      }
    }
    applyOps(current, p.ops, p.converged);
    this.lastApplied = desired;
    this.drains = p.drains;
    for (const id of this.counts.keys()) if (!this.drains.has(id)) this.counts.delete(id);

    const flushes = [...this.pendingFlushes, ...flushArgs(p)];
    this.pendingFlushes = [];
    const flushFailures: KernelError[] = [];
    for (const args of flushes) {
      try {
        await this.kernel.flush(args);
      } catch (e) {
        this.pendingFlushes.push(args);
        flushFailures.push(e instanceof KernelError ? e : new KernelError(`conntrack ${args.join(' ')}`, undefined, String(e)));
      }
    }

    const result: ReconcileResult = {
      ops: kernelOps + flushes.length,
      durationMs: performance.now() - started,
      draining: [...this.drains.values()].reduce((n, d) => n + d.size, 0),
      reread,
      refused: p.refused,
    };
    if (result.ops > 0) {
      this.log.info('ipvs reconciled', { ops: result.ops, durationMs: Math.round(result.durationMs), draining: result.draining });
      if (kernelOps <= 20) this.log.debug('ipvs batch', { lines: renderScript(p.ops) });
    }
    this.schedulePoll();
    const first = flushFailures[0];
    if (first) {
      throw new IpvsError(`conntrack flush failed (${flushFailures.length} of ${flushes.length}; retried next reconcile): ${first.message}`, first.command, flushFailures.map((f) => f.command), {
        cause: first,
      });
    }
    return result;
  }

  private plan(current: KernelTable, desired: DesiredTable, only?: ReadonlySet<string>): Plan {
    return plan({
      ...(only ? { only } : {}),
      current,
      desired,
      owns: (k) => this.owns(k, desired),
      drains: this.drains,
      counts: this.counts,
      now: this.clock(),
      drainTimeoutMs: this.cfg.drainTimeout,
      flushConntrack: this.flushConntrack,
    });
  }

  /** Reads counts of draining destinations, stamped with the clock so the planner knows they postdate the drain. */
  private async readDrainCounts(): Promise<void> {
    const current = this.current;
    if (!current) return;
    const keys = [...this.drains.keys()].flatMap((id) => current.get(id)?.spec.key ?? []);
    let read;
    try {
      read = await this.kernel.counts(keys);
    } catch (e) {
      // Without counts a drain still ends at its timeout.
      this.log.warn('could not read connection counts of draining destinations', { error: (e as Error).message });
      return;
    }
    const at = this.clock();
    for (const [id, dests] of this.drains) {
      const got = read.get(id);
      const c = new Map<string, Counts>();
      for (const dest of dests.keys()) {
        const n = got?.get(dest);
        // A destination missing from the kernel means the table changed behind vipd's back.
        if (!n) this.current = undefined;
        else c.set(dest, { ...n, at });
      }
      this.counts.set(id, c);
    }
    if (!this.current) await this.read();
  }

  /** Schedulers of services about to be created or changed, loaded ahead of ipvsadm. */
  private async loadSchedulers(p: Plan): Promise<void> {
    const missing = new Set<string>();
    for (const op of p.ops) {
      if ((op.kind === 'add-service' || op.kind === 'edit-service') && !this.schedulers.has(op.svc.scheduler)) missing.add(op.svc.scheduler);
    }
    if (missing.size === 0) return;
    const res = await loadModules(this.runner, [...missing].map((s) => `ip_vs_${s}`), this.modprobe, this.toolMs);
    for (const m of res) {
      if (m.state === 'failed') this.log.warn('scheduler module not loaded; the kernel may still load it', { module: m.name, error: m.error });
      else this.schedulers.add(m.name.slice(6));
    }
  }

  /**
   * After a failed batch: re-read the table (so the next reconcile plans from the truth) and
   * find which of the batch's lines did not take effect: those the planner still wants.
   */
  private async failed(e: unknown, lines: readonly string[], desired: DesiredTable, p: Plan): Promise<IpvsError> {
    this.current = undefined;
    this.lastApplied = undefined;
    this.drains = p.drains;
    // Whatever part of the batch applied, its UDP deletions' flows are stale: flush next time
    // (flushing flows of a destination that stayed only makes their next packet re-create them).
    this.pendingFlushes.push(...flushArgs(p));
    const stderr = e instanceof KernelError ? (e.result?.stderr.trim() ?? '') : '';
    let failed: string[] = [];
    try {
      const again = this.plan(await this.read(), desired);
      const attempted = new Set(lines);
      failed = renderScript(again.ops).filter((l) => attempted.has(l));
    } catch (re) {
      this.log.error('could not re-read the IPVS table after a failed batch', { error: (re as Error).message });
    }
    const first = failed[0] ?? `ipvsadm -R (${lines.length} operations)`;
    const what = failed.length ? `${failed.length} of ${lines.length} operations failed, first: ${first}` : `${lines.length} operations, failed`;
    const err = new IpvsError(`ipvsadm -R: ${what}${stderr ? ` (${stderr.split('\n').slice(0, 3).join('; ')})` : ''}`, first, failed, { cause: e });
    this.log.error('ipvs batch failed; the next reconcile retries', { error: err.message, failed: failed.slice(0, 20) });
    this.schedulePoll();
    return err;
  }

  private schedulePoll(): void {
    if (this.stopped || this.pollTimer || this.drains.size === 0) return;
    this.pollTimer = setTimeout(() => {
      this.pollTimer = undefined;
      this.serialize(() => this.converge(this.desired, true)).catch((e: unknown) => {
        this.log.warn('drain check failed', { error: (e as Error).message });
      });
    }, this.drainPollMs);
    // The poll alone must not keep a process alive; the daemon has its own reasons to run.
    this.pollTimer.unref();
  }

  private wrap(e: unknown, what: string): IpvsError {
    const cmd = e instanceof KernelError ? e.command : what;
    return new IpvsError(`${what}: ${(e as Error).message}`, cmd, [cmd], { cause: e });
  }
}

/** conntrack -D argument lists of a plan's flush ops. */
function flushArgs(p: Plan): string[][] {
  return p.ops.flatMap((op) => {
    const args = conntrackArgs(op);
    return args ? [args] : [];
  });
}
