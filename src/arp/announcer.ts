/**
 * Gratuitous ARP for the IPv4 VIPs this director owns: one at once when a VIP is added (it came
 * up or was taken over), then one per VIP every `intervalMs`, rounds starting at a fixed cadence.
 * All VIPs of a round are sent concurrently, at most `concurrency` arping processes at a time
 * (Ravel sends them one after another, so N VIPs take N seconds). A duplicate address probe
 * follows each takeover. Every outcome is counted and emitted.
 *
 * IPv6 VIPs are not announced here: the kernel sends an unsolicited neighbour advertisement when
 * vipd adds the address (see desiredSysctls), and no tool in a busybox userland sends one.
 */
import { EventEmitter } from 'node:events';
import type { ArpOutcome, ArpStatus } from './arping.js';
import { Limiter } from './limiter.js';

export interface Target {
  address: string;
  device: string;
}

/** What an announcer needs from arping (an interface so tests can count without processes). */
export interface ArpSender {
  garp(device: string, address: string): Promise<ArpOutcome>;
  probeDuplicate(device: string, address: string): Promise<ArpOutcome>;
}

export type Trigger = 'claim' | 'round' | 'dad';

export interface AnnounceResult extends ArpOutcome {
  trigger: Trigger;
}

export interface RoundReport {
  /** Wall-clock start, ms since the epoch. */
  startedAt: number;
  targets: number;
  sent: number;
  failed: number;
  durationMs: number;
  /** The round took longer than the interval: the next one starts late. */
  overrun: boolean;
}

export interface AnnouncerCounters {
  rounds: number;
  overruns: number;
  lastRoundMs: number;
  /** Outcomes by `trigger.status`, e.g. `round.sent`, `claim.link-down`, `dad.duplicate`. */
  outcomes: Record<string, number>;
}

export interface AnnouncerOptions {
  intervalMs: number;
  concurrency: number;
  sender: ArpSender;
  /** Probe for a duplicate right after each takeover (does not delay the announcement). */
  dadOnClaim?: boolean;
}

type Events = { result: [AnnounceResult]; round: [RoundReport] };

export class Announcer extends EventEmitter<Events> {
  private readonly targets = new Map<string, Target>();
  private readonly limiter: Limiter;
  /** Duplicate probes wait a whole second for answers: they get their own, smaller pool. */
  private readonly dadLimiter: Limiter;
  private readonly running = new Map<string, Set<Promise<unknown>>>();
  private readonly counts: AnnouncerCounters = { rounds: 0, overruns: 0, lastRoundMs: 0, outcomes: {} };
  private timer?: NodeJS.Timeout;
  private currentRound?: Promise<void>;
  private stopped = true;

  constructor(private readonly opts: AnnouncerOptions) {
    super();
    this.limiter = new Limiter(opts.concurrency);
    this.dadLimiter = new Limiter(Math.max(1, Math.floor(opts.concurrency / 4)));
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule(this.opts.intervalMs);
  }

  /** Starts announcing `t`: one gratuitous ARP now (ahead of any queued round), then every round. */
  add(t: Target): void {
    const target = { ...t };
    this.targets.set(t.address, target);
    void this.send(target, 'claim');
    if (this.opts.dadOnClaim ?? true) void this.send(target, 'dad');
  }

  /**
   * Stops announcing `address` and resolves once no arping for it is still running, so that the
   * caller can remove the address knowing no announcement for it follows.
   */
  async remove(address: string): Promise<void> {
    this.targets.delete(address);
    await Promise.allSettled([...(this.running.get(address) ?? [])]);
  }

  counters(): AnnouncerCounters {
    return { ...this.counts, outcomes: { ...this.counts.outcomes } };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.targets.clear();
    await this.currentRound;
    await Promise.allSettled([...this.running.values()].flatMap((s) => [...s]));
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.currentRound = this.round();
    }, delayMs);
  }

  private async round(): Promise<void> {
    const startedAt = Date.now();
    const t0 = performance.now();
    const targets = [...this.targets.values()];
    const results = await Promise.all(targets.map((t) => this.send(t, 'round')));
    const durationMs = performance.now() - t0;
    const overrun = durationMs > this.opts.intervalMs;
    this.counts.rounds++;
    this.counts.lastRoundMs = durationMs;
    if (overrun) this.counts.overruns++;
    const done = results.filter((r): r is AnnounceResult => r !== undefined);
    const sent = done.filter((r) => r.status === 'sent').length;
    this.emit('round', { startedAt, targets: targets.length, sent, failed: done.length - sent, durationMs, overrun });
    // Start-to-start cadence: the next round begins one interval after this one began.
    this.schedule(Math.max(0, this.opts.intervalMs - durationMs));
  }

  private send(target: Target, trigger: Trigger): Promise<AnnounceResult | undefined> {
    const pool = trigger === 'dad' ? this.dadLimiter : this.limiter;
    return pool.run(async () => {
      // Dropped while queued: no ARP for a VIP this director no longer owns.
      if (this.stopped || this.targets.get(target.address) !== target) return undefined;
      const started = performance.now();
      const op = (
        trigger === 'dad'
          ? this.opts.sender.probeDuplicate(target.device, target.address)
          : this.opts.sender.garp(target.device, target.address)
      ).catch(
        (e: unknown): ArpOutcome => ({
          status: 'error',
          address: target.address,
          device: target.device,
          sent: 0,
          durationMs: performance.now() - started,
          detail: e instanceof Error ? e.message : String(e),
        }),
      );
      const set = this.running.get(target.address) ?? new Set();
      set.add(op);
      this.running.set(target.address, set);
      try {
        const outcome = await op;
        const result: AnnounceResult = { ...outcome, trigger };
        this.count(trigger, outcome.status);
        this.emit('result', result);
        return result;
      } finally {
        set.delete(op);
        if (set.size === 0 && this.running.get(target.address) === set) this.running.delete(target.address);
      }
    }, trigger === 'claim');
  }

  private count(trigger: Trigger, status: ArpStatus): void {
    const k = `${trigger}.${status}`;
    this.counts.outcomes[k] = (this.counts.outcomes[k] ?? 0) + 1;
  }
}
