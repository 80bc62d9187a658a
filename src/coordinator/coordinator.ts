/**
 * The loop that makes vipd one appliance: config × health × node agents × overrides →
 * desired state (desired.ts) → IPVS, BGP routes, VIP addresses and ARP, each through its own
 * lane so a slow subsystem never holds the others.
 *
 * Order is part of correctness:
 * - a VIP comes up as address, then IPVS, then announce (the route waits for both lanes);
 * - a VIP removed from config is withdrawn, then after bgp.withdrawDelay its IPVS services
 *   and its address go;
 * - nothing reaches IPVS or BGP before every health target has a first result (or the
 *   start-up grace passed), so a restart with the same config changes nothing.
 */
import type { AddressChanges, VipAddresses } from '../addr/addresses.js';
import { desiredVipAddresses, type HostAddress } from '../addr/plan.js';
import type { ArpManager } from '../arp/manager.js';
import type { RouteChanges, RouteIntent, BgpSpeaker } from '../bgp/speaker.js';
import type { Config, VipConfig } from '../config/schema.js';
import type { HealthMonitor } from '../health/index.js';
import { desiredService as ipvsService, tableId } from '../ipvs/desired.js';
import type { IpvsManager, ReconcileResult } from '../ipvs/manager.js';
import type { DesiredTable, Service } from '../ipvs/model.js';
import type { Logger } from '../log/logger.js';
import { canonicalAddress } from '../util/ip.js';
import { deriveAll, deriveChanges, refresh, settled, targetVip, type ChangeInputs, type Changes, type Derivation } from './derivation.js';
import { desiredService, type AgentReport, type DesiredState, type DesiredVip, type VipState } from './desired.js';
import type { Journal } from './journal.js';
import { Lane, type LaneResult } from './lane.js';
import type { Metrics } from './metrics.js';
import type { OverrideStore } from './overrides.js';
import type { PresencePorts } from './presence.js';
import { healthTargets } from './targets.js';
import { TrackedMap, TrackedSet } from './tracked.js';
import { Verdicts } from './verdicts.js';

export interface CoordinatorDeps {
  log: Logger;
  journal: Journal;
  metrics?: Metrics;
  health: HealthMonitor;
  ipvs?: IpvsManager;
  bgp?: BgpSpeaker;
  arp?: ArpManager;
  addresses?: VipAddresses;
  /** Interface BGP-mode VIPs live on (from VipAddresses.prepare()). */
  bgpDevice?: string;
  overrides: OverrideStore;
  presence: PresencePorts;
}

/** A VIP removed from config: withdrawn first, its services and address kept until then. */
interface Retiring {
  vip: VipConfig;
  /** Its IPVS services as last derived. */
  services: Service[];
  /** Generation whose BGP state no longer has the route. */
  gen: number;
  /** When BGP first had it withdrawn. */
  withdrawnAt?: number;
  done: boolean;
  timer?: NodeJS.Timeout;
}

export interface Derived {
  table: DesiredTable;
  addresses: HostAddress[];
  /** Every BGP-mode VIP that is up or soft-failed, before ordering gates. */
  intents: RouteIntent[];
}

const STARTUP_GRACE_CAP_MS = 60_000;
/**
 * A withdrawal's pass hands IPVS, addresses and the journal their part once gobgpd has taken
 * the withdrawal, or after this long: an ipvsadm batch started beside it competes with gobgpd
 * for the CPU (in the VM such a batch took 23-39 ms against 5-9 ms alone), and a route that
 * still attracts traffic costs more than weights applied a few ms later. A slow gobgpd delays
 * them no more than this.
 */
const WITHDRAW_HEAD_START_MS = 100;
/** A batch timer firing later than this was held up by a stalled loop, not by ordinary timer jitter. */
const STALL_MS = 10;

export class Coordinator {
  private config: Config;
  private readonly log: Logger;
  // Tracked: a pass re-derives only what changed in them (derivation.ts).
  private readonly health = new Verdicts();
  private readonly agents = new TrackedMap<string, AgentReport>();
  private readonly linkDown = new TrackedSet<string>();
  /** Generation at which each VIP last became up (its route waits until IPVS and addresses applied it). */
  private readonly upGen = new Map<string, number>();
  private readonly announced = new Set<string>();
  private readonly retiring = new Map<string, Retiring>();
  private gen = 0;
  private synced = false;
  private stopped = false;
  private batchTimer?: NodeJS.Timeout;
  /** When the first event of the batch waiting for its pass came. */
  private batchStart?: number;
  /** From when the quiet gap counts: the last event, or less than a gap before a stall ended. */
  private quietSince = 0;
  /** When the batch timer was set to fire. */
  private batchTimerDue = 0;
  private leading?: NodeJS.Immediate;
  /** While set, the pass after an urgent withdrawal waits for gobgpd's answer (passAfter). */
  private held?: NodeJS.Timeout;
  /** When that withdrawal was written: its head start counts from then. */
  private heldSince?: number;
  private retryTimer?: NodeJS.Timeout;
  private resyncTimer?: NodeJS.Timeout;
  /** When the last pass ran (performance.now(): immune to wall-clock jumps). */
  private lastPass = -Infinity;
  /** Lane hand-overs and journaling that a withdrawal put after its BGP call, in pass order. */
  private deferred?: NodeJS.Timeout;
  private readonly later: (() => void)[] = [];
  /** The pass whose BGP call `later` waits for. */
  private laterGen = 0;
  /** Generation of the newest state handed to the IPVS and address lanes. */
  private offered = 0;
  private graceTimer?: NodeJS.Timeout;
  /** The desired state of the last pass. */
  private derivation?: Derivation;
  /** What it was last derived in full with, besides config: when either changes, everything is derived again. */
  private basis?: { overrides: number; kept: Retiring[]; addresses: HostAddress[] };
  private readonly ipvsLane: Lane<DesiredTable, ReconcileResult>;
  private readonly bgpLane: Lane<RouteIntent[], RouteChanges>;
  private readonly addrLane: Lane<HostAddress[], AddressChanges>;
  /** Set while the turn that ran an urgent pass lasts. */
  private urgentTurn?: NodeJS.Immediate;
  /** Health transitions of an urgent pass, journaled once BGP has its withdrawal. */
  private readonly notes: { message: string; reason: string; at: number }[] = [];
  /** Passes that reached the lanes; tests and benchmarks wait on it. */
  passes = 0;

  constructor(
    config: Config,
    private readonly d: CoordinatorDeps,
  ) {
    this.config = config;
    this.log = d.log.child('coordinator');
    this.ipvsLane = new Lane(
      (t) => (d.ipvs ? d.ipvs.reconcile(t) : Promise.resolve({ ops: 0, durationMs: 0, draining: 0, reread: false, refused: [] })),
      (r) => this.laneDone('ipvs', r),
    );
    this.bgpLane = new Lane((i) => (d.bgp ? d.bgp.setRoutes(i) : Promise.resolve(noRoutes())), (r) => this.laneDone('bgp', r));
    // Unchanged addresses are not applied again: each apply lists the kernel's addresses, a
    // process spawn that would compete with the IPVS batch of every health change.
    this.addrLane = new Lane(
      (a) => (d.addresses ? d.addresses.reconcile('bgp', a) : Promise.resolve({ added: [], removed: [], failed: [], refused: [] })),
      (r) => this.laneDone('addresses', r),
      (a, b) => JSON.stringify(a) === JSON.stringify(b),
    );
    d.health.on('transition', (e) => {
      const prev = this.health.get(e.id);
      // A first result that starts a rise is not a verdict yet: a restarted vipd must not zero
      // the weights of realservers that are healthy but have not passed `rise` checks again.
      const known = !(e.first && e.pending);
      this.health.set(e.id, { up: e.up, known, reason: e.reason });
      const note = known && (!prev?.known || prev.up !== e.up) ? { message: `${e.id} ${e.up ? 'up' : 'down'}`, reason: e.reason } : undefined;
      // A route to a VIP that just lost its last needed realserver blackholes traffic: its
      // withdrawal runs now, in this turn (the pass still carries everything batched so far),
      // and is handed to BGP before anything is journaled.
      const down = !this.stopped && prev?.up === true && !e.up ? this.vipTakenDown(e.id) : undefined;
      const urgent = down !== undefined;
      // The first of a turn; more in the same turn (many VIPs losing a shared realserver) share
      // one pass right after it.
      if (urgent && !this.urgentTurn) {
        this.urgentTurn = setImmediate(() => (this.urgentTurn = undefined));
        if (note) this.notes.push({ ...note, at: e.at });
        // Its route's encoded withdrawal is written now; the pass follows once gobgpd has answered
        // (a pass before the turn's end would hold back the bytes, which http2 sends then). While
        // BGP is busy, the pass runs now and its route set withdraws the VIP, in order.
        const taken = this.d.bgp?.withdrawNow(down);
        if (taken) this.passAfter(taken);
        else this.passNow();
        return;
      }
      if (note) d.journal.append('health', note.message, { reason: note.reason });
      this.schedule(urgent);
    });
    d.health.on('agent', (e) => {
      this.agents.set(e.id, e.answered ? { down: e.down, drain: e.drain, ...(e.weightPercent !== undefined ? { weightPercent: e.weightPercent } : {}) } : (this.agents.get(e.id) ?? {}));
      d.journal.append('health', `agent ${e.id}: ${e.reason}`);
      this.schedule();
    });
    if (d.metrics) {
      const m = d.metrics;
      d.health.on('result', (e) => m.checkSeconds.observe({ type: e.type, outcome: e.result.ok ? 'ok' : 'fail' }, e.result.durationMs / 1000));
    }
    if (d.arp) this.wireArp(d.arp);
    if (d.bgp) this.wireBgp(d.bgp);
  }

  /** An ARP manager started after this coordinator (a reload brought the first ARP-mode VIP). */
  attachArp(arp: ArpManager): void {
    this.d.arp = arp;
    this.wireArp(arp);
  }

  /** A BGP speaker started after this coordinator (a reload brought the first bgp section). */
  attachBgp(bgp: BgpSpeaker): void {
    this.d.bgp = bgp;
    this.wireBgp(bgp);
  }

  private wireArp(arp: ArpManager): void {
    const { journal, metrics } = this.d;
    arp.on('link', (e) => {
      for (const v of e.vips) (e.up ? this.linkDown.delete(v) : this.linkDown.add(canonicalAddress(v)));
      journal.append('arp', `link ${e.device} ${e.up ? 'up' : 'down'}`, { vips: e.vips });
      this.schedule();
    });
    arp.on('owner', (e) => journal.append('arp', `${e.owner ? 'took' : 'released'} ${e.vip} on ${e.device}`, { reason: e.reason }));
    arp.on('arp', (r) => metrics?.arpSends.inc({ outcome: r.status }));
  }

  private wireBgp(bgp: BgpSpeaker): void {
    const { journal, metrics } = this.d;
    bgp.on('peer', (p, prev) => journal.append('peer', `${p.address} ${prev} -> ${p.state}`, p.lastError ? { error: p.lastError } : undefined));
    bgp.on('gobgpd', (s) => {
      if (s === 'down') metrics?.gobgpdRestarts.inc();
      journal.append('peer', `gobgpd ${s}`);
    });
  }

  get running(): Config {
    return this.config;
  }

  get serving(): boolean {
    return this.synced && !this.stopped;
  }

  /** VIPs as of the last pass; services (200,000 destinations are not kept) worked out now. */
  state(): DesiredState | undefined {
    const d = this.derivation;
    if (!d) return undefined;
    const inp = this.inputs(d.config);
    return { services: d.config.services.map((s) => desiredService(inp, s)), vips: new Map(d.vips) };
  }

  isAnnounced(vip: string): boolean {
    return this.announced.has(vip);
  }

  /** Starts health checks; IPVS and BGP get their first state once every target has a result. */
  start(): void {
    const targets = healthTargets(this.config);
    this.d.health.update(targets);
    // Long enough for a healthy target to pass `rise` checks even on a slow, loaded host, and
    // well inside BGP graceful restart's restart time, during which routers keep our routes.
    const grace = Math.min(
      STARTUP_GRACE_CAP_MS,
      Math.max(0, ...this.config.services.map((s) => (s.check ? (s.check.rise + s.check.fall) * s.check.interval + 2 * s.check.timeout : 0))) + 5000,
    );
    this.graceTimer = setTimeout(() => this.sync('start-up grace passed'), grace);
    this.schedule();
  }

  private sync(why: string): void {
    if (this.synced || this.stopped) return;
    this.synced = true;
    clearTimeout(this.graceTimer);
    this.log.info('first health results in; programming IPVS and routes', { why });
    this.d.journal.append('daemon', 'serving', { why });
    void this.d.presence.open(this.config.coordinator.presencePorts);
    this.startResync();
    this.pass();
  }

  /** Reads IPVS and the VIP addresses back from the kernel now and then, and repairs drift. */
  private startResync(): void {
    clearInterval(this.resyncTimer);
    const every = this.config.coordinator.resyncInterval;
    if (every === 0 || this.stopped) return;
    this.resyncTimer = setInterval(() => {
      this.d.ipvs?.resync();
      this.addrLane.forget();
      // A pass on its way does the repair. Otherwise it runs now: a tick that opened a batch
      // would close it at tick + batchDelay, splitting a burst of results that came meanwhile.
      if (!this.batchTimer) this.passAfterIo();
    }, every);
  }

  /**
   * Coalesces bursts: a pass runs once events have paused for `batchQuiet`, but no event waits
   * longer than `batchDelay`, and passes are at least `batchDelay` apart (a storm costs at most
   * one pass per `batchDelay`). Events of one event-loop turn always share a pass. `urgent`
   * runs a pass at once regardless (a withdrawal must not wait out the window).
   */
  schedule(urgent = false): void {
    if (this.stopped || this.leading || this.held) return;
    const now = performance.now();
    this.quietSince = now;
    const start = (this.batchStart ??= now);
    const wait = urgent ? 0 : this.due(start) - now;
    if (wait <= 0) this.passAfterIo();
    else if (!this.batchTimer) this.armBatchTimer(start, wait);
  }

  private armBatchTimer(start: number, wait: number): void {
    this.batchTimerDue = performance.now() + wait;
    this.batchTimer = setTimeout(() => this.batchTimerFired(start), wait);
  }

  /**
   * A pass later in this loop turn, once its I/O callbacks have run: after a stalled loop (a
   * starved VM) the timers come first and the quiet looks real, while the check results that
   * came meanwhile still wait in the poll phase. They join this pass instead of splitting it.
   */
  private passAfterIo(): void {
    if (this.held) return;
    this.leading ??= setImmediate(() => {
      this.leading = undefined;
      this.pass();
    });
  }

  /** When the pending batch's pass is due (performance.now() time). */
  private due(batchStart: number): number {
    const { batchDelay, batchQuiet } = this.config.coordinator;
    return Math.min(batchStart + batchDelay, Math.max(this.quietSince + batchQuiet, this.lastPass + batchDelay));
  }

  /**
   * The timer is armed once per batch, not per event: a later event moves the pass by re-arming
   * here. A timer this late means the loop was held up (GC, a starved VM): the checks that fell
   * due meanwhile have only just started, so they get as long as the stall was (a gap at most)
   * to answer. The window still bounds the wait.
   */
  private batchTimerFired(start: number): void {
    this.batchTimer = undefined;
    const now = performance.now();
    const late = now - this.batchTimerDue;
    if (late > STALL_MS) {
      const { batchQuiet } = this.config.coordinator;
      this.quietSince = Math.max(this.quietSince, now - batchQuiet + Math.min(late, batchQuiet));
    }
    const wait = this.due(start) - now;
    // Timers have 1 ms resolution: under half of one left is due now.
    if (wait > 0.5) this.armBatchTimer(start, wait);
    else this.passAfterIo();
  }

  /** A pass in this turn, instead of any scheduled one. */
  private passNow(): void {
    clearImmediate(this.leading);
    this.leading = undefined;
    clearTimeout(this.held);
    this.held = undefined;
    this.pass();
  }

  /**
   * The pass after an urgent withdrawal, once gobgpd has answered it (WITHDRAW_HEAD_START_MS at
   * most), so that vipd's own work does not compete with gobgpd for the CPU meanwhile: the pass's
   * route set would wait for that call anyway. Events meanwhile join this pass.
   */
  private passAfter(taken: Promise<void>): void {
    const go = (): void => {
      if (!this.held) return;
      clearTimeout(this.held);
      this.held = undefined;
      this.passAfterIo();
    };
    this.heldSince = performance.now();
    this.held = setTimeout(go, WITHDRAW_HEAD_START_MS);
    void taken.then(go);
  }

  /** The target's VIP (its address) if it is up now and down with the current health (that VIP alone is derived). */
  private vipTakenDown(id: string): string | undefined {
    const d = this.derivation;
    if (d?.config !== this.config) return undefined;
    // The changes so far are derived now, not again by the pass: a burst costs what it changes.
    const inp = this.inputs(d.config);
    this.derivation = refresh(d, inp, this.changes());
    const v = targetVip(this.derivation, inp, id);
    return v !== undefined && isUp(v.was.state) && !isUp(v.now.state) ? v.now.config.address : undefined;
  }

  /** Health, agent and link changes since the last look. */
  private changes(): Changes {
    return { targets: this.health.take(), nodes: this.agents.take(), vips: this.linkDown.take() };
  }

  /** What desired state is derived from for `config`, besides the previous VIP states. */
  private inputs(config: Config): ChangeInputs {
    const nodeNames = new Set(config.nodes.map((n) => n.name));
    return { config, health: this.health, agents: this.agents, overrides: this.d.overrides.overrides(nodeNames), linkDown: this.linkDown };
  }

  private previousStates(): Map<string, VipState> {
    return new Map([...(this.derivation?.vips ?? [])].map(([addr, v]) => [addr, v.state]));
  }

  /** VIPs gone from `config` whose withdrawal has not propagated yet: their services and address stay. */
  private kept(config: Config): Retiring[] {
    const current = new Set(config.vips.map((v) => canonicalAddress(v.address)));
    return [...this.retiring].filter(([addr, r]) => !r.done && !current.has(addr)).map(([, r]) => r);
  }

  private addressesOf(config: Config, kept: readonly Retiring[]): HostAddress[] {
    return desiredVipAddresses([...config.vips, ...kept.map((r) => r.vip)].map((vip) => ({ vip, owned: false })), this.d.bgpDevice ?? 'lo');
  }

  /** Desired state and what each lane would get for `config`, from the current inputs (pure). */
  derive(config: Config): Derived {
    const kept = this.kept(config);
    const d = deriveAll({ ...this.inputs(config), previous: this.previousStates() }, kept.flatMap((r) => r.services));
    return { table: d.table, addresses: this.addressesOf(config, kept), intents: intentsOf(d.vips) };
  }

  /**
   * The desired state brought up to date: only what health, agents and links touched since the
   * last pass, unless config, overrides or the VIPs being retired changed.
   */
  private advance(): Derivation {
    const changes = this.changes();
    const prev = this.derivation;
    const overrides = this.d.overrides.version;
    const kept = this.kept(this.config);
    const b = this.basis;
    if (prev?.config === this.config && b?.overrides === overrides && b.kept.length === kept.length && b.kept.every((r, i) => r === kept[i])) {
      return deriveChanges(prev, this.inputs(this.config), changes);
    }
    this.basis = { overrides, kept, addresses: this.addressesOf(this.config, kept) };
    return deriveAll({ ...this.inputs(this.config), previous: this.previousStates() }, kept.flatMap((r) => r.services));
  }

  /** One reconcile pass: compute desired state and hand each lane its part. */
  pass(): void {
    if (this.stopped) return;
    // This pass carries every event so far: a batch still waiting has nothing left to wait for.
    clearTimeout(this.batchTimer);
    this.batchTimer = undefined;
    this.batchStart = undefined;
    this.lastPass = performance.now();
    const heldSince = this.heldSince;
    this.heldSince = undefined;
    const before = this.derivation;
    const d = this.advance();
    this.derivation = d;
    const { vips, table } = d;
    const gen = ++this.gen;
    // Only an up BGP-mode VIP waits to be announced: anything else left in upGen would make
    // every lane completion run another pass, for ever.
    if (d.config !== before?.config) for (const addr of this.upGen.keys()) if (vips.get(addr)?.config.mode !== 'bgp') this.upGen.delete(addr);
    for (const addr of d.moved) {
      const v = vips.get(addr) as DesiredVip;
      if (!isUp(v.state) || v.config.mode !== 'bgp') this.upGen.delete(addr);
      else if (!this.upGen.has(addr)) this.upGen.set(addr, gen);
    }
    // Journaled once the lanes have their state; with their own times when a withdrawal defers them.
    const at = Date.now();
    const notes = this.notes.splice(0);
    const journal = (): void => {
      for (const n of notes) this.d.journal.append('health', n.message, { reason: n.reason }, n.at);
      for (const addr of d.moved) {
        const v = vips.get(addr) as DesiredVip;
        this.d.journal.append('vip', `${addr} ${before?.vips.get(addr)?.state ?? 'new'} -> ${v.state}`, { reason: v.reason }, at);
      }
    };
    if (!this.synced) {
      journal();
      if (settled(d)) this.sync('all health targets have a result');
      return;
    }
    this.passes++;
    const intents = intentsOf(vips);
    const addresses = this.basis?.addresses ?? [];
    // Announce a VIP only once its address and IPVS are in place; until then it is pending
    // (after a restart, BGP holds End-of-RIB for it so routers keep its stale route).
    const routes = intents.map((i) => {
      const addr = canonicalAddress(i.vip.address);
      const since = this.upGen.get(addr) ?? gen;
      return this.announced.has(addr) || (this.ipvsLane.applied >= since && this.addrLane.applied >= since) ? i : { ...i, pending: true };
    });
    // A withdrawal goes out first: the other lanes and the journal (and its followers) start
    // once gobgpd has taken it (WITHDRAW_HEAD_START_MS at most). Announcements still wait for
    // IPVS (above).
    const sent = new Set(routes.filter((r) => !r.pending).map((r) => canonicalAddress(r.vip.address)));
    const withdrawing = [...this.announced].some((a) => !sent.has(a));
    this.bgpLane.set(routes, gen);
    const rest = (): void => {
      // A deferred pass's state is stale once a newer pass has handed over its own.
      if (gen > this.offered) {
        this.offered = gen;
        this.ipvsLane.set(table, gen);
        this.addrLane.set(addresses, gen);
      }
      journal();
    };
    if (withdrawing) {
      this.later.push(rest);
      this.laterGen = gen;
      const left = heldSince === undefined ? WITHDRAW_HEAD_START_MS : Math.max(0, heldSince + WITHDRAW_HEAD_START_MS - performance.now());
      this.deferred ??= setTimeout(() => this.runLater(), left);
    } else rest();
    this.d.arp?.setVips([...vips.values()].filter((v) => v.config.mode === 'arp').map((v) => ({ vip: v.config, up: isUp(v.state) })));
  }

  private runLater(): void {
    clearTimeout(this.deferred);
    this.deferred = undefined;
    for (const f of this.later.splice(0)) f();
  }

  /** The kernel operations that would make IPVS match `table` (for plan); nothing is applied. */
  previewIpvs(table: DesiredTable): string[] {
    return this.d.ipvs?.preview(table) ?? [];
  }

  /** The routes currently asked of BGP (for plan). */
  currentIntents(): RouteIntent[] {
    return intentsOf(this.derivation?.vips ?? new Map()).filter((i) => this.announced.has(canonicalAddress(i.vip.address)));
  }

  private laneDone<T, R>(lane: 'ipvs' | 'bgp' | 'addresses', r: LaneResult<T, R>): void {
    // Whatever became of it, the withdrawal's call is over (an older call's end is not): what
    // waited for it goes now.
    if (lane === 'bgp' && this.later.length && r.generation >= this.laterGen) this.runLater();
    // Nothing was applied, so nothing new can be announced either.
    if (r.skipped) return;
    const m = this.d.metrics;
    if (r.error) {
      m?.reconcileErrors.inc({ subsystem: lane });
      this.log.error(`${lane} reconcile failed; retrying`, { error: r.error.message });
      this.d.journal.append(lane === 'bgp' ? 'route' : 'ipvs', `${lane} reconcile failed`, { error: r.error.message });
      this.retryLater();
      return;
    }
    m?.reconciles.inc({ subsystem: lane });
    if (lane === 'ipvs') {
      const res = r.result as ReconcileResult;
      if (res.ops > 0) this.d.journal.append('ipvs', `applied ${res.ops} IPVS operations`, { ms: Math.round(res.durationMs), draining: res.draining });
      m?.reconcileSeconds.observe({ subsystem: 'ipvs' }, res.durationMs / 1000);
    }
    if (lane === 'bgp') {
      const res = r.result as RouteChanges;
      for (const a of res.announced) this.d.journal.append('route', `announced ${a}`);
      for (const a of res.updated) this.d.journal.append('route', `updated ${a}`);
      for (const a of res.withdrawn) this.d.journal.append('route', `withdrawn ${a}`);
      for (const x of res.rejected) this.d.journal.append('route', `refused ${x.address}`, { reason: x.reason });
      if (!res.deferred) {
        this.announced.clear();
        for (const i of r.value as RouteIntent[]) if (!i.pending) this.announced.add(canonicalAddress(i.vip.address));
      }
      this.retireAfterWithdraw(r.generation);
      return;
    }
    if (lane === 'addresses' && (r.result as AddressChanges).failed.length > 0) {
      // Some addresses did not take: the same state must be applied again, not skipped as equal.
      this.addrLane.forget();
      this.retryLater();
    }
    // A VIP that was waiting for its address and IPVS to land can now be announced.
    if ([...this.upGen].some(([v, g]) => !this.announced.has(v) && this.ipvsLane.applied >= g && this.addrLane.applied >= g)) this.schedule(true);
  }

  /** A pass after a pause, for a lane that failed: the lane keeps the newest state. */
  private retryLater(): void {
    if (this.stopped) return;
    this.retryTimer ??= setTimeout(() => {
      this.retryTimer = undefined;
      this.schedule(true);
    }, 1000);
  }

  private retireAfterWithdraw(gen: number): void {
    for (const [addr, r] of this.retiring) {
      if (r.done || r.timer || gen < r.gen) continue;
      r.withdrawnAt ??= Date.now();
      // A router holding our routes as stale (a session down, e.g. right after a restart) drops
      // this one only once the session is back; until then the address still draws traffic.
      // Past the restart time it has dropped every stale route anyway.
      const bgp = this.config.bgp;
      if (bgp && this.d.bgp && !this.d.bgp.withdrawalsDelivered() && Date.now() - r.withdrawnAt < bgp.gracefulRestart.restartTime) {
        r.timer = setTimeout(() => {
          r.timer = undefined;
          this.retireAfterWithdraw(gen);
        }, 250);
        continue;
      }
      r.timer = setTimeout(() => {
        r.timer = undefined;
        r.done = true;
        this.log.info('VIP withdrawn and propagated; removing its services and address', { vip: addr });
        this.schedule(true);
      }, this.config.bgp?.withdrawDelay ?? 0);
    }
  }

  /** Applies a new, valid config: only the difference reaches the subsystems. */
  async reconfigure(next: Config): Promise<void> {
    const prev = this.config;
    const gone = prev.vips.filter((v) => !next.vips.some((n) => canonicalAddress(n.address) === canonicalAddress(v.address)));
    for (const v of gone) {
      const addr = canonicalAddress(v.address);
      // As last derived; at their configured weights if nothing was.
      const services = prev.services.filter((s) => canonicalAddress(s.vip) === addr).map((s) => this.derivation?.table.get(tableId(s)) ?? ipvsService(s));
      this.retiring.set(addr, { vip: v, services, gen: this.gen + 1, done: false });
    }
    // A VIP that comes back while retiring is simply configured again.
    for (const v of next.vips) {
      const r = this.retiring.get(canonicalAddress(v.address));
      if (r) {
        clearTimeout(r.timer);
        this.retiring.delete(canonicalAddress(v.address));
      }
    }
    this.config = next;
    this.d.ipvs?.setVipRanges(next.vipRanges);
    this.d.addresses?.setVipRanges(next.vipRanges);
    const summary = this.d.health.update(healthTargets(next));
    for (const id of summary.removed) this.health.delete(id);
    for (const id of summary.changed) this.health.delete(id);
    if (this.d.bgp && next.bgp) await this.d.bgp.reconfigure(next.bgp);
    if (this.synced) {
      await this.d.presence.open(next.coordinator.presencePorts);
      if (next.coordinator.resyncInterval !== prev.coordinator.resyncInterval) this.startResync();
    }
    this.schedule(true);
  }

  /** Waits until every lane is idle (tests, benchmarks, shutdown). */
  async settle(): Promise<void> {
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setImmediate(r));
      if (this.held) await new Promise((r) => setTimeout(r, WITHDRAW_HEAD_START_MS + 5));
      if (this.batchTimer || this.leading) await new Promise((r) => setTimeout(r, this.config.coordinator.batchDelay + 5));
      await Promise.all([this.ipvsLane.idle(), this.bgpLane.idle(), this.addrLane.idle()]);
    }
  }

  /** Stops serving: presence closed, routes withdrawn (then the propagation delay), checks stopped. IPVS stays. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.batchTimer);
    clearImmediate(this.leading);
    clearTimeout(this.held);
    clearTimeout(this.retryTimer);
    clearInterval(this.resyncTimer);
    clearTimeout(this.graceTimer);
    clearTimeout(this.deferred);
    clearImmediate(this.urgentTurn);
    for (const r of this.retiring.values()) clearTimeout(r.timer);
    await this.d.presence.close();
    this.ipvsLane.close();
    this.addrLane.close();
    this.bgpLane.close();
    // Closed lanes ignore the hand-overs; the journal still gets the deferred passes' events.
    this.runLater();
    await this.d.bgp?.stop({ withdraw: true });
    this.d.health.stop();
    await this.d.arp?.stop();
    await this.d.ipvs?.stop();
  }
}

const isUp = (s: VipState): s is 'up' | 'softfail' => s === 'up' || s === 'softfail';

/** Every BGP-mode VIP that is up or soft-failed. */
function intentsOf(vips: ReadonlyMap<string, DesiredVip>): RouteIntent[] {
  const out: RouteIntent[] = [];
  for (const v of vips.values()) if (v.config.mode === 'bgp' && isUp(v.state)) out.push({ vip: v.config, state: v.state });
  return out;
}

function noRoutes(): RouteChanges {
  return { announced: [], updated: [], withdrawn: [], rejected: [], deferred: false };
}
