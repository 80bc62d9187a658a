import { describe, expect, it } from 'vitest';
import { AgentState, CheckState, History, type StateOptions } from '../../../src/health/state.js';
import type { CheckResult } from '../../../src/health/types.js';

const opts = (o: Partial<StateOptions> = {}): StateOptions => ({ rise: 2, fall: 3, startUp: false, interval: 1000, history: 20, ...o });
let clock = 1_000_000;
const ok = (reason = 'HTTP 200'): CheckResult => ({ ok: true, reason, at: ++clock, durationMs: 1 });
const bad = (reason = 'HTTP 503'): CheckResult => ({ ok: false, reason, at: ++clock, durationMs: 1 });

/** Feeds results and returns, per result, 'up'/'down' when it caused a transition, '.' otherwise. */
function feed(s: CheckState, results: CheckResult[]): string {
  return results.map((r) => (s.record(r).changed ? (s.up ? 'up' : 'down') : '.')).join(' ');
}

describe('check state machine', () => {
  it('starts down and unknown, and comes up on exactly the rise-th success in a row', () => {
    const s = new CheckState(opts({ rise: 3 }), 5);
    expect([s.up, s.known, s.since]).toEqual([false, false, 5]);
    expect(s.record(ok())).toMatchObject({ changed: false, first: true });
    expect(s.known).toBe(true);
    expect(s.record(ok())).toMatchObject({ changed: false, first: false });
    const third = ok();
    expect(s.record(third)).toMatchObject({ changed: true, first: false });
    expect(s.up).toBe(true);
    expect(s.since).toBe(third.at);
  });

  it('goes down on exactly the fall-th failure in a row; a success in between starts the count again', () => {
    const s = new CheckState(opts({ startUp: true, fall: 3 }), 0);
    expect(s.up).toBe(true);
    expect(feed(s, [bad(), bad(), ok(), bad(), bad(), bad()])).toBe('. . . . . down');
    expect(feed(s, [ok(), bad(), ok(), ok()])).toBe('. . . up');
  });

  it('with rise and fall of 1 follows every result', () => {
    const s = new CheckState(opts({ rise: 1, fall: 1 }), 0);
    expect(feed(s, [ok(), ok(), bad(), ok(), bad(), bad()])).toBe('up . down up down .');
  });

  it('reports the first result even when it changes nothing', () => {
    const s = new CheckState(opts(), 0);
    expect(s.record(bad('connect ECONNREFUSED'))).toEqual({ changed: false, first: true, settled: false });
    expect(s.reason).toBe('connect ECONNREFUSED');
    expect(s.record(bad())).toEqual({ changed: false, first: false, settled: false });
  });

  it('reports when a change the first result started ends without happening', () => {
    const s = new CheckState(opts({ rise: 3 }), 0);
    expect(s.record(ok())).toEqual({ changed: false, first: true, settled: false });
    expect(s.record(ok())).toEqual({ changed: false, first: false, settled: false });
    expect(s.record(bad())).toEqual({ changed: false, first: false, settled: true });
    // Only once: later aborted rises are ordinary.
    s.record(ok());
    expect(s.record(bad())).toEqual({ changed: false, first: false, settled: false });
    // A first result that completes the change at once (rise 1) leaves nothing pending.
    const t = new CheckState(opts({ rise: 1 }), 0);
    expect(t.record(ok())).toEqual({ changed: true, first: true, settled: false });
    expect(t.record(bad())).toEqual({ changed: false, first: false, settled: false });
  });

  it('explains a change under way in its reason', () => {
    const s = new CheckState(opts({ startUp: true }), 0);
    s.record(bad('timeout after 1000 ms'));
    expect(s.reason).toBe('timeout after 1000 ms (1 of 3 to fall)');
    s.record(bad('HTTP 503'));
    expect(s.reason).toBe('HTTP 503 (2 of 3 to fall)');
    s.record(bad('HTTP 502'));
    expect(s.reason).toBe('HTTP 502');
    s.record(ok());
    expect(s.reason).toBe('HTTP 200 (1 of 2 to rise)');
  });

  it('asks for the fast interval only while a change is under way', () => {
    const s = new CheckState(opts({ startUp: true, interval: 5000, fastInterval: 500 }), 0);
    const seen: number[] = [s.nextInterval()];
    for (const r of [ok(), bad(), bad(), bad(), bad(), ok(), bad(), ok(), ok()]) {
      s.record(r);
      seen.push(s.nextInterval());
    }
    // up; ok; 1/3; 2/3; down; down; 1/2; reset; 1/2; up
    expect(seen).toEqual([5000, 5000, 500, 500, 5000, 5000, 500, 5000, 500, 5000]);
    const plain = new CheckState(opts({ startUp: true, interval: 5000 }), 0);
    plain.record(bad());
    expect(plain.nextInterval()).toBe(5000);
  });

  it('keeps a bounded history, newest last', () => {
    const s = new CheckState(opts({ history: 3 }), 0);
    for (let i = 0; i < 7; i++) s.record(i % 2 ? ok(`r${i}`) : bad(`r${i}`));
    const h = s.history.toArray();
    expect(h.map((r) => r.reason)).toEqual(['r4', 'r5', 'r6']);
    expect(h.map((r) => r.ok)).toEqual([false, true, false]);
    expect(s.checks).toBe(7);
  });
});

describe('history', () => {
  it('returns results in order before and after wrapping, with their fields', () => {
    const h = new History(4);
    expect(h.toArray()).toEqual([]);
    h.push({ ok: true, reason: 'a', at: 1, durationMs: 0.5 });
    h.push({ ok: false, reason: 'b', at: 2, durationMs: 12.3 });
    expect(h.toArray()).toEqual([
      { ok: true, reason: 'a', at: 1, durationMs: 0.5 },
      { ok: false, reason: 'b', at: 2, durationMs: 12.3 },
    ]);
    for (let i = 3; i <= 9; i++) h.push({ ok: true, reason: String(i), at: i, durationMs: 1 });
    expect(h.length).toBe(4);
    expect(h.toArray().map((r) => r.at)).toEqual([6, 7, 8, 9]);
  });

  it('keeps the newest results when resized', () => {
    const h = new History(5);
    for (let i = 1; i <= 7; i++) h.push({ ok: true, reason: String(i), at: i, durationMs: 1 });
    h.resize(2);
    expect(h.toArray().map((r) => r.at)).toEqual([6, 7]);
    h.resize(4);
    h.push({ ok: true, reason: '8', at: 8, durationMs: 1 });
    expect(h.toArray().map((r) => r.at)).toEqual([6, 7, 8]);
  });

  it('keeps agent replies with their results', () => {
    const h = new History(2);
    h.push({ ok: false, reason: 'connect ECONNREFUSED', at: 1, durationMs: 1 });
    h.push({ ok: true, reason: 'agent: up 50%', at: 2, durationMs: 1, agent: { down: false, drain: false, weightPercent: 50 } });
    expect(h.toArray()[0]?.agent).toBeUndefined();
    expect(h.toArray()[1]?.agent).toEqual({ down: false, drain: false, weightPercent: 50 });
  });
});

describe('agent state', () => {
  const reply = (r: Partial<{ down: boolean; drain: boolean; weightPercent: number }>, reason = 'agent'): CheckResult => ({
    ok: true,
    reason,
    at: ++clock,
    durationMs: 1,
    agent: { down: false, drain: false, ...r },
  });

  it('reports the first result and then only changes', () => {
    const s = new AgentState(10);
    expect(s.record(reply({}))).toBe(true);
    expect(s.record(reply({}))).toBe(false);
    expect(s.record(reply({ weightPercent: 50 }))).toBe(true);
    expect(s.reply).toEqual({ down: false, drain: false, weightPercent: 50 });
    expect(s.record(reply({ weightPercent: 50 }))).toBe(false);
    expect(s.record(reply({ drain: true }))).toBe(true);
    expect(s.reply).toEqual({ down: false, drain: true });
    expect(s.record(reply({ down: true }))).toBe(true);
  });

  it('keeps the last answer while the agent does not answer', () => {
    const s = new AgentState(10);
    s.record(reply({ weightPercent: 30 }));
    expect(s.record({ ok: false, reason: 'connect ECONNREFUSED', at: ++clock, durationMs: 1 })).toBe(true);
    expect([s.answered, s.reply.weightPercent, s.reason]).toEqual([false, 30, 'connect ECONNREFUSED']);
    expect(s.record({ ok: false, reason: 'timeout after 1000 ms', at: ++clock, durationMs: 1 })).toBe(false);
    expect(s.record(reply({ weightPercent: 30 }))).toBe(true);
    expect(s.answered).toBe(true);
  });
});
