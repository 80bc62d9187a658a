import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../../lab/netns.js';
import type { MonitorEvent } from './harness.js';
import { check, healthLab, RS, signal, type HealthLab } from './harness.js';

/**
 * The event stream of one target in a compact form: `+`/`-` per result, then `F↑`/`F↓` for the
 * first verdict, `↑`/`↓` for a transition and `=` for a first verdict settling without one,
 * right after the result that caused it.
 */
function trace(events: MonitorEvent[], id: string): string {
  let up: boolean | undefined;
  return events
    .map((e) => {
      if (e.id !== id) return '';
      if (e.event === 'result') return e.result.ok ? '+' : '-';
      if (e.event !== 'transition') return '';
      const mark = e.first ? `F${e.up ? '↑' : '↓'}` : e.up === up ? '=' : e.up ? '↑' : '↓';
      up = e.up;
      return mark;
    })
    .join('');
}

/** What rise/fall must make of a sequence of results: an independent reference model. */
function model(results: string, rise: number, fall: number, startUp: boolean): string {
  let up = startUp;
  let streak = 0;
  let firstPending = false;
  let out = '';
  [...results].forEach((r, i) => {
    out += r;
    const ok = r === '+';
    let changed = false;
    let settled = false;
    if (ok === up) {
      settled = firstPending;
      streak = 0;
    } else if (++streak >= (up ? fall : rise)) {
      up = !up;
      streak = 0;
      changed = true;
    }
    if (changed || ok === up) firstPending = false;
    if (i === 0) {
      out += `F${up ? '↑' : '↓'}`;
      firstPending = streak > 0;
    } else if (changed) out += up ? '↑' : '↓';
    else if (settled) out += '=';
  });
  return out;
}

describe('health: rise, fall and timing against real servers', () => {
  let h: HealthLab;
  let http: Daemon;
  let tcp: Daemon;
  beforeAll(async () => {
    h = await healthLab();
    http = await h.server('http', [JSON.stringify({ host: RS, http: 8080 })]);
    tcp = await h.server('tcp', [JSON.stringify({ hosts: [RS], ports: [8090] })]);
  });
  afterAll(async () => {
    await h?.cleanup();
  });

  it('goes up and down on exactly the rise-th and fall-th result in a row', async () => {
    await h.monitor.update([
      { id: 'http', address: RS, port: 8080, check: check('http', { method: 'GET', path: '/toggle', expectStatus: [200], interval: 100, rise: 3, fall: 2 }) },
      { id: 'tcp', address: RS, port: 8090, check: check('tcp', { interval: 100, rise: 2, fall: 4 }) },
    ]);
    await h.monitor.waitFor((e) => e.event === 'transition' && e.id === 'http' && e.up, 3000);
    await h.monitor.waitFor((e) => e.event === 'transition' && e.id === 'tcp' && e.up, 3000);
    for (let round = 0; round < 2; round++) {
      let from = h.monitor.events.length;
      await Promise.all([signal(http, 'SIGUSR1', /failing/), signal(tcp, 'SIGUSR1', /closed/)]);
      await h.monitor.waitFor((e) => e.event === 'transition' && e.id === 'http' && !e.up, 3000, from);
      await h.monitor.waitFor((e) => e.event === 'transition' && e.id === 'tcp' && !e.up, 3000, from);
      from = h.monitor.events.length;
      await Promise.all([signal(http, 'SIGUSR2', /healthy/), signal(tcp, 'SIGUSR2', /open/)]);
      await h.monitor.waitFor((e) => e.event === 'transition' && e.id === 'http' && e.up, 3000, from);
      await h.monitor.waitFor((e) => e.event === 'transition' && e.id === 'tcp' && e.up, 3000, from);
    }
    await h.monitor.update([]);
    for (const [id, rise, fall] of [
      ['http', 3, 2],
      ['tcp', 2, 4],
    ] as const) {
      const t = trace(h.monitor.events, id);
      const results = t.replace(/[^+-]/g, '');
      expect(t).toBe(model(results, rise, fall, false));
      // Both directions happened twice, so the counts were exercised, not just the start.
      expect(t.match(/↓/g)?.length).toBe(3);
      expect(t.match(/↑/g)?.length).toBe(3);
    }
  });

  it('reports the first settled verdict when the first result only started a change', async () => {
    await h.monitor.update([
      { id: 'settle', address: RS, port: 8080, check: check('http', { method: 'GET', path: '/toggle', expectStatus: [200], interval: 300, rise: 10 }) },
    ]);
    const first = await h.monitor.waitFor((e) => e.event === 'transition' && e.id === 'settle', 3000);
    expect(first).toMatchObject({ first: true, up: false, pending: true });
    const from = h.monitor.events.length;
    await signal(http, 'SIGUSR1', /failing/);
    const settled = await h.monitor.waitFor((e) => e.event === 'transition' && e.id === 'settle', 3000, from);
    await signal(http, 'SIGUSR2', /healthy/);
    await h.monitor.update([]);
    expect(settled).toMatchObject({ first: false, up: false, pending: false, reason: 'HTTP 503' });
    const t = trace(h.monitor.events, 'settle');
    expect(t).toBe(model(t.replace(/[^+-]/g, ''), 10, 1, false));
  });

  it('with startUp begins up and needs the full fall count to go down', async () => {
    await h.monitor.update([{ id: 'start-up', address: RS, port: 8099, check: check('tcp', { interval: 100, startUp: true, fall: 3 }) }]);
    await h.monitor.waitFor((e) => e.event === 'transition' && e.id === 'start-up' && !e.up, 3000);
    await h.monitor.update([]);
    expect(trace(h.monitor.events, 'start-up').slice(0, 6)).toBe('-F↑--↓');
  });

  it('checks at the fast interval while a change is under way, and at the interval otherwise', async () => {
    await h.monitor.update([{ id: 'fast', address: RS, port: 8090, check: check('tcp', { interval: 1000, fastInterval: 100, rise: 3, fall: 3, startUp: true }) }]);
    await h.monitor.resultsAfter('fast', 2, 3000);
    const from = h.monitor.events.length;
    await signal(tcp, 'SIGUSR1', /closed/);
    await h.monitor.waitFor((e) => e.event === 'transition' && e.id === 'fast' && !e.up, 4000, from);
    const after = h.monitor.events.length;
    await h.monitor.resultsAfter('fast', 1, 3000, after);
    await signal(tcp, 'SIGUSR2', /open/);
    await h.monitor.update([]);
    const rs = h.monitor.results('fast').filter((_, i, all) => i >= all.findIndex((r) => !r.result.ok) - 1);
    // ok (interval) fail (fast) fail (fast) fail → down (interval) fail
    const gaps = rs.slice(1).map((r, i) => r.result.at - (rs[i]?.result.at ?? 0));
    expect(rs.map((r) => (r.result.ok ? '+' : '-')).join('')).toBe('+----');
    expect(gaps[0]).toBeGreaterThan(800);
    expect(gaps[1]).toBeGreaterThan(70);
    expect(gaps[1]).toBeLessThan(500);
    expect(gaps[2]).toBeLessThan(500);
    expect(gaps[3]).toBeGreaterThan(800);
  });

  it('spreads the first checks of many targets over the interval', async () => {
    const targets = Array.from({ length: 200 }, (_, i) => ({ id: `spread${i}`, address: RS, port: 8090, check: check('tcp', { interval: 1000 }) }));
    const from = h.monitor.events.length;
    await h.monitor.update(targets);
    await h.monitor.firstVerdicts(
      targets.map((t) => t.id),
      5000,
    );
    await h.monitor.update([]);
    const firsts = new Map<string, number>();
    for (const e of h.monitor.events.slice(from)) if (e.event === 'result' && !firsts.has(e.id)) firsts.set(e.id, e.result.at - e.result.durationMs);
    expect(firsts.size).toBe(200);
    const times = [...firsts.values()];
    const t0 = Math.min(...times);
    const buckets = new Array<number>(10).fill(0);
    for (const t of times) buckets[Math.min(9, Math.floor((t - t0) / 100))]! += 1;
    // Uniform would be 20 per 100 ms; all at once would be 200 in one bucket.
    expect(Math.max(...times) - t0).toBeGreaterThan(700);
    expect(Math.max(...buckets)).toBeLessThan(80);
  });
});
