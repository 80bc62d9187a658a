import { afterEach, describe, expect, it } from 'vitest';
import { Announcer, type ArpSender, type RoundReport } from '../../../src/arp/announcer.js';
import type { ArpOutcome } from '../../../src/arp/arping.js';
import { Limiter } from '../../../src/arp/limiter.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Records every send; each takes `ms`. */
function fakeSender(ms: number) {
  const log: { kind: 'garp' | 'dad'; address: string; start: number; end: number }[] = [];
  let active = 0;
  let peak = 0;
  const one = async (kind: 'garp' | 'dad', device: string, address: string): Promise<ArpOutcome> => {
    const start = performance.now();
    active++;
    peak = Math.max(peak, active);
    await sleep(ms);
    active--;
    log.push({ kind, address, start, end: performance.now() });
    return { status: kind === 'dad' ? 'unique' : 'sent', address, device, sent: 1, durationMs: ms };
  };
  const sender: ArpSender = { garp: (d, a) => one('garp', d, a), probeDuplicate: (d, a) => one('dad', d, a) };
  return { sender, log, peak: () => peak };
}

let running: Announcer | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

describe('Limiter', () => {
  it('runs urgent tasks before queued ones and never more than the limit', async () => {
    const l = new Limiter(1);
    const order: string[] = [];
    const task = (n: string) => () => sleep(5).then(() => void order.push(n));
    await Promise.all([l.run(task('a')), l.run(task('b')), l.run(task('c')), l.run(task('urgent'), true)]);
    expect(order).toEqual(['a', 'urgent', 'b', 'c']);
  });
});

describe('Announcer', () => {
  it('announces a new VIP at once, then every round, all VIPs of a round concurrently within the bound', async () => {
    const f = fakeSender(20);
    const a = (running = new Announcer({ intervalMs: 150, concurrency: 4, sender: f.sender, dadOnClaim: false }));
    const rounds: RoundReport[] = [];
    a.on('round', (r) => rounds.push(r));
    a.start();
    const t0 = performance.now();
    for (let i = 1; i <= 10; i++) a.add({ address: `198.51.100.${i}`, device: 'eth0' });
    await sleep(20 * 3 + 15);
    // The claim announcements: 10 at concurrency 4 = 3 waves of 20 ms, well before the first round.
    expect(f.log.filter((l) => l.end - t0 < 90)).toHaveLength(10);
    while (rounds.length < 3) await sleep(10);
    expect(f.peak()).toBe(4);
    for (const r of rounds) expect(r).toMatchObject({ targets: 10, sent: 10, failed: 0, overrun: false });
    // 10 VIPs, 4 at a time, 20 ms each: about 3 waves, not 10 sends one after another.
    expect(rounds[1]?.durationMs ?? 0).toBeLessThan(20 * 10);
    // Fixed cadence: rounds start one interval apart.
    const gaps = rounds.slice(1).map((r, i) => r.startedAt - (rounds[i]?.startedAt ?? 0));
    for (const g of gaps) expect(g).toBeGreaterThanOrEqual(145);
    for (const g of gaps) expect(g).toBeLessThan(200);
    expect(a.counters().outcomes['round.sent']).toBeGreaterThanOrEqual(30);
    expect(a.counters().outcomes['claim.sent']).toBe(10);
  });

  it('probes for a duplicate after a takeover', async () => {
    const f = fakeSender(5);
    const a = (running = new Announcer({ intervalMs: 10_000, concurrency: 4, sender: f.sender }));
    a.start();
    a.add({ address: '198.51.100.1', device: 'eth0' });
    await sleep(30);
    expect(f.log.map((l) => l.kind).sort()).toEqual(['dad', 'garp']);
  });

  it('remove() waits for a running send and drops queued ones: no ARP after a release', async () => {
    const f = fakeSender(40);
    const a = (running = new Announcer({ intervalMs: 10_000, concurrency: 1, sender: f.sender, dadOnClaim: false }));
    a.start();
    a.add({ address: '198.51.100.1', device: 'eth0' });
    a.add({ address: '198.51.100.2', device: 'eth0' });
    await sleep(5);
    // .1 is being sent, .2 waits for the only slot.
    await a.remove('198.51.100.2');
    await a.remove('198.51.100.1');
    const removedAt = performance.now();
    await sleep(60);
    expect(f.log.filter((l) => l.address === '198.51.100.1').every((l) => l.end <= removedAt)).toBe(true);
    expect(f.log.filter((l) => l.address === '198.51.100.2')).toHaveLength(0);
  });

  it('counts failures by status', async () => {
    const sender: ArpSender = {
      garp: async (device, address) => ({ status: 'link-down', address, device, sent: 0, durationMs: 1 }),
      probeDuplicate: async () => {
        throw new Error('spawn arping ENOENT');
      },
    };
    const a = (running = new Announcer({ intervalMs: 10_000, concurrency: 2, sender }));
    const statuses: string[] = [];
    a.on('result', (r) => statuses.push(`${r.trigger}.${r.status}`));
    a.start();
    a.add({ address: '198.51.100.1', device: 'eth0' });
    await sleep(20);
    expect(statuses.sort()).toEqual(['claim.link-down', 'dad.error']);
    expect(a.counters().outcomes).toEqual({ 'claim.link-down': 1, 'dad.error': 1 });
  });
});
