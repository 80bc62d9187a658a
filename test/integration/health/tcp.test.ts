import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../../lab/netns.js';
import { BLACKHOLE, check, healthLab, RS, RS6, signal, type HealthLab } from './harness.js';

describe('health: TCP checks against a real server', () => {
  let h: HealthLab;
  let srv: Daemon;
  beforeAll(async () => {
    h = await healthLab();
    srv = await h.server('tcp', [JSON.stringify({ hosts: [RS, RS6], ports: [8080] })]);
  });
  afterAll(async () => {
    await h?.cleanup();
  });

  it('passes on connect and fails refused, on timeout and per port', async () => {
    await h.monitor.update([
      { id: 'ok', address: RS, port: 8080, check: check('tcp', {}) },
      { id: 'ok6', address: RS6, port: 8080, check: check('tcp', {}) },
      { id: 'override', address: RS, port: 9999, check: check('tcp', { port: 8080 }) },
      { id: 'refused', address: RS, port: 8081, check: check('tcp', {}) },
      { id: 'timeout', address: BLACKHOLE, port: 8080, check: check('tcp', { timeout: 300 }) },
    ]);
    const v = await h.monitor.firstVerdicts(['ok', 'ok6', 'override', 'refused', 'timeout'], 5000);
    expect(v.get('ok')).toMatchObject({ up: true, reason: 'connected' });
    expect(v.get('ok6')).toMatchObject({ up: true, reason: 'connected' });
    expect(v.get('override')).toMatchObject({ up: true, reason: 'connected' });
    expect(v.get('refused')).toMatchObject({ up: false, reason: 'connect ECONNREFUSED' });
    expect(v.get('timeout')).toMatchObject({ up: false, reason: 'timeout after 300 ms' });
    const timeouts = h.monitor.results('timeout').map((r) => r.result.durationMs);
    // Without the timeout a connect into the void would never end.
    expect(Math.max(...timeouts)).toBeLessThan(1000);
    expect(Math.min(...timeouts)).toBeGreaterThanOrEqual(299);
  });

  it('follows the server going away and coming back', async () => {
    const from = h.monitor.events.length;
    await signal(srv, 'SIGUSR1', /closed/);
    const down = await h.monitor.waitFor((e) => e.event === 'transition' && e.id === 'ok', 3000, from);
    expect(down).toMatchObject({ up: false, first: false, reason: 'connect ECONNREFUSED' });
    const from2 = h.monitor.events.length;
    await signal(srv, 'SIGUSR2', /open/);
    const up = await h.monitor.waitFor((e) => e.event === 'transition' && e.id === 'ok', 3000, from2);
    expect(up).toMatchObject({ up: true, reason: 'connected' });
    const history = (await h.monitor.status('ok')).history.map((r) => r.reason);
    expect(history).toContain('connect ECONNREFUSED');
    expect(history.at(-1)).toBe('connected');
  });
});
