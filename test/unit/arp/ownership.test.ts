import { describe, expect, it } from 'vitest';
import { compareIds, decide, outranks, PeerTable, type Candidate } from '../../../src/arp/ownership.js';

const c = (id: string, priority: number, o: Partial<Candidate> = {}): Candidate => ({ id, priority, preempt: false, eligible: true, owner: false, ...o });

describe('ranking', () => {
  it('prefers higher priority, then the lower address (numerically, IPv4 first)', () => {
    expect(outranks(c('192.0.2.20', 200), c('192.0.2.3', 100))).toBe(true);
    expect(outranks(c('192.0.2.3', 100), c('192.0.2.20', 100))).toBe(true); // 3 < 20 numerically, not as text
    expect(compareIds('192.0.2.1', '2001:db8::1')).toBeLessThan(0);
    expect(compareIds('2001:db8::2', '2001:db8::10')).toBeLessThan(0);
  });
});

describe('decide', () => {
  const self = c('192.0.2.11', 100);

  it('never holds while unable to serve or still listening after start', () => {
    expect(decide({ ...self, eligible: false, owner: true }, true, [])).toMatchObject({ own: false, reason: 'ineligible' });
    expect(decide(self, false, [])).toMatchObject({ own: false, reason: 'starting' });
  });

  it('elects exactly one of several able directors with the same view', () => {
    const a = c('192.0.2.11', 100);
    const b = c('192.0.2.12', 100);
    const d = c('192.0.2.13', 150);
    const all = [a, b, d];
    const winners = all.filter((me) => decide(me, true, all.filter((p) => p !== me)).own);
    expect(winners.map((w) => w.id)).toEqual(['192.0.2.13']);
  });

  it('ignores unable peers when electing', () => {
    expect(decide(self, true, [c('192.0.2.12', 200, { eligible: false })])).toMatchObject({ own: true, reason: 'elected' });
  });

  it('never takes a VIP a live peer holds, even from a worse one, without preempt', () => {
    expect(decide({ ...self, priority: 200 }, true, [c('192.0.2.12', 100, { owner: true })])).toMatchObject({ own: false, reason: 'held-elsewhere' });
    // The worse holder keeps it: nobody asks for it back.
    expect(decide({ ...self, owner: true }, true, [c('192.0.2.12', 200)])).toMatchObject({ own: true, reason: 'keep' });
  });

  it('preempts by handshake: the holder releases first, then the better director takes it', () => {
    const better = c('192.0.2.12', 200, { preempt: true });
    const holder = { ...self, owner: true };
    // Step 1: the better one waits while the VIP is held.
    expect(decide(better, true, [holder])).toMatchObject({ own: false, reason: 'held-elsewhere' });
    // Step 2: the holder sees a better director that preempts and releases.
    expect(decide(holder, true, [better])).toMatchObject({ own: false, reason: 'preempted', peer: '192.0.2.12' });
    // Step 3: once it says it no longer holds, the better one takes it; the old holder defers.
    expect(decide(better, true, [{ ...holder, owner: false }])).toMatchObject({ own: true, reason: 'elected' });
    expect(decide({ ...holder, owner: false }, true, [better])).toMatchObject({ own: false, reason: 'defer' });
  });

  it('does not release to a preempting director that cannot serve', () => {
    expect(decide({ ...self, owner: true }, true, [c('192.0.2.12', 200, { preempt: true, eligible: false })])).toMatchObject({ own: true });
  });

  it('resolves two holders (a healed partition) in favour of the better one', () => {
    const a = c('192.0.2.11', 100, { owner: true });
    const b = c('192.0.2.12', 100, { owner: true });
    expect(decide(a, true, [b])).toMatchObject({ own: true, reason: 'keep' });
    expect(decide(b, true, [a])).toMatchObject({ own: false, reason: 'yield' });
  });
});

describe('PeerTable', () => {
  const entry = (o: Partial<{ owner: boolean; eligible: boolean }> = {}) => ({ address: '198.51.100.1', priority: 100, preempt: false, eligible: true, owner: false, ...o });

  it('forgets a peer that stays silent longer than the hold time', () => {
    const t = new PeerTable(700);
    t.accept({ id: '192.0.2.12', boot: 1, seq: 1, entries: [entry({ owner: true })] }, 1000);
    expect(t.candidates('198.51.100.1', 1700)).toHaveLength(1);
    expect(t.candidates('198.51.100.1', 1701)).toHaveLength(0);
  });

  it('drops late or replayed datagrams, and a restarted process replaces the old one', () => {
    const t = new PeerTable(700);
    expect(t.accept({ id: 'p', boot: 5, seq: 10, entries: [entry({ owner: true })] }, 0).accepted).toBe(true);
    expect(t.accept({ id: 'p', boot: 5, seq: 10, entries: [entry()] }, 1).accepted).toBe(false);
    expect(t.accept({ id: 'p', boot: 4, seq: 99, entries: [entry()] }, 1).accepted).toBe(false);
    const r = t.accept({ id: 'p', boot: 6, seq: 1, entries: [] }, 2);
    expect(r).toEqual({ accepted: true, changed: ['198.51.100.1'] });
    expect(t.candidates('198.51.100.1', 2)).toHaveLength(0);
  });

  it('reports which VIPs changed, so that a release is acted on without waiting', () => {
    const t = new PeerTable(700);
    expect(t.accept({ id: 'p', boot: 1, seq: 1, entries: [entry({ owner: true })] }, 0).changed).toEqual(['198.51.100.1']);
    expect(t.accept({ id: 'p', boot: 1, seq: 2, entries: [entry({ owner: true })] }, 200).changed).toEqual([]);
    expect(t.accept({ id: 'p', boot: 1, seq: 3, entries: [entry({ owner: false })] }, 400).changed).toEqual(['198.51.100.1']);
  });
});

describe('PeerTable after a wall-clock step back', () => {
  it('takes a lower start time as a new process once the old one has been silent for the hold time', () => {
    const t = new PeerTable(700);
    const e = { address: '198.51.100.1', priority: 100, preempt: false, eligible: true, owner: true };
    t.accept({ id: 'p', boot: 1000, seq: 50, entries: [e] }, 0);
    expect(t.accept({ id: 'p', boot: 900, seq: 1, entries: [] }, 500).accepted).toBe(false);
    expect(t.accept({ id: 'p', boot: 900, seq: 1, entries: [] }, 800)).toEqual({ accepted: true, changed: ['198.51.100.1'] });
  });
});
