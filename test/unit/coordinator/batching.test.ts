/**
 * Batching, at the coordinator with real timers: an isolated health flip reaches IPVS once the
 * quiet gap has passed, a burst of them in one reconcile, a storm at most once per window, and
 * BGP as one route update; a removed VIP retires only once its withdrawal can reach the routers. The subsystems are fakes at their seams (the IPVS
 * manager, the BGP speaker, the health monitor), each counting the calls it gets.
 */
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RouteChanges, RouteIntent, BgpSpeaker } from '../../../src/bgp/speaker.js';
import { validateConfig } from '../../../src/config/load.js';
import type { Config } from '../../../src/config/schema.js';
import { Coordinator } from '../../../src/coordinator/coordinator.js';
import { targetId } from '../../../src/coordinator/desired.js';
import { Journal } from '../../../src/coordinator/journal.js';
import { OverrideStore } from '../../../src/coordinator/overrides.js';
import type { HealthMonitor } from '../../../src/health/index.js';
import type { IpvsManager, ReconcileResult } from '../../../src/ipvs/manager.js';
import type { DesiredTable } from '../../../src/ipvs/model.js';
import { nullLogger } from '../../../src/log/logger.js';
import { FakeHealth, noPresence } from './fakes.js';

const N = 100;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function config(withVip = true, coordinator: Record<string, string> = {}): Config {
  const r = validateConfig({
    vipRanges: ['198.51.100.0/24'],
    bgp: { asn: 64513, routerId: '192.0.2.10', withdrawDelay: '100ms', peers: [{ address: '192.0.2.1', asn: 64512 }] },
    // Both well above the gaps in a burst on a loaded machine.
    coordinator: { batchDelay: '200ms', batchQuiet: '20ms', presencePorts: [], ...coordinator },
    vips: withVip ? [{ address: '198.51.100.10', minHealthy: 1 }] : [],
    services: withVip
      ? [
          {
            vip: '198.51.100.10',
            port: 80,
            check: { type: 'tcp', interval: '1s' },
            realservers: Array.from({ length: N }, (_, i) => ({ address: `203.0.113.${i + 1}` })),
          },
        ]
      : [],
  });
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.config;
}

/** The IPVS manager's seam: each reconcile takes a few ms, like a small `ipvsadm -R`. */
class FakeIpvs {
  readonly tables: DesiredTable[] = [];
  async reconcile(t: DesiredTable): Promise<ReconcileResult> {
    this.tables.push(t);
    await sleep(5);
    return { ops: 1, durationMs: 5, draining: 0, reread: false, refused: [] };
  }
  preview(): string[] {
    return [];
  }
  /** Resync ticks seen. */
  resyncs = 0;
  resync(): void {
    this.resyncs++;
  }
  setVipRanges(): void {}
  stop(): void {}
}

class FakeBgp extends EventEmitter {
  readonly calls: RouteIntent[][] = [];
  /** withdrawNow() and setRoutes() calls in order: `now <vip>` or `set <n intents>`. */
  readonly order: string[] = [];
  /** Whether every peer session is up (see BgpSpeaker.withdrawalsDelivered). */
  delivered = true;
  withdrawalsDelivered(): boolean {
    return this.delivered;
  }
  /** While set, calls started from now on also wait for it (a gobgpd the test lets go). */
  hold?: Promise<void>;
  /** Whether withdrawNow() takes the withdrawal (not: a busy speaker, the route set withdraws). */
  takesNow = true;
  /** When set, gobgpd answers a withdrawNow() once it resolves; route sets wait for it, as they queue behind it. */
  nowAnswered?: Promise<void>;
  withdrawNow(vip: string): Promise<void> | undefined {
    this.order.push(`now ${vip}`);
    if (!this.takesNow) return undefined;
    if (this.nowAnswered) this.hold = this.nowAnswered;
    return this.nowAnswered ?? Promise.resolve();
  }
  async setRoutes(i: RouteIntent[]): Promise<RouteChanges> {
    this.calls.push(i);
    this.order.push(`set ${i.length}`);
    const hold = this.hold;
    await sleep(2);
    await hold;
    return { announced: [], updated: [], withdrawn: [], rejected: [], deferred: false };
  }
  async reconfigure(): Promise<void> {}
  async stop(): Promise<void> {}
}

const weights = (t: DesiredTable): number[] => [...[...t.values()][0]!.dests.values()].map((d) => d.weight);

/** Calls since `from` that asked for something different from the call before (the real subsystems change nothing for an equal state). */
function changes<T>(calls: T[], from: number, key: (t: T) => unknown): number {
  let n = 0;
  for (let i = Math.max(1, from); i < calls.length; i++) if (JSON.stringify(key(calls[i]!)) !== JSON.stringify(key(calls[i - 1]!))) n++;
  return n;
}
/** A coordinator on the fakes, its overrides in `dir`. */
function coordinator(cfg: Config, dir: string, f: { health: FakeHealth; ipvs: FakeIpvs; bgp: FakeBgp; journal: Journal }): Coordinator {
  return new Coordinator(cfg, {
    log: nullLogger,
    journal: f.journal,
    health: f.health as unknown as HealthMonitor,
    ipvs: f.ipvs as unknown as IpvsManager,
    bgp: f.bgp as unknown as BgpSpeaker,
    overrides: new OverrideStore(join(dir, 'overrides.json')),
    presence: noPresence,
  });
}

const vips = (i: RouteIntent[]): string[] => i.map((x) => `${x.vip.address} ${x.state}`);

describe('coordinator batching (real timers, fakes at the seams)', () => {
  let dir: string;
  let health: FakeHealth;
  let ipvs: FakeIpvs;
  let bgp: FakeBgp;
  let c: Coordinator;
  let ids: string[];
  let journal: Journal;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vipd-batch-'));
    const cfg = config();
    const s = cfg.services[0]!;
    ids = s.realservers.map((r) => targetId(s, r));
    health = new FakeHealth();
    ipvs = new FakeIpvs();
    bgp = new FakeBgp();
    journal = new Journal({ capacity: 1000, maxFileBytes: 1 << 20 });
    c = coordinator(cfg, dir, { health, ipvs, bgp, journal });
    c.start();
    for (const id of ids) health.flip(id, true);
    await until(() => c.serving && c.isAnnounced('198.51.100.10'));
    // Quiet before each burst: the announce takes a pass or two of its own.
    for (let p = -1; p !== c.passes; ) {
      p = c.passes;
      await sleep(250);
      await c.settle();
    }
  });

  afterEach(async () => {
    await c.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function until(fn: () => boolean): Promise<void> {
    for (let i = 0; i < 500 && !fn(); i++) await sleep(10);
    expect(fn()).toBe(true);
  }

  it('applies an isolated flip once the quiet gap has passed, without waiting out the batch window', async () => {
    const before = ipvs.tables.length;
    health.flip(ids[0]!, false);
    // Not yet: more may come within the 20 ms gap.
    await new Promise((r) => setImmediate(r));
    expect(ipvs.tables.length - before).toBe(0);
    // Well inside the 200 ms window.
    await sleep(100);
    expect(ipvs.tables.length - before).toBe(1);
    expect(weights(ipvs.tables.at(-1)!)[0]).toBe(0);
  });

  it('applies a burst of 100 flips over several event-loop turns in one reconcile', async () => {
    const before = ipvs.tables.length;
    const passes = c.passes;
    // Flips arrive over several event-loop turns and timer phases, as check results do.
    for (const [i, id] of ids.entries()) {
      health.flip(id, i % 2 === 1);
      if (i % 10 === 9) await (i % 20 === 9 ? new Promise((r) => setImmediate(r)) : sleep(1));
    }
    await sleep(300);
    await c.settle();
    expect(c.passes - passes).toBe(1);
    expect(ipvs.tables.length - before).toBe(1);
    expect(weights(ipvs.tables.at(-1)!)).toEqual(ids.map((_, i) => (i % 2 === 1 ? 100 : 0)));
    expect(c.isAnnounced('198.51.100.10')).toBe(true);
  });

  /** Flips the first target, lets `second` arrange the second flip, stalls the loop `ms` (past the 20 ms gap): one pass must carry both. */
  async function expectOnePassAcrossStall(ms: number, second: () => void): Promise<void> {
    const before = ipvs.tables.length;
    const passes = c.passes;
    health.flip(ids[0]!, false);
    second();
    const stallEnd = performance.now() + ms;
    while (performance.now() < stallEnd);
    await sleep(100);
    await c.settle();
    expect(c.passes - passes).toBe(1);
    expect(ipvs.tables.length - before).toBe(1);
    expect(weights(ipvs.tables.at(-1)!).slice(0, 2)).toEqual([0, 0]);
  }

  it('keeps a result that waited out a stalled event loop in the pass of the burst it came in', async () => {
    const server = createServer((s) => s.destroy());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      // The second result's socket is ready while the loop is stalled past the quiet gap: the
      // batch timer and the socket callback are both due in the turn after the stall. The timer
      // is only ~5 ms late, too little to count as a stall, so the pass itself must wait for I/O.
      await expectOnePassAcrossStall(25, () => {
        const sock = connect((server.address() as AddressInfo).port, '127.0.0.1', () => {
          health.flip(ids[1]!, false);
          sock.destroy();
        });
      });
    } finally {
      server.close();
    }
  });

  it('keeps a result whose check fell due while the event loop was stalled in the pass of the burst it came in', async () => {
    // A check due 5 ms in, inside the 20 ms quiet gap. The stall holds it back past the gap, so it
    // only starts in the turn the batch timer fires in, and answers a round trip (3 ms) later.
    await expectOnePassAcrossStall(60, () => setTimeout(() => setTimeout(() => health.flip(ids[1]!, false), 3), 5));
  });

  it('runs a resync at once, so its tick never opens a window that a later burst straddles, and a tick inside a burst adds no pass', async () => {
    const t0 = performance.now();
    await c.reconfigure(config(true, { resyncInterval: '1s', batchDelay: '1500ms', batchQuiet: '300ms' }));
    // Ticks at t0 + 1 s, 2 s, 3 s. The burst: 13 results 100 ms apart from 2.4 s to 3.6 s, within
    // one window from its first result, but past the window a tick at 2 s would open.
    await sleep(2400 - (performance.now() - t0));
    const from = ipvs.tables.length;
    for (const [i, id] of ids.slice(0, 13).entries()) {
      health.flip(id, false);
      await sleep(2400 + 100 * (i + 1) - (performance.now() - t0));
    }
    await sleep(1000);
    await c.settle();
    expect(ipvs.resyncs).toBeGreaterThanOrEqual(4);
    expect(changes(ipvs.tables, from, weights)).toBe(1);
    expect(weights(ipvs.tables.at(-1)!).slice(0, 14)).toEqual([...Array<number>(13).fill(0), 100]);
  });

  // Gaps inside the quiet gap (only the window bounds the wait) and longer than it (only the
  // least time between passes keeps it to one per window).
  for (const gap of [5, 30]) {
    it(`applies a storm of a flip every ${gap} ms at most once per window, and no flip waits longer than the window`, async () => {
      const passes = c.passes;
      const t0 = performance.now();
      const seen: number[] = [];
      const tables = ipvs.tables.length;
      for (let i = 0; performance.now() - t0 < 700; i++) {
        health.flip(ids[i % N]!, i % (2 * N) >= N);
        await sleep(gap);
        if (ipvs.tables.length > tables + seen.length) seen.push(performance.now() - t0);
      }
      await c.settle();
      // About one pass per 200 ms window, and one for the tail.
      expect(c.passes - passes).toBeGreaterThanOrEqual(3);
      expect(c.passes - passes).toBeLessThanOrEqual(6);
      // The first flip's pass within the window (and a timer's lateness), not at the storm's end.
      expect(seen[0]).toBeLessThan(350);
    });
  }

  it('hands BGP the withdrawal in the turn of the verdict that takes the VIP down; IPVS and the journal follow its call, journaled at their own times', async () => {
    for (const id of ids.slice(0, -1)) health.flip(id, false);
    await sleep(300);
    await c.settle();
    expect(c.isAnnounced('198.51.100.10')).toBe(true);
    // Verdicts that leave the VIP up withdraw nothing.
    expect(bgp.order.filter((o) => o.startsWith('now'))).toEqual([]);
    const [calls, tables, seq, order] = [bgp.calls.length, ipvs.tables.length, journal.list().at(-1)!.seq, bgp.order.length];
    let release = (): void => undefined;
    bgp.hold = new Promise((r) => (release = r));
    // A verdict from a second ago: the journal must say so, not when it wrote the entry.
    const t0 = Date.now() - 1000;
    health.emit('transition', { id: ids.at(-1)!, up: false, first: false, reason: 'connect ECONNREFUSED', pending: false, at: t0 });
    // Synchronously: the VIP's own withdrawal, nothing else yet.
    expect(bgp.order.slice(order)).toEqual(['now 198.51.100.10']);
    expect(ipvs.tables.length).toBe(tables);
    expect(journal.list(seq)).toEqual([]);
    // Once gobgpd has answered it (at once here): the route set without it.
    await sleep(5);
    expect(bgp.order.slice(order)).toEqual(['now 198.51.100.10', 'set 0']);
    expect(bgp.calls.slice(calls)).toEqual([[]]);
    // Not while gobgpd works on the withdrawal: they would compete for the CPU.
    await sleep(20);
    expect(ipvs.tables.length).toBe(tables);
    expect(journal.list(seq)).toEqual([]);
    bgp.hold = undefined;
    release();
    await sleep(20);
    expect(ipvs.tables.length).toBe(tables + 1);
    const events = journal.list(seq);
    expect(events.slice(0, 2).map((e) => `${e.kind} ${e.message}`)).toEqual([`health ${ids.at(-1)} down`, 'vip 198.51.100.10 up -> down']);
    expect(events[0]!.at).toBe(new Date(t0).toISOString());
    expect(Date.parse(events[1]!.at)).toBeGreaterThanOrEqual(t0 + 1000);
  });

  it('holds the pass after an urgent withdrawal until gobgpd has answered it, 100 ms at most, counted from the withdrawal', async () => {
    for (const id of ids.slice(0, -1)) health.flip(id, false);
    await sleep(300);
    await c.settle();
    let answer = (): void => undefined;
    bgp.nowAnswered = new Promise((r) => (answer = r));
    const [order, tables] = [bgp.order.length, ipvs.tables.length];
    health.flip(ids.at(-1)!, false);
    await sleep(30);
    expect(bgp.order.slice(order)).toEqual(['now 198.51.100.10']);
    answer();
    await sleep(10);
    expect(bgp.order.slice(order)).toEqual(['now 198.51.100.10', 'set 0']);
    await until(() => ipvs.tables.length > tables);
    await c.settle();
    // gobgpd never answers: the pass at 100 ms, and IPVS right after it, not 100 ms later again.
    for (const id of ids) health.flip(id, true);
    await until(() => c.isAnnounced('198.51.100.10'));
    await c.settle();
    bgp.nowAnswered = new Promise(() => undefined);
    const [order2, tables2] = [bgp.order.length, ipvs.tables.length];
    for (const id of ids.slice(0, -1)) health.flip(id, false);
    await sleep(300);
    const t0 = performance.now();
    health.flip(ids.at(-1)!, false);
    await until(() => bgp.order.slice(order2).includes('set 0'));
    const passAt = performance.now() - t0;
    await until(() => ipvs.tables.length > tables2 + 1);
    const ipvsAt = performance.now() - t0;
    expect(passAt).toBeGreaterThanOrEqual(95);
    expect(ipvsAt).toBeLessThan(180);
    bgp.nowAnswered = undefined;
    bgp.hold = undefined;
  });

  it('hands BGP the route set without the VIP in the verdict\'s turn when the speaker cannot withdraw it at once', async () => {
    for (const id of ids.slice(0, -1)) health.flip(id, false);
    await sleep(300);
    await c.settle();
    const order = bgp.order.length;
    bgp.takesNow = false;
    health.flip(ids.at(-1)!, false);
    expect(bgp.order.slice(order)).toEqual(['now 198.51.100.10', 'set 0']);
    await c.settle();
    expect(c.isAnnounced('198.51.100.10')).toBe(false);
  });

  it('gives a slow gobgpd 100 ms of head start on a withdrawal, then IPVS and the journal go on without it', async () => {
    for (const id of ids.slice(0, -1)) health.flip(id, false);
    await sleep(300);
    await c.settle();
    const [tables, seq] = [ipvs.tables.length, journal.list().at(-1)!.seq];
    let release = (): void => undefined;
    bgp.hold = new Promise((r) => (release = r));
    const t0 = performance.now();
    health.flip(ids.at(-1)!, false);
    await until(() => ipvs.tables.length > tables);
    const waited = performance.now() - t0;
    expect(waited).toBeGreaterThanOrEqual(95);
    expect(waited).toBeLessThan(500);
    expect(journal.list(seq).slice(0, 2).map((e) => `${e.kind} ${e.message}`)).toEqual([`health ${ids.at(-1)} down`, 'vip 198.51.100.10 up -> down']);
    expect(weights(ipvs.tables.at(-1)!).every((w) => w === 0)).toBe(true);
    bgp.hold = undefined;
    release();
    await c.settle();
  });

  it("waits for the withdrawal's own BGP call, not the end of an older one", async () => {
    for (const id of ids.slice(0, -2)) health.flip(id, false);
    await sleep(300);
    await c.settle();
    let releaseOld = (): void => undefined;
    bgp.hold = new Promise((r) => (releaseOld = r));
    // A pass whose BGP call is still running when the withdrawal comes.
    health.flip(ids.at(-2)!, false);
    await sleep(60);
    const tables = ipvs.tables.length;
    let release = (): void => undefined;
    bgp.hold = new Promise((r) => (release = r));
    health.flip(ids.at(-1)!, false);
    releaseOld();
    await sleep(30);
    // The older call ended, the withdrawal's is held: IPVS still waits (the cap is 100 ms).
    expect(ipvs.tables.length).toBe(tables);
    bgp.hold = undefined;
    release();
    await sleep(20);
    expect(ipvs.tables.length).toBe(tables + 1);
    await c.settle();
  });

  it('withdraws once when all 100 go down in a burst, without waiting out the batch, and announces once when they return', async () => {
    const calls = bgp.calls.length;
    const ipvsFrom = ipvs.tables.length;
    for (const [i, id] of ids.entries()) {
      health.flip(id, false);
      if (i % 10 === 9 && i < N - 1) await sleep(1);
    }
    // The first 99 wait for a quiet gap; the last flip takes the VIP down and its pass runs at
    // once, carrying them all, well before the 200 ms window closes: one IPVS change, one withdrawal.
    await sleep(10);
    expect(bgp.calls.at(-1)).toEqual([]);
    expect(changes(ipvs.tables, ipvsFrom, weights)).toBe(1);
    await sleep(300);
    await c.settle();
    expect(changes(bgp.calls, calls, vips)).toBe(1);
    expect(changes(ipvs.tables, ipvsFrom, weights)).toBe(1);
    expect(bgp.calls.at(-1)).toEqual([]);
    expect(weights(ipvs.tables.at(-1)!).every((w) => w === 0)).toBe(true);
    const ipvsBefore = ipvs.tables.length;
    for (const id of ids) health.flip(id, true);
    await until(() => c.isAnnounced('198.51.100.10'));
    await c.settle();
    // All 100 return in one event-loop turn: one pass; the announce waits for the pass after
    // IPVS applied, which changes nothing in IPVS.
    expect(changes(ipvs.tables, ipvsBefore, weights)).toBe(1);
    expect(changes(bgp.calls, calls, vips)).toBe(2);
  });

  it('keeps a removed VIP in IPVS while a peer session is down (its router may hold the stale route), retiring it once the session is up', async () => {
    bgp.delivered = false;
    await c.reconfigure(config(false));
    await until(() => !c.isAnnounced('198.51.100.10'));
    await sleep(1000);
    expect(ipvs.tables.at(-1)?.size).toBe(1);
    bgp.delivered = true;
    await until(() => ipvs.tables.at(-1)?.size === 0);
  });
});

describe('coordinator: several VIPs going down in one turn', () => {
  it('withdraws the first at once and the rest in the one pass right after, not a pass each', async () => {
    const addrs = ['198.51.100.21', '198.51.100.22', '198.51.100.23'];
    const r = validateConfig({
      vipRanges: ['198.51.100.0/24'],
      bgp: { asn: 64513, routerId: '192.0.2.10', peers: [{ address: '192.0.2.1', asn: 64512 }] },
      coordinator: { batchDelay: '200ms', presencePorts: [] },
      vips: addrs.map((address) => ({ address, minHealthy: 1 })),
      // One realserver behind all three: its failure takes every VIP down.
      services: addrs.map((vip) => ({ vip, port: 80, check: { type: 'tcp', interval: '1s' }, realservers: [{ address: '203.0.113.1' }] })),
    });
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    const dir = mkdtempSync(join(tmpdir(), 'vipd-batch-'));
    const health = new FakeHealth();
    const bgp = new FakeBgp();
    const c = coordinator(r.config, dir, { health, ipvs: new FakeIpvs(), bgp, journal: new Journal({ capacity: 1000, maxFileBytes: 1 << 20 }) });
    try {
      c.start();
      const ids = r.config.services.map((s) => targetId(s, s.realservers[0]!));
      for (const id of ids) health.flip(id, true);
      for (let i = 0; i < 500 && !addrs.every((a) => c.isAnnounced(a)); i++) await sleep(10);
      await sleep(300);
      await c.settle();
      const [passes, calls, order] = [c.passes, bgp.calls.length, bgp.order.length];
      for (const id of ids) health.flip(id, false);
      // The first VIP's withdrawal went out in this turn, on its own.
      expect(bgp.order.slice(order)).toEqual([`now ${addrs[0]}`]);
      await c.settle();
      expect(bgp.order.slice(order)).toEqual([`now ${addrs[0]}`, 'set 0']);
      expect(bgp.calls.slice(calls)).toEqual([[]]);
      expect(c.passes - passes).toBe(1);
    } finally {
      await c.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

