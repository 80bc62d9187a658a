import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TargetSpec } from '../../../src/health/index.js';
import { check, healthLab, RS, sleep, type HealthLab } from './harness.js';

describe('health: reload', () => {
  let h: HealthLab;
  beforeAll(async () => {
    h = await healthLab();
    await h.server('tcp', [JSON.stringify({ hosts: [RS, '2001:db8::10'], ports: [8080] })]);
    await h.server('http', [JSON.stringify({ host: RS, http: 8081 })]);
  });
  afterAll(async () => {
    await h?.cleanup();
  });

  it('keeps the state of unchanged checks, restarts changed ones, drops gone ones', async () => {
    const tcp = check('tcp', { interval: 100, rise: 2 });
    const http = check('http', { method: 'GET', path: '/ok', expectStatus: ['200-399'], expectBody: 'healthy', interval: 100, rise: 2 });
    const before: TargetSpec[] = [
      { id: 'keep', address: RS, port: 8080, check: tcp },
      { id: 'keep6', address: '2001:db8::10', port: 8080, check: tcp },
      { id: 'keep-http', address: RS, port: 8081, check: http },
      { id: 'change', address: RS, port: 8080, check: tcp },
      { id: 'gone', address: RS, port: 8080, check: tcp },
    ];
    expect(await h.monitor.update(before)).toEqual({ added: ['keep', 'keep6', 'keep-http', 'change', 'gone'], changed: [], removed: [], kept: 0 });
    for (const t of before) await h.monitor.waitFor((e) => e.event === 'transition' && e.id === t.id && e.up, 3000);
    const was = await h.monitor.status('keep');
    expect(was).toMatchObject({ up: true, known: true });

    // The same definitions written differently: other key order, another spelling of the IPv6 address.
    const reordered = Object.fromEntries(Object.entries(tcp).reverse()) as typeof tcp;
    const after: TargetSpec[] = [
      { id: 'new', address: RS, port: 8080, check: tcp },
      { id: 'keep-http', address: RS, port: 8081, check: { ...http } },
      { id: 'keep', address: RS, port: 8080, check: reordered },
      { id: 'keep6', address: '2001:DB8:0::10', port: 8080, check: tcp },
      { id: 'change', address: RS, port: 8080, check: { ...tcp, port: 8089 } },
    ];
    const mark = h.monitor.events.length;
    expect(await h.monitor.update(after)).toEqual({ added: ['new'], changed: ['change'], removed: ['gone'], kept: 3 });
    const replied = h.monitor.events.length;

    // A changed check starts afresh: down and unknown, then a new first verdict.
    const change = await h.monitor.waitFor((e) => e.event === 'transition' && e.id === 'change', 3000, mark);
    expect(change).toMatchObject({ first: true, up: false, reason: 'connect ECONNREFUSED' });
    await h.monitor.waitFor((e) => e.event === 'transition' && e.id === 'new' && e.up, 3000, mark);
    await h.monitor.resultsAfter('keep', 5, 3000, mark);
    await sleep(300);

    const events = h.monitor.events.slice(mark);
    // Unchanged targets: no new verdict, the count goes on, and they never went down.
    for (const id of ['keep', 'keep6', 'keep-http']) {
      expect(events.filter((e) => e.event === 'transition' && e.id === id)).toEqual([]);
      expect((await h.monitor.status(id)).up).toBe(true);
    }
    const now = await h.monitor.status('keep');
    expect(now.checks).toBeGreaterThanOrEqual(was.checks + 5);
    expect(now.since).toBe(was.since);
    expect(now.history.slice(0, was.history.length)).toEqual(was.history);
    // A gone target reports nothing once update has returned.
    expect(h.monitor.events.slice(replied).filter((e) => e.id === 'gone')).toEqual([]);
    expect(await h.monitor.hasTarget('gone')).toBe(false);
  });

  it('applies a new history length and concurrency to running targets', async () => {
    expect((await h.monitor.status('keep')).history.length).toBeGreaterThan(5);
    await h.monitor.configure({ concurrency: 10, history: 5 });
    const s = await h.monitor.status('keep');
    expect(s.history.length).toBe(5);
    await h.monitor.resultsAfter('keep', 3, 3000, h.monitor.events.length);
    expect((await h.monitor.status('keep')).history.length).toBe(5);
  });

  it('rejects duplicate ids before changing anything', async () => {
    const tcp = check('tcp', {});
    await expect(
      h.monitor.update([
        { id: 'dup', address: RS, port: 8080, check: tcp },
        { id: 'dup', address: RS, port: 8081, check: tcp },
      ]),
    ).rejects.toThrow();
    expect(await h.monitor.hasTarget('keep')).toBe(true);
  });
});
