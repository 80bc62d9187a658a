/**
 * The BGP speaker the coordinator uses: desired state in (BgpConfig, VIP route intents),
 * minimal change out (peers added/changed/removed, routes announced/updated/withdrawn).
 * It owns the gobgpd supervisor and restores gobgpd's whole state after a restart.
 *
 * Graceful restart: after a crash or kill -9 of vipd or gobgpd, the new gobgpd gets every
 * path first and the peers last, added with `local_restarting`, so routers keep our routes
 * as stale and see them refreshed with no withdrawal. The End-of-RIB gobgpd sends once a
 * session is up makes routers drop every stale route not refreshed by then, so peers are added
 * only when the route set is complete: not before the first setRoutes() (the coordinator calls
 * it once health has decided), and while restarting not while any VIP is `pending` (up, but
 * its address or IPVS not applied yet), for at most half the graceful restart time.
 */
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import type { BgpConfig, PeerConfig } from '../config/schema.js';
import type { Logger } from '../log/logger.js';
import type { GobgpClient, PathStream, PeerWatch } from './client.js';
import type { PathMsg, PeerEvent, PeerInfo, SessionState } from './messages.js';
import { diffPeers, globalMsg, needsRestart, peerKey, toPeerMsg, validateBgpConfig } from './peers.js';
import { joinEncoded, type EncodedPaths } from './proto.js';
import { diffRoutes, needsSending, planChunks, routeKey, toPathMsg, type PlannedRoute, type RejectedRoute, type RouteIntent, type RouteMemo } from './routes.js';
import { GobgpdSupervisor, type GobgpdLogEntry } from './supervisor.js';

export type { SessionState } from './messages.js';
export type { RejectedRoute, RouteIntent } from './routes.js';

export class BgpConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`BGP config refused: ${problems.join('; ')}`);
    this.name = 'BgpConfigError';
  }
}

export interface SpeakerOptions {
  /** Holds gobgpd's pid file and, unless bgp.gobgpd.socket says otherwise, its API socket. */
  runDir: string;
  /** Command prefix for gobgpd (tests: `['ip', 'netns', 'exec', ns]`); empty in production. */
  wrap?: readonly string[];
  protoDir?: string;
  restartBackoff?: { initialMs: number; maxMs: number };
}

export interface RouteChanges {
  /** Canonical prefixes. */
  announced: string[];
  updated: string[];
  withdrawn: string[];
  /** VIPs refused before reaching gobgpd, with the reason. */
  rejected: RejectedRoute[];
  /** gobgpd is down or restarting: the new state is kept and applied once it is back. */
  deferred: boolean;
}

export interface ReconfigureChanges {
  peers: { added: string[]; updated: string[]; removed: string[] };
  routes: RouteChanges;
  /** A global setting changed, so gobgpd was restarted (gracefully: routers keep our routes). */
  restarted: boolean;
}

export interface PeerStatus {
  address: string;
  asn: number;
  description?: string;
  state: SessionState;
  /** When the session came up (ISO 8601), while established. */
  establishedAt?: string;
  uptimeSeconds?: number;
  lastError?: string;
  /** Times vipd saw the session go down. */
  flops: number;
  advertised: number;
  received: number;
  accepted: number;
}

type Events = {
  /** A peer's session state changed. */
  peer: [status: PeerStatus, previous: SessionState];
  /** gobgpd went down (it is being restarted) or is back with peers and routes restored. */
  gobgpd: [state: 'down' | 'up'];
};

/** gobgpd log messages that explain a session failure (not e.g. a routine connection collision). */
const SESSION_ERRORS = /^(Peer Down|received notification|sent notification|hold timer expired|Session will be reset|graceful restart timer expired)/;

const NO_CHANGES = { announced: [], updated: [], withdrawn: [] };

/** VIPs planned per step of sync(): one AddPathStream batch. */
const PLAN_CHUNK = 1_000;
/** Withdrawals encoded ahead per event-loop turn: thousands of routes never hold the loop long. */
const ENCODE_CHUNK = 200;
/**
 * More than a chunk to encode waits until the routes have not changed for this long, so the work
 * does not compete with a change still on its way to the routers (in the bgp bench, encoding
 * 10k at once slowed the announcement of the next 10k by 30%).
 */
const ENCODE_AFTER_MS = 1_000;

function peerStatus(p: PeerConfig): PeerStatus {
  return { address: peerKey(p), asn: p.asn, ...(p.description ? { description: p.description } : {}), state: 'IDLE', flops: 0, advertised: 0, received: 0, accepted: 0 };
}

export class BgpSpeaker extends EventEmitter<Events> {
  private cfg: BgpConfig;
  private supervisor: GobgpdSupervisor;
  private readonly log: Logger;
  /** Serialises every operation on gobgpd: planning and applying must not interleave. */
  private chain: Promise<unknown> = Promise.resolve();
  /** Operations queued or running on `chain`. */
  private ops = 0;
  /** Routes withdrawn by withdrawNow() that no setRoutes() has reported yet. */
  private withdrawnAtOnce: string[] = [];
  private intents: readonly RouteIntent[] = [];
  /** Per-VIP plans for the current config: a new one on every reconfigure. */
  private memo: RouteMemo = new WeakMap();
  /** What gobgpd holds (as far as vipd knows); emptied when gobgpd restarts. */
  private readonly announced = new Map<string, PlannedRoute>();
  /**
   * The withdrawal of each announced route, encoded after its announcement: a withdrawal then
   * costs a write, not a protobuf encoding (about 2 ms of an urgent withdrawal in the emulated VM).
   * gobgpd matches a withdrawal by its NLRI, so an update keeps its route's.
   */
  private readonly withdrawals = new Map<string, EncodedPaths>();
  /** Announced routes whose withdrawal is not encoded yet: a change costs what it added, not a scan of every route. */
  private readonly unencoded = new Set<string>();
  private encodeTimer?: NodeJS.Timeout;
  /** The client of a gobgpd that is started and configured; undefined while down. */
  private live?: GobgpClient;
  private watch?: PeerWatch;
  private rewatchTimer?: NodeJS.Timeout;
  /** Routes were set at least once, so peers may be brought up. */
  private synced = false;
  /** Peers (canonical addresses) configured in the running gobgpd. */
  private readonly inGobgpd = new Set<string>();
  /** VIPs refused by the last plan. */
  private rejected: RejectedRoute[] = [];
  /** The next peers added get graceful restart's Restart State (gobgpd was restarted). */
  private restarting = false;
  /** VIPs of the last setRoutes() that are up but not announced yet. */
  private pending = 0;
  /** While restarting: ends the wait for pending VIPs (peers are added anyway). */
  private holdTimer?: NodeJS.Timeout;
  private holdExpired = false;
  private started = false;
  private stopped = false;
  private readonly status = new Map<string, PeerStatus>();
  /** The gobgpd (by client) that last reported each peer's session up. */
  private readonly establishedOn = new Map<string, GobgpClient>();

  constructor(
    cfg: BgpConfig,
    log: Logger,
    private readonly opts: SpeakerOptions,
  ) {
    super();
    BgpSpeaker.check(cfg);
    this.cfg = cfg;
    this.log = log.child('bgp');
    this.supervisor = this.makeSupervisor(cfg);
    for (const p of cfg.peers) this.status.set(peerKey(p), peerStatus(p));
  }

  /** Throws a BgpConfigError listing every problem; nothing reaches gobgpd. */
  static check(cfg: BgpConfig): void {
    const problems = validateBgpConfig(cfg);
    if (problems.length) throw new BgpConfigError(problems);
  }

  /** gobgpd's API socket (tests and diagnostics may connect to it). */
  get socketPath(): string {
    return this.cfg.gobgpd.socket ?? join(this.opts.runDir, 'gobgpd.sock');
  }

  get gobgpdPid(): number | undefined {
    return this.supervisor.pid;
  }

  private makeSupervisor(cfg: BgpConfig): GobgpdSupervisor {
    const sup = new GobgpdSupervisor({
      binary: cfg.gobgpd.binary,
      socket: cfg.gobgpd.socket ?? join(this.opts.runDir, 'gobgpd.sock'),
      runDir: this.opts.runDir,
      startTimeoutMs: cfg.gobgpd.startTimeout,
      log: this.log,
      ...(this.opts.wrap ? { wrap: this.opts.wrap } : {}),
      ...(this.opts.protoDir ? { protoDir: this.opts.protoDir } : {}),
      ...(this.opts.restartBackoff ? { restartBackoff: this.opts.restartBackoff } : {}),
    });
    sup.on('exit', () => this.onGobgpdDown());
    sup.on('ready', (client) => {
      this.serial(async () => {
        if (this.stopped) return;
        this.restarting = true;
        await this.restore(client);
      }).catch((e: unknown) => this.restoreFailed(sup, e));
    });
    sup.on('log', (e) => this.onGobgpdLog(e));
    return sup;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    this.ops++;
    const p = this.chain.then(fn).finally(() => this.ops--);
    this.chain = p.catch(() => undefined);
    return p;
  }

  /** A gobgpd that could not be brought to the desired state is restarted (with the supervisor's backoff) and restored from scratch. */
  private restoreFailed(sup: GobgpdSupervisor, e: unknown): void {
    this.log.error('restoring gobgpd failed; restarting it', { error: (e as Error).message });
    sup.recycle();
  }

  /**
   * Starts gobgpd and BGP. Peers come up with the first setRoutes(). When a previous vipd
   * left gobgpd behind (crash, kill -9, restart), this is a graceful restart. Throws only when
   * gobgpd cannot be spawned: a gobgpd that is slow, dies or fails its restore is restarted by
   * the supervisor and restored on its `ready`.
   */
  start(): Promise<void> {
    return this.serial(async () => {
      if (this.stopped) throw new Error('BGP speaker is stopped');
      if (this.started) return;
      const { recovered, client } = await this.supervisor.start();
      this.restarting = recovered;
      if (recovered) this.log.info('previous gobgpd did not stop cleanly: graceful restart, routers keep our routes until we refresh them');
      // Without a client gobgpd is still starting: its `ready` restores it.
      this.started = true;
      if (client) await this.restore(client).catch((e: unknown) => this.restoreFailed(this.supervisor, e));
    });
  }

  /** Brings a fresh gobgpd to the desired state: BGP started, every path added, then the peers. */
  private async restore(client: GobgpClient): Promise<void> {
    this.live = undefined;
    this.announced.clear();
    this.withdrawals.clear();
    this.unencoded.clear();
    this.inGobgpd.clear();
    const g = await client.getBgp();
    // StartBgp is not idempotent (it rebuilds the RIB): only on a gobgpd that has not started BGP.
    if (g.asn === 0) await client.startBgp(globalMsg(this.cfg));
    this.live = client;
    this.startWatch(client);
    if (this.synced) {
      const { deferred } = await this.sync(client);
      if (deferred) throw new Error('gobgpd went away while its routes were restored');
      await this.addPeers(client);
    }
    this.emit('gobgpd', 'up');
  }

  /**
   * Adds every configured peer gobgpd does not have yet (all of them after a (re)start), unless
   * routes are not set yet or, while restarting, some VIP is pending: a session opened now
   * would end with End-of-RIB and routers would drop the stale routes of those VIPs.
   */
  private async addPeers(client: GobgpClient): Promise<void> {
    if (!this.synced || this.holding()) return;
    const missing = this.cfg.peers.filter((p) => !this.inGobgpd.has(peerKey(p)));
    for (const p of missing) {
      await client.addPeer(toPeerMsg(p, this.cfg, { restarting: this.restarting }));
      this.inGobgpd.add(peerKey(p));
    }
    this.restarting = false;
    this.holdExpired = false;
    clearTimeout(this.holdTimer);
    this.holdTimer = undefined;
    if (missing.length) this.log.info('peers configured', { peers: missing.map(peerKey) });
  }

  /** Whether peers wait for pending VIPs; starts the wait's time limit on first use. */
  private holding(): boolean {
    if (!this.restarting || this.pending === 0 || this.holdExpired) return false;
    if (!this.holdTimer) {
      // Well inside the routers' stale timer (the restart time we advertise).
      const ms = this.cfg.gracefulRestart.restartTime / 2;
      this.log.info('graceful restart: sessions wait until the pending VIPs are announced', { pending: this.pending, maxMs: ms });
      this.holdTimer = setTimeout(() => {
        this.serial(async () => {
          this.holdExpired = true;
          if (this.stopped || !this.live) return;
          this.log.warn('graceful restart: VIPs still pending; opening sessions without them', { pending: this.pending });
          await this.addPeers(this.live);
        }).catch((e: unknown) => this.log.error('adding peers failed', { error: (e as Error).message }));
      }, ms);
    }
    return true;
  }

  /**
   * Sets the routes: the listed VIPs are announced (with soft-fail attributes where asked),
   * every other route vipd announced is withdrawn. Invalid VIPs are refused (listed in
   * `rejected`) and never reach gobgpd; the valid ones are applied.
   */
  setRoutes(intents: readonly RouteIntent[]): Promise<RouteChanges> {
    return this.serial(async () => {
      if (this.stopped) throw new Error('BGP speaker is stopped');
      this.intents = intents.filter((i) => !i.pending);
      this.pending = intents.length - this.intents.length;
      this.synced = true;
      const changes = await this.sync(this.live);
      if (this.live) await this.addPeers(this.live);
      return changes.deferred ? changes : { ...changes, withdrawn: [...this.withdrawnAtOnce.splice(0), ...changes.withdrawn] };
    });
  }

  /**
   * Withdraws one VIP's route now, ahead of the setRoutes() without it that the caller makes
   * next: its encoded withdrawal is written in this turn, before any planning. Only when nothing
   * else is on its way to gobgpd (else the order of the two streams at gobgpd would be unknown)
   * and the withdrawal is encoded; otherwise undefined, and setRoutes() withdraws it as usual.
   * Resolves (never rejects) once gobgpd has answered. The next setRoutes() reports it withdrawn.
   */
  withdrawNow(address: string): Promise<void> | undefined {
    const key = routeKey(address);
    const client = this.live;
    if (this.stopped || this.ops > 0 || !client || key === undefined) return undefined;
    const bytes = this.withdrawals.get(key);
    const route = this.announced.get(key);
    if (!bytes || !route) return undefined;
    const stream = client.addPathStream();
    stream.write(bytes);
    const sent = stream.end();
    this.forget(key);
    this.withdrawnAtOnce.push(key);
    return this.serial(() =>
      sent.then(
        () => this.log.info('route withdrawn at once', { route: key }),
        (e: unknown) => {
          // Unknown whether gobgpd took it: withdrawn again by the next sync, from the route.
          this.withdrawnAtOnce = this.withdrawnAtOnce.filter((k) => k !== key);
          if (this.live === client) this.announced.set(key, route);
          this.log.error('urgent withdrawal failed; withdrawing with the next change', { route: key, error: (e as Error).message });
        },
      ),
    );
  }

  /** Withdraws every route (the deliberate-stop path); later setRoutes() announce again. */
  withdrawAll(): Promise<RouteChanges> {
    return this.setRoutes([]);
  }

  /** Logs refused VIPs once each (a VIP that stays invalid is not reported on every call). */
  private noteRejected(rejected: RejectedRoute[]): void {
    const seen = new Set(this.rejected.map((r) => `${r.address} ${r.reason}`));
    for (const r of rejected) {
      if (!seen.has(`${r.address} ${r.reason}`)) this.log.error('VIP route refused; not sent to gobgpd', { vip: r.address, reason: r.reason });
    }
    this.rejected = rejected;
  }

  /**
   * Plans the intents and sends gobgpd the difference from what it holds, over one AddPathStream:
   * each chunk's announcements go out while the next chunk is planned, so gobgpd works in
   * parallel; withdrawals (paths with is_withdraw, matched by NLRI: never a bulk delete) follow
   * once the whole plan is known. Without a client the plan is only recorded (deferred), and so
   * it is when gobgpd dies meanwhile: the restore after its restart converges on it.
   */
  private async sync(client: GobgpClient | undefined): Promise<RouteChanges> {
    const asn = this.cfg.asn;
    let stream: PathStream | undefined;
    const send = (paths: PathMsg[]): void => {
      if (client && paths.length) (stream ??= client.addPathStream()).write(paths);
    };
    const chunks = planChunks(this.intents, this.cfg, this.memo, PLAN_CHUNK);
    let step = chunks.next();
    while (!step.done) {
      send(step.value.filter((r) => needsSending(this.announced.get(r.key), r)).map((r) => toPathMsg(r, asn)));
      // Let the batch reach gobgpd before planning the next chunk.
      if (stream) await new Promise((resolve) => setImmediate(resolve));
      step = chunks.next();
    }
    const { routes, rejected } = step.value;
    this.noteRejected(rejected);
    if (!client) return { ...NO_CHANGES, rejected, deferred: true };
    // `announced` is unchanged so far: the diff's announce and update are exactly what was sent.
    const d = diffRoutes(this.announced, routes);
    const early: EncodedPaths[] = [];
    const late: PathMsg[] = [];
    for (const r of d.withdraw) {
      const e = this.withdrawals.get(r.key);
      if (e) early.push(e);
      else late.push(toPathMsg(r, asn, true));
    }
    if (early.length) (stream ??= client.addPathStream()).write(joinEncoded(early));
    send(late);
    if (stream) {
      try {
        await (stream as PathStream).end();
      } catch (e) {
        // Unknown how much got through: forget the added ones (re-sent next time), keep withdrawals pending.
        for (const r of [...d.announce, ...d.update]) this.forget(r.key);
        if (this.live !== client) return { ...NO_CHANGES, rejected, deferred: true };
        throw e;
      }
      this.log.info('routes changed', { announced: d.announce.length, updated: d.update.length, withdrawn: d.withdraw.length, withdrawnEncodedAhead: early.length, total: routes.size });
    }
    for (const r of [...d.announce, ...d.update]) this.announced.set(r.key, r);
    for (const r of d.announce) this.unencoded.add(r.key);
    for (const r of d.withdraw) this.forget(r.key);
    if (d.announce.length + d.update.length + d.withdraw.length) this.encodeWithdrawals(client);
    const keys = (rs: PlannedRoute[]): string[] => rs.map((r) => r.key);
    return { announced: keys(d.announce), updated: keys(d.update), withdrawn: keys(d.withdraw), rejected, deferred: false };
  }

  /** A route gobgpd no longer holds (or may not): neither announced nor to be withdrawn from ready bytes. */
  private forget(key: string): void {
    this.announced.delete(key);
    this.withdrawals.delete(key);
    this.unencoded.delete(key);
  }

  /** After a change of routes: the withdrawals not encoded yet are, a few at once, many once the routes are quiet. */
  private encodeWithdrawals(client: GobgpClient): void {
    clearTimeout(this.encodeTimer);
    if (this.stopped || this.unencoded.size === 0) return;
    this.encodeTimer = setTimeout(() => this.encodeChunk(client), this.unencoded.size <= ENCODE_CHUNK ? 0 : ENCODE_AFTER_MS);
  }

  private encodeChunk(client: GobgpClient): void {
    this.encodeTimer = undefined;
    if (this.stopped || this.live !== client) return;
    let n = 0;
    for (const key of this.unencoded) {
      if (n++ === ENCODE_CHUNK) {
        this.encodeTimer = setTimeout(() => this.encodeChunk(client), 0);
        return;
      }
      this.unencoded.delete(key);
      const r = this.announced.get(key);
      if (r) this.withdrawals.set(key, client.encode([toPathMsg(r, this.cfg.asn, true)]));
    }
  }

  /**
   * Applies a new BGP config: changed peers are re-created, new ones added, removed ones
   * deleted, unchanged ones left alone; routes are re-planned (next hops may have changed).
   * A new ASN, router id, listen port or gobgpd binary/socket restarts gobgpd gracefully.
   * An invalid config throws BgpConfigError and changes nothing.
   */
  async reconfigure(next: BgpConfig): Promise<ReconfigureChanges> {
    BgpSpeaker.check(next);
    return this.serial(async () => {
      if (this.stopped) throw new Error('BGP speaker is stopped');
      const prev = this.cfg;
      const pd = diffPeers(prev, next);
      const restart = needsRestart(prev, next);
      this.cfg = next;
      this.memo = new WeakMap();
      for (const key of pd.remove) {
        this.status.delete(key);
        this.establishedOn.delete(key);
      }
      for (const p of [...pd.add, ...pd.update]) this.status.set(peerKey(p), { ...(this.status.get(peerKey(p)) ?? peerStatus(p)), asn: p.asn, ...(p.description ? { description: p.description } : {}) });
      const peers = { added: pd.add.map(peerKey), updated: pd.update.map(peerKey), removed: pd.remove };
      if (restart && this.started) {
        this.log.info('global BGP settings changed: restarting gobgpd gracefully');
        this.stopWatch();
        this.live = undefined;
        await this.supervisor.stop('SIGKILL');
        this.supervisor.removeAllListeners();
        this.supervisor = this.makeSupervisor(next);
        const { client } = await this.supervisor.start();
        this.restarting = true;
        if (!client) return { peers, routes: { ...NO_CHANGES, rejected: this.rejected, deferred: true }, restarted: true };
        try {
          await this.restore(client);
        } catch (e) {
          this.supervisor.recycle();
          throw e;
        }
        return { peers, routes: { ...NO_CHANGES, announced: [...this.announced.keys()], rejected: this.rejected, deferred: false }, restarted: true };
      }
      if (restart) {
        // Not started yet: the next start() simply uses the new settings.
        this.supervisor.removeAllListeners();
        this.supervisor = this.makeSupervisor(next);
      }
      const client = this.live;
      if (client) {
        // UpdatePeer in gobgpd 3.10 applies some changes in place, silently ignores others
        // (multihop, TTL) and compares against defaulted settings: delete and re-add instead.
        for (const key of [...pd.remove, ...pd.update.map(peerKey)]) {
          if (!this.inGobgpd.has(key)) continue;
          await client.deletePeer(key);
          this.inGobgpd.delete(key);
        }
        await this.addPeers(client);
        if (pd.remove.length + pd.update.length + pd.add.length) this.log.info('peers changed', peers);
      }
      return { peers, routes: await this.sync(this.live), restarted: false };
    });
  }

  /**
   * Stops BGP. `withdraw: true` (SIGTERM, operator stop): withdraw every route, wait
   * bgp.withdrawDelay for the withdrawal to propagate, then stop gobgpd (Cease to peers).
   * `withdraw: false` (restart): SIGKILL gobgpd so routers keep our routes as stale until the
   * next start refreshes them.
   */
  stop(opts: { withdraw: boolean }): Promise<void> {
    return this.serial(async () => {
      if (this.stopped) return;
      this.stopped = true;
      clearTimeout(this.encodeTimer);
      clearTimeout(this.holdTimer);
      this.holdTimer = undefined;
      if (opts.withdraw && this.live && this.announced.size > 0) {
        this.intents = [];
        try {
          const { withdrawn } = await this.sync(this.live);
          this.log.info('routes withdrawn; waiting for the withdrawal to propagate', { withdrawn: withdrawn.length, delayMs: this.cfg.withdrawDelay });
          await new Promise((r) => setTimeout(r, this.cfg.withdrawDelay));
        } catch (e) {
          this.log.error('withdrawing routes failed; stopping gobgpd anyway (peers get Cease)', { error: (e as Error).message });
        }
      }
      this.stopWatch();
      this.live = undefined;
      await this.supervisor.stop(opts.withdraw ? 'SIGTERM' : 'SIGKILL');
      this.supervisor.removeAllListeners();
      this.log.info('BGP stopped', { withdrew: opts.withdraw });
    });
  }

  // ------------------------------------------------------------------ peer status

  /** Peer status as last seen (session state and errors live; counters as of refreshPeers()). */
  peers(): PeerStatus[] {
    const now = Date.now();
    return [...this.status.values()].map((s) => ({
      ...s,
      ...(s.establishedAt ? { uptimeSeconds: Math.max(0, Math.round((now - Date.parse(s.establishedAt)) / 1000)) } : {}),
    }));
  }

  /**
   * Whether a withdrawal made now reaches every router that may hold our routes: each peer's
   * session is up, or graceful restart is off (a router then drops our routes with the session).
   * A router in graceful-restart helper mode keeps them as stale until the session is back and
   * End-of-RIB arrives, or until its restart timer runs out.
   */
  withdrawalsDelivered(): boolean {
    return !this.cfg.gracefulRestart.enabled || [...this.status.values()].every((s) => s.state === 'ESTABLISHED');
  }

  /** Asks gobgpd for fresh counters and states; returns peers(). */
  async refreshPeers(): Promise<PeerStatus[]> {
    const client = this.live;
    if (client) for (const p of await client.listPeer()) this.updatePeer(client, p, true);
    return this.peers();
  }

  private startWatch(client: GobgpClient): void {
    this.stopWatch();
    this.watch = client.watchPeers(
      (e: PeerEvent) => {
        if (e.peer && (e.type === 'INIT' || e.type === 'STATE')) this.updatePeer(client, e.peer);
      },
      (err) => {
        if (this.live !== client) return;
        // The stream ended on a live gobgpd: watch again shortly rather than go blind.
        this.log.warn('gobgpd peer event stream ended; re-subscribing', { error: err?.message });
        this.rewatchTimer = setTimeout(() => {
          if (this.live === client) this.startWatch(client);
        }, 1_000);
      },
    );
  }

  private stopWatch(): void {
    clearTimeout(this.rewatchTimer);
    this.rewatchTimer = undefined;
    this.watch?.cancel();
    this.watch = undefined;
  }

  private setState(s: PeerStatus, state: SessionState, patch: Partial<PeerStatus>): void {
    const previous = s.state;
    Object.assign(s, patch, { state });
    if (state !== 'ESTABLISHED') delete s.establishedAt;
    if (previous === 'ESTABLISHED' && state !== 'ESTABLISHED') s.flops++;
    if (previous !== state) this.emit('peer', { ...s }, previous);
  }

  /** Takes a peer's state from an event or ListPeer; counters only from ListPeer (events carry none). */
  private updatePeer(from: GobgpClient, p: PeerInfo, withCounters = false): void {
    const addr = p.state?.neighbor_address || p.conf?.neighbor_address;
    const s = addr ? this.status.get(addr) : undefined;
    if (!s || !p.state) return;
    const patch: Partial<PeerStatus> = {};
    if (withCounters) {
      // gobgpd counts the End-of-RIB marker it sends per family (with graceful restart) as advertised.
      const eor = this.cfg.gracefulRestart.enabled ? 1 : 0;
      patch.advertised = patch.received = patch.accepted = 0;
      for (const a of p.afi_safis) {
        patch.advertised += Math.max(0, Number(a.state?.advertised ?? 0) - eor);
        patch.received += Number(a.state?.received ?? 0);
        patch.accepted += Number(a.state?.accepted ?? 0);
      }
    }
    if (p.state.session_state === 'ESTABLISHED') {
      const up = Number(p.timers?.state?.uptime?.seconds ?? 0);
      patch.establishedAt = up > 0 ? new Date(up * 1000).toISOString() : (s.establishedAt ?? new Date().toISOString());
    }
    const previous = s.state;
    this.setState(s, p.state.session_state, patch);
    // Only a session this gobgpd had up: after gobgpd is replaced its peers start IDLE, and a
    // re-add there could reset a session coming up, which routers take as a withdrawal.
    if (s.state === 'ESTABLISHED') this.establishedOn.set(s.address, from);
    else if (previous === 'ESTABLISHED' && s.state === 'IDLE' && this.establishedOn.get(s.address) === from) this.skipIdleHold(s.address);
  }

  /**
   * gobgpd 3.x keeps a peer whose session ended in IDLE for a fixed 5 s, closing every connection
   * the router makes meanwhile, and then dials only after another 5-10 s. A peer deleted and
   * added again starts in ACTIVE at once: a router that connects to us (bgp.listenPort) gets
   * its session back within its own connect retry, and gobgpd's first dial comes 5 s sooner.
   */
  private skipIdleHold(key: string): void {
    const client = this.live;
    this.serial(async () => {
      // Only a peer still held: not one that reconnected, was removed, or belongs to an earlier gobgpd.
      if (this.stopped || !client || this.live !== client || !this.inGobgpd.has(key) || this.status.get(key)?.state !== 'IDLE') return;
      await client.deletePeer(key);
      this.inGobgpd.delete(key);
      await this.addPeers(client);
      this.log.info('session ended: peer re-added, so it need not wait out gobgpd\'s idle hold', { peer: key });
    }).catch((e: unknown) => this.log.warn('re-adding a peer after its session ended failed', { peer: key, error: (e as Error).message }));
  }

  private onGobgpdDown(): void {
    this.stopWatch();
    this.live = undefined;
    for (const s of this.status.values()) this.setState(s, 'IDLE', { lastError: 'gobgpd exited; restarting it' });
    this.emit('gobgpd', 'down');
  }

  /** gobgpd says why a session failed only in its log: keep the last reason per peer. */
  private onGobgpdLog(e: GobgpdLogEntry): void {
    const { Topic, Key, State: _sessionState, ...rest } = e.fields;
    if (Topic !== 'Peer' || typeof Key !== 'string' || !SESSION_ERRORS.test(e.msg)) return;
    const s = this.status.get(Key);
    if (!s) return;
    const detail = Object.entries(rest)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
    s.lastError = detail ? `${e.msg}: ${detail}` : e.msg;
  }
}
