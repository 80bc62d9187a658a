/**
 * One owner per ARP-mode VIP among directors (pure: no I/O, time passed in). The mechanism and
 * its failure modes are described in the README (ARP-mode VIPs: one owner among directors).
 *
 * Every director advertises, per VIP, its priority, whether it preempts, whether it could serve
 * the VIP (healthy, link up) and whether it holds it. Each decides for itself from what it heard:
 * - a holder keeps the VIP until it becomes unable to serve it, sees a better holder (split brain
 *   healing), or sees a better, able director that preempts: then it releases first;
 * - nobody takes a VIP that a live director holds, so preemption is a handshake (the holder
 *   releases, says so, and only then the better one takes it): never two holders;
 * - with no live holder, the best able director takes it. All directors rank alike (priority,
 *   then lowest address), so with the same view exactly one of them takes it.
 */
import { isIP } from 'node:net';
import { addressToBigInt, canonicalAddress } from '../util/ip.js';

export interface Candidate {
  /** The director's address as its peers know it: identity and tie-break. */
  id: string;
  priority: number;
  preempt: boolean;
  /** Able to serve: VIP healthy here and its interface has carrier. */
  eligible: boolean;
  /** Holds the VIP (or is taking or releasing it): its kernel may answer ARP for it. */
  owner: boolean;
}

/** Orders director ids: IPv4 before IPv6, then numerically; other ids (names) as text, last. */
export function compareIds(a: string, b: string): number {
  const fa = isIP(a);
  const fb = isIP(b);
  if (fa !== fb) return (fa || 99) - (fb || 99);
  if (fa === 0) return a < b ? -1 : a > b ? 1 : 0;
  const x = addressToBigInt(a);
  const y = addressToBigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Whether `a` ranks above `b`: higher priority, then the lower address (as the config documents). */
export function outranks(a: Pick<Candidate, 'id' | 'priority'>, b: Pick<Candidate, 'id' | 'priority'>): boolean {
  if (a.priority !== b.priority) return a.priority > b.priority;
  return compareIds(a.id, b.id) < 0;
}

export type Reason =
  /** Not able to serve it here. */
  | 'ineligible'
  /** Still listening for peers after start. */
  | 'starting'
  | 'keep'
  /** Two holders (a healed partition): the lower-ranked one releases. */
  | 'yield'
  /** A better director that preempts wants it: release so that it can take it. */
  | 'preempted'
  | 'held-elsewhere'
  | 'elected'
  /** No holder, and a better able director will take it. */
  | 'defer';

export interface Decision {
  own: boolean;
  reason: Reason;
  /** The peer the decision is about (holder, preemptor, or the better candidate). */
  peer?: string;
}

/**
 * Whether this director should hold the VIP. `self.owner` is whether it holds it now; `peers` are
 * the live peers that advertise this VIP; `ready` is false during the listening period after start.
 */
export function decide(self: Candidate, ready: boolean, peers: readonly Candidate[]): Decision {
  if (!self.eligible) return { own: false, reason: 'ineligible' };
  if (!ready) return { own: false, reason: 'starting' };
  const holders = peers.filter((p) => p.owner);
  if (self.owner) {
    const better = holders.find((p) => outranks(p, self));
    if (better) return { own: false, reason: 'yield', peer: better.id };
    const preemptor = peers.find((p) => !p.owner && p.eligible && p.preempt && outranks(p, self));
    if (preemptor) return { own: false, reason: 'preempted', peer: preemptor.id };
    return { own: true, reason: 'keep' };
  }
  const holder = holders[0];
  if (holder) return { own: false, reason: 'held-elsewhere', peer: holder.id };
  let best: Candidate = self;
  for (const p of peers) if (p.eligible && outranks(p, best)) best = p;
  return best === self ? { own: true, reason: 'elected' } : { own: false, reason: 'defer', peer: best.id };
}

/** One VIP as a director advertises it. */
export interface AdvertEntry {
  address: string;
  priority: number;
  preempt: boolean;
  eligible: boolean;
  owner: boolean;
}

export interface Advert {
  id: string;
  /** Start time of the sending process: a restarted director's adverts replace all its old ones. */
  boot: number;
  /** Increases with every datagram of one process: late or replayed datagrams are dropped. */
  seq: number;
  entries: AdvertEntry[];
}

interface Heard {
  entry: AdvertEntry;
  at: number;
}

interface PeerState {
  boot: number;
  seq: number;
  lastAt: number;
  vips: Map<string, Heard>;
}

/**
 * What each peer last said about each VIP. An entry lives for `holdMs` after it was last heard:
 * silence for that long means the peer is gone (process, host or path).
 */
export class PeerTable {
  private readonly peers = new Map<string, PeerState>();

  constructor(private readonly holdMs: number) {}

  /**
   * Takes in an advert. Returns whether it was accepted (not older than what was heard from that
   * process) and the VIPs whose advertised state changed, which deserve a decision right away.
   */
  accept(a: Advert, now: number): { accepted: boolean; changed: string[] } {
    let p = this.peers.get(a.id);
    // A lower start time is an old process's late datagram, unless the peer has been silent for
    // the hold time: then it is a new process started after the wall clock went back.
    const older = p !== undefined && (a.boot < p.boot ? now - p.lastAt <= this.holdMs : a.boot === p.boot && a.seq <= p.seq);
    if (older) return { accepted: false, changed: [] };
    const changed: string[] = [];
    if (!p || a.boot !== p.boot) {
      // A new process: whatever the old one held is gone with it.
      changed.push(...(p?.vips.keys() ?? []));
      p = { boot: a.boot, seq: a.seq, lastAt: now, vips: new Map() };
      this.peers.set(a.id, p);
    }
    p.seq = a.seq;
    p.lastAt = now;
    for (const e of a.entries) {
      const k = canonicalAddress(e.address);
      const old = p.vips.get(k);
      const live = old !== undefined && now - old.at <= this.holdMs;
      if (!live || old.entry.owner !== e.owner || old.entry.eligible !== e.eligible || old.entry.priority !== e.priority || old.entry.preempt !== e.preempt) {
        changed.push(k);
      }
      p.vips.set(k, { entry: { ...e, address: k }, at: now });
    }
    return { accepted: true, changed: [...new Set(changed)] };
  }

  /** Live peers advertising `vip`. */
  candidates(vip: string, now: number): Candidate[] {
    const k = canonicalAddress(vip);
    const out: Candidate[] = [];
    for (const [id, p] of this.peers) {
      const h = p.vips.get(k);
      if (h && now - h.at <= this.holdMs) out.push({ id, ...h.entry });
    }
    return out;
  }

  /** Forgets VIPs not heard of for long (removed from a peer's config); senders are only the configured peers. */
  prune(now: number): void {
    for (const p of this.peers.values()) {
      for (const [k, h] of p.vips) if (now - h.at > 10 * this.holdMs) p.vips.delete(k);
    }
  }
}
