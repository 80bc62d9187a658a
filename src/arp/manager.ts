/**
 * ARP-mode VIPs on this director: which ones it owns (elected with its peers), their addresses on
 * the L2 interface while owned, gratuitous ARP for them, and the carrier of their interfaces.
 * The coordinator feeds it VIPs and their health and listens to its events; it never touches a
 * BGP-mode VIP.
 *
 * Order of effects, so that two directors never both answer for a VIP:
 * - taking a VIP: advertise "holding", add the address, announce (GARP now; the kernel's NA for IPv6);
 * - releasing: stop announcing (and wait for any arping in flight), remove the address, and only
 *   then advertise "not holding", which is what lets a peer take it.
 */
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import type { AddressChanges } from '../addr/addresses.js';
import { Guardian } from '../addr/guardian.js';
import { IpCommand } from '../addr/ip.js';
import type { HostAddress } from '../addr/plan.js';
import type { SysctlResult } from '../addr/sysctl.js';
import type { VipConfig } from '../config/schema.js';
import type { Logger } from '../log/logger.js';
import { canonicalAddress } from '../util/ip.js';
import { Announcer, type AnnounceResult, type AnnouncerCounters, type RoundReport } from './announcer.js';
import { Arping, detectArping, type ArpingFlavour } from './arping.js';
import { LinkWatch, type LinkReason } from './link.js';
import { decide, PeerTable, type AdvertEntry, type Decision, type Reason } from './ownership.js';
import { Presence, type PresenceCounters } from './presence.js';

/** The address side ArpManager needs (VipAddresses provides it). */
export interface AddressPort {
  reconcile(source: string, desired: readonly HostAddress[]): Promise<AddressChanges>;
  tune(devices: readonly { device: string; ipv6: boolean }[]): Promise<SysctlResult[]>;
}

export interface ArpManagerOptions {
  addresses: AddressPort;
  /** config.arp.interval: gratuitous ARP cadence. */
  intervalMs: number;
  /** config.arp.concurrency: arping processes at once. */
  concurrency: number;
  /** config.arp.arping */
  arping: 'auto' | ArpingFlavour;
  /** config.arp.peers: other directors (this director's own addresses may be listed too). */
  peers: readonly string[];
  /** Command and leading arguments of arping. */
  arpingCommand?: readonly string[];
  /** UDP port of ownership adverts (proposed arp.port). */
  port?: number;
  /** Advert period (proposed arp.advertInterval). */
  advertMs?: number;
  /** Silence after which a peer counts as gone (proposed arp.holdTime); 3.5 adverts by default. */
  holdMs?: number;
  /** HMAC key shared by all directors (proposed arp.secret). */
  secret?: string;
  /** Our address as peers know it; default: the source address of the route to the first peer. */
  self?: string;
  /** Carrier poll period (proposed arp.linkPoll). */
  linkPollMs?: number;
  dadOnClaim?: boolean;
  /** Start the dead-man switch that removes held VIPs if this process dies (see guardian.ts). */
  guardian?: boolean;
  ip?: IpCommand;
  /** Failed add/remove of an address is retried after this long. */
  retryMs?: number;
}

export const ARP_DEFAULTS = { port: 44445, advertMs: 200, linkPollMs: 100, retryMs: 1000 } as const;

type State = 'backup' | 'claiming' | 'owner' | 'releasing';

interface VipRuntime {
  address: string;
  device: string;
  /** A new interface from config: the VIP is released from `device` first, then moves. */
  nextDevice?: string;
  priority: number;
  preempt: boolean;
  up: boolean;
  /** Gone from config: released, then forgotten. */
  removed: boolean;
  state: State;
  decision?: Decision;
  /** After a failed address change: not eligible before this time (performance.now()). */
  retryAt: number;
}

export interface OwnerEvent {
  vip: string;
  device: string;
  owner: boolean;
  reason: Reason | 'address-failed' | 'stopping';
  peer?: string;
  /** ms since the epoch. */
  at: number;
}

export interface LinkEvent {
  device: string;
  up: boolean;
  reason: LinkReason;
  /** ARP-mode VIPs on the interface: down (and to be withdrawn from BGP) while `up` is false. */
  vips: string[];
}

export interface VipStatus {
  vip: string;
  device: string;
  state: State;
  up: boolean;
  linkUp: boolean;
  eligible: boolean;
  reason?: Reason;
  peer?: string;
}

export interface ArpCounters {
  takeovers: number;
  releases: number;
  addressFailures: number;
  announcer: AnnouncerCounters;
  presence?: PresenceCounters;
}

export type ArpEvents = {
  owner: [OwnerEvent];
  link: [LinkEvent];
  arp: [AnnounceResult];
  round: [RoundReport];
  sysctl: [SysctlResult[]];
};

export class ArpManager extends EventEmitter<ArpEvents> {
  private readonly vips = new Map<string, VipRuntime>();
  private readonly ip: IpCommand;
  private readonly advertMs: number;
  private readonly holdMs: number;
  private readonly table: PeerTable;
  private readonly link: LinkWatch;
  private announcer?: Announcer;
  private presence?: Presence;
  private guardian?: Guardian;
  private id = 'local';
  private readyAt = Infinity;
  private tick?: NodeJS.Timeout;
  private lastTick = 0;
  private applying?: Promise<void>;
  private again = false;
  private tuning: Promise<unknown> = Promise.resolve();
  private tunedFor = '';
  private phase: 'idle' | 'running' | 'stopping' = 'idle';
  private readonly counts = { takeovers: 0, releases: 0, addressFailures: 0 };

  constructor(
    private readonly opts: ArpManagerOptions,
    private readonly log: Logger,
  ) {
    super();
    this.ip = opts.ip ?? new IpCommand();
    this.advertMs = opts.advertMs ?? ARP_DEFAULTS.advertMs;
    this.holdMs = opts.holdMs ?? Math.round(this.advertMs * 3.5);
    this.table = new PeerTable(this.holdMs);
    this.link = new LinkWatch({ pollMs: opts.linkPollMs ?? ARP_DEFAULTS.linkPollMs });
  }

  /** Detects arping, finds our address, opens the advert port; VIPs are taken after the hold time. */
  async start(): Promise<void> {
    if (this.phase !== 'idle') return;
    const command = this.opts.arpingCommand ?? ['arping'];
    const flavour = this.opts.arping === 'auto' ? await detectArping(command) : this.opts.arping;
    const arping = new Arping({ command, flavour });
    const local = new Set((await this.ip.addresses()).map((a) => canonicalAddress(a.address)));
    const remote = this.opts.peers.map(canonicalAddress).filter((p) => !local.has(p));
    this.id = this.opts.self ?? (remote[0] ? await this.ip.routeSource(remote[0]) : undefined) ?? 'local';
    if (remote.length > 0 && this.id === 'local') throw new Error(`no route to ARP peer ${remote[0]}: cannot tell peers who we are`);

    this.announcer = new Announcer({ intervalMs: this.opts.intervalMs, concurrency: this.opts.concurrency, sender: arping, dadOnClaim: this.opts.dadOnClaim });
    this.announcer.on('result', (r) => this.onArp(r));
    this.announcer.on('round', (r) => this.emit('round', r));
    if (remote.length > 0) {
      this.presence = new Presence({
        id: this.id,
        boot: Date.now(),
        port: this.opts.port ?? ARP_DEFAULTS.port,
        peers: remote,
        advertMs: this.advertMs,
        secret: this.opts.secret,
      });
      this.presence.on('advert', (a) => {
        const { changed } = this.table.accept(a, performance.now());
        if (changed.length > 0) this.evaluate();
      });
      await this.presence.start();
    }
    // Started once nothing above can fail any more: a failed start leaves no process behind.
    if (this.opts.guardian ?? true) {
      this.guardian = new Guardian(this.ip.path);
      this.guardian.start();
    }
    this.link.on('change', (s) => {
      const vips = [...this.vips.values()].filter((v) => v.device === s.device).map((v) => v.address);
      if (s.up) this.log.info('link up', { device: s.device, vips });
      else this.log.warn('link down: its VIPs are down', { device: s.device, reason: s.reason, vips });
      this.emit('link', { device: s.device, up: s.up, reason: s.reason, vips });
      this.evaluate();
    });
    await this.link.watch(this.devices());
    this.link.start();
    this.announcer.start();

    // Listen before taking anything: a peer may hold our VIPs already.
    this.readyAt = performance.now() + (remote.length > 0 ? this.holdMs : 0);
    this.phase = 'running';
    this.log.info('ARP manager started', { id: this.id, arping: flavour, peers: remote, holdMs: this.holdMs, advertMs: this.advertMs });
    const tickMs = Math.max(10, Math.round(this.advertMs / 4));
    this.lastTick = performance.now();
    this.tick = setInterval(() => this.onTick(tickMs), tickMs);
    // Stale VIPs from an earlier run that died without its guardian: off the interfaces at once.
    await this.serialize(() => this.apply([], []));
    this.publish();
    this.evaluate();
  }

  /** The VIPs (all modes; only ARP-mode ones matter here) and whether each is healthy. */
  setVips(list: readonly { vip: VipConfig; up: boolean }[]): void {
    const seen = new Set<string>();
    for (const { vip, up } of list) {
      if (vip.mode !== 'arp' || !vip.interface) continue;
      const address = canonicalAddress(vip.address);
      seen.add(address);
      const v = this.vips.get(address);
      if (!v) {
        this.vips.set(address, { address, device: vip.interface, priority: vip.priority, preempt: vip.preempt, up, removed: false, state: 'backup', retryAt: 0 });
        continue;
      }
      Object.assign(v, { priority: vip.priority, preempt: vip.preempt, up, removed: false });
      if (vip.interface !== v.device) {
        if (v.state === 'backup') v.device = vip.interface;
        else v.nextDevice = vip.interface;
      }
    }
    for (const v of this.vips.values()) if (!seen.has(v.address)) v.removed = true;
    this.retune();
    if (this.phase === 'running') void this.link.watch(this.devices()).then(() => this.evaluate());
    this.publish();
    this.evaluate();
  }

  /** ARP-mode VIPs this director holds now. */
  owned(): string[] {
    return [...this.vips.values()].filter((v) => v.state === 'owner').map((v) => v.address);
  }

  status(): VipStatus[] {
    return [...this.vips.values()].map((v) => ({
      vip: v.address,
      device: v.device,
      state: v.state,
      up: v.up,
      linkUp: this.link.state(v.device)?.up ?? false,
      eligible: this.eligible(v),
      reason: v.decision?.reason,
      peer: v.decision?.peer,
    }));
  }

  counters(): ArpCounters {
    return {
      ...this.counts,
      announcer: this.announcer?.counters() ?? { rounds: 0, overruns: 0, lastRoundMs: 0, outcomes: {} },
      presence: this.presence?.counters(),
    };
  }

  /** Releases every VIP (addresses off, peers told), then closes everything it opened. */
  async stop(): Promise<void> {
    if (this.phase !== 'running') return;
    this.phase = 'stopping';
    clearInterval(this.tick);
    this.tick = undefined;
    await this.applying;
    await this.announcer?.stop();
    const held = [...this.vips.values()].filter((v) => v.state !== 'backup');
    for (const v of held) v.state = 'releasing';
    try {
      await this.opts.addresses.reconcile('arp', []);
      for (const v of held) {
        v.state = 'backup';
        this.emit('owner', { vip: v.address, device: v.device, owner: false, reason: 'stopping', at: Date.now() });
      }
    } catch (e) {
      this.log.error('could not remove VIP addresses on stop', { error: (e as Error).message });
    }
    for (const v of this.vips.values()) v.up = false;
    // Tell peers at once that nothing is held here, instead of letting them wait the hold time.
    await this.presence?.flush(this.entries());
    await this.presence?.stop();
    await this.link.stop();
    this.guardian?.hold([]);
    await this.guardian?.stop();
    this.phase = 'idle';
  }

  private devices(): string[] {
    return [...new Set([...this.vips.values()].flatMap((v) => [v.device, ...(v.nextDevice ? [v.nextDevice] : [])]))];
  }

  private retune(): void {
    const byDevice = new Map<string, boolean>();
    for (const v of this.vips.values()) {
      for (const d of [v.device, v.nextDevice]) if (d) byDevice.set(d, (byDevice.get(d) ?? false) || isIP(v.address) === 6);
    }
    const devices = [...byDevice].map(([device, ipv6]) => ({ device, ipv6 })).sort((a, b) => a.device.localeCompare(b.device));
    const key = JSON.stringify(devices);
    if (key === this.tunedFor) return;
    this.tunedFor = key;
    this.tuning = this.tuning
      .then(() => this.opts.addresses.tune(devices))
      .then((r) => this.emit('sysctl', r))
      .catch((e: unknown) => this.log.error('kernel settings failed', { error: (e as Error).message }));
  }

  private eligible(v: VipRuntime): boolean {
    return v.up && !v.removed && v.nextDevice === undefined && performance.now() >= v.retryAt && this.link.state(v.device)?.up === true;
  }

  private entries(): AdvertEntry[] {
    return [...this.vips.values()].map((v) => ({
      address: v.address,
      priority: v.priority,
      preempt: v.preempt,
      eligible: this.phase === 'running' && this.eligible(v),
      owner: v.state !== 'backup',
    }));
  }

  private publish(): void {
    if (this.phase === 'running') this.presence?.publish(this.entries());
  }

  private onTick(tickMs: number): void {
    const now = performance.now();
    const late = now - this.lastTick - tickMs;
    this.lastTick = now;
    // After a stall (a blocked event loop), adverts that arrived meanwhile are still queued behind
    // this timer: deciding now would take peers for dead. Decide on the next tick, after them.
    if (late > this.advertMs) {
      this.log.warn('event loop stalled: ownership decisions deferred one tick', { lateMs: Math.round(late) });
      return;
    }
    this.table.prune(now);
    this.evaluate();
  }

  private onArp(r: AnnounceResult): void {
    this.emit('arp', r);
    if (r.status === 'duplicate') this.log.error('duplicate address: another host answers for a VIP we hold', { vip: r.address, device: r.device, mac: r.mac });
    else if (r.status !== 'sent' && r.status !== 'unique') this.log.warn('gratuitous ARP failed', { vip: r.address, device: r.device, status: r.status, detail: r.detail });
  }

  /** Decides every VIP not in transition; applies the changes in one pass. */
  private evaluate(): void {
    if (this.phase !== 'running') return;
    if (this.applying) {
      this.again = true;
      return;
    }
    const now = performance.now();
    const ready = now >= this.readyAt;
    const claims: VipRuntime[] = [];
    const releases: VipRuntime[] = [];
    for (const v of [...this.vips.values()]) {
      if (v.state === 'claiming' || v.state === 'releasing') continue;
      const d = decide(
        { id: this.id, priority: v.priority, preempt: v.preempt, eligible: this.eligible(v), owner: v.state === 'owner' },
        ready,
        this.table.candidates(v.address, now),
      );
      v.decision = d;
      if (d.own && v.state === 'backup') claims.push(v);
      else if (!d.own && v.state === 'owner') releases.push(v);
      else if (v.state === 'backup') this.settle(v);
    }
    if (claims.length === 0 && releases.length === 0) return;
    void this.serialize(() => this.apply(claims, releases));
  }

  /** A VIP at rest after a release: forgotten if removed from config, moved if its interface changed. */
  private settle(v: VipRuntime): void {
    if (v.removed) this.vips.delete(v.address);
    else if (v.nextDevice) {
      v.device = v.nextDevice;
      v.nextDevice = undefined;
    }
  }

  /** Runs ownership changes one at a time; a decision asked for meanwhile runs after. */
  private serialize(fn: () => Promise<void>): Promise<void> {
    const tracked: Promise<void> = (this.applying ?? Promise.resolve())
      .then(fn)
      .catch((e: unknown) => this.log.error('ownership change failed', { error: (e as Error).message }))
      .finally(() => {
        if (this.applying === tracked) this.applying = undefined;
        if (this.again) {
          this.again = false;
          this.evaluate();
        }
      });
    this.applying = tracked;
    return tracked;
  }

  private async apply(claims: VipRuntime[], releases: VipRuntime[]): Promise<void> {
    for (const v of releases) v.state = 'releasing';
    for (const v of claims) v.state = 'claiming';
    // Claims are advertised as held before the address exists: peers back off a little early.
    if (claims.length > 0) this.publish();
    await Promise.all(releases.map((v) => this.announcer?.remove(v.address)));
    await this.tuning;

    const target = (v: VipRuntime): HostAddress => ({ address: v.address, device: v.device });
    const holding = [...this.vips.values()].filter((v) => v.state !== 'backup');
    const desired = holding.filter((v) => v.state !== 'releasing').map(target);
    // Until the change is known, the guardian holds everything that may be on an interface.
    this.guardian?.hold(holding.map(target));
    let changes: AddressChanges;
    try {
      changes = await this.opts.addresses.reconcile('arp', desired);
    } catch (e) {
      const error = (e as Error).message;
      changes = { added: [], removed: [], refused: [], failed: [...claims, ...releases].map((v) => ({ op: 'add' as const, ...target(v), error })) };
    }
    const failed = new Set(changes.failed.map((f) => canonicalAddress(f.address)));
    for (const r of changes.refused) failed.add(canonicalAddress(r.address));
    const at = Date.now();
    for (const v of releases) {
      if (failed.has(v.address)) {
        // Still on the interface: keep saying so, so that no peer takes it next to us.
        v.state = 'owner';
        this.counts.addressFailures++;
        continue;
      }
      v.state = 'backup';
      this.counts.releases++;
      const d = v.decision;
      this.log.info('released VIP', { vip: v.address, device: v.device, reason: d?.reason, peer: d?.peer });
      this.emit('owner', { vip: v.address, device: v.device, owner: false, reason: d?.reason ?? 'ineligible', peer: d?.peer, at });
      this.settle(v);
    }
    for (const v of claims) {
      if (failed.has(v.address)) {
        v.state = 'backup';
        v.retryAt = performance.now() + (this.opts.retryMs ?? ARP_DEFAULTS.retryMs);
        this.counts.addressFailures++;
        this.log.error('could not add VIP address', { vip: v.address, device: v.device, errors: changes.failed.filter((f) => canonicalAddress(f.address) === v.address) });
        this.emit('owner', { vip: v.address, device: v.device, owner: false, reason: 'address-failed', at });
        continue;
      }
      v.state = 'owner';
      this.counts.takeovers++;
      // IPv4 neighbours learn from our gratuitous ARP; for IPv6 the kernel sent an NA on adding it.
      if (isIP(v.address) === 4) this.announcer?.add(target(v));
      const d = v.decision;
      this.log.info('took VIP', { vip: v.address, device: v.device, reason: d?.reason, peer: d?.peer });
      this.emit('owner', { vip: v.address, device: v.device, owner: true, reason: d?.reason ?? 'elected', peer: d?.peer, at });
    }
    this.guardian?.hold([...this.vips.values()].filter((v) => v.state === 'owner').map(target));
    this.publish();
  }
}
