import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../../lab/netns.js';
import type { CheckConfig } from '../../../src/config/schema.js';
import type { TargetSpec } from '../../../src/health/index.js';
import { BLACKHOLE, check, healthLab, RS, signal, sleep, type HealthLab } from './harness.js';

interface ServerStats {
  requests: number;
  maxConcurrent: number;
  maxConcurrentByPath: Record<string, number>;
}

async function serverStats(d: Daemon): Promise<ServerStats> {
  const line = await signal(d, 'SIGHUP', /STATS (\{.*\})\n/);
  return JSON.parse(line.slice('STATS '.length)) as ServerStats;
}

const http = (id: string, path: string, fields: Partial<Parameters<typeof check<'http'>>[1]> = {}): TargetSpec => ({
  id,
  address: RS,
  port: 8080,
  check: check('http', { method: 'GET', path, expectStatus: ['200-399'], ...fields }),
});

describe('health: scale hygiene', () => {
  let h: HealthLab;
  let srv: Daemon;
  beforeAll(async () => {
    h = await healthLab({ health: { concurrency: 100, history: 20 } });
    srv = await h.server('http', [JSON.stringify({ host: RS, http: 8080 })]);
    await h.server('tcp', [JSON.stringify({ hosts: [RS], ports: [8090] })]);
    await h.server('udp', [JSON.stringify({ hosts: [RS], port: 7007 })]);
    await h.server('dns', [JSON.stringify({ host: RS, port: 53 })]);
    await h.server('agent', [JSON.stringify({ host: RS, replies: { 9001: '50%', 9007: '<silent>' }, cycle: { port: 9100, replies: ['up'] } })]);
  });
  afterAll(async () => {
    await h?.cleanup();
  });

  it('never runs a slow check twice at once for one target', async () => {
    await serverStats(srv);
    await h.monitor.update([http('slow', '/slow?ms=400', { interval: 50, timeout: 2000 })]);
    const rs = await h.monitor.resultsAfter('slow', 4, 5000);
    await h.monitor.update([]);
    expect(rs.every((r) => r.result.ok && r.result.durationMs >= 399)).toBe(true);
    const stats = await serverStats(srv);
    expect(stats.maxConcurrentByPath['/slow?ms=400']).toBe(1);
  });

  it('holds all targets to the global concurrency limit', async () => {
    await h.monitor.configure({ concurrency: 3, history: 20 });
    await serverStats(srv);
    const targets = Array.from({ length: 8 }, (_, i) => http(`limited${i}`, `/slow?ms=300&n=${i}`, { interval: 50, timeout: 2000 }));
    await h.monitor.update(targets);
    await sleep(2000);
    await h.monitor.update([]);
    await h.monitor.configure({ concurrency: 100, history: 20 });
    const stats = await serverStats(srv);
    expect(stats.maxConcurrent).toBe(3);
    // Every target still got its turn.
    for (const t of targets) expect(h.monitor.results(t.id).length).toBeGreaterThan(0);
  });

  it('leaves no socket, descriptor or process behind, however checks end', async () => {
    await sleep(300);
    const baseline = await h.monitor.process();
    const t = (id: string, port: number, c: CheckConfig, address = RS): TargetSpec => ({ id, address, port, check: c });
    const fast = { interval: 100, timeout: 300 };
    await h.monitor.update([
      t('tcp-ok', 8090, check('tcp', fast)),
      t('tcp-refused', 8091, check('tcp', fast)),
      t('tcp-timeout', 8090, check('tcp', fast), BLACKHOLE),
      http('http-ok', '/ok', { ...fast, expectBody: 'healthy' }),
      http('http-hang', '/hang', fast),
      http('http-trickle', '/trickle-body', { ...fast, expectBody: 'x' }),
      http('http-big', '/big', { ...fast, expectBody: 'healthy' }),
      http('http-garbage', '/garbage', fast),
      t('udp-ok', 7007, check('udp', { ...fast, payload: 'ping' })),
      t('udp-silent', 7007, check('udp', { ...fast, payload: 'silent' })),
      t('udp-refused', 7008, check('udp', { ...fast, payload: 'ping' })),
      t('dns-udp', 53, check('dns', { ...fast, query: 'ok.example', qtype: 'A', expectRcode: 'NOERROR', transport: 'udp' })),
      t('dns-tcp', 53, check('dns', { ...fast, query: 'ok.example', qtype: 'A', expectRcode: 'NOERROR', transport: 'tcp' })),
      t('dns-silent', 53, check('dns', { ...fast, query: 'silent.example', qtype: 'A', expectRcode: 'NOERROR', transport: 'udp' })),
      t('script', 0, check('script', { ...fast, command: '/bin/sleep', args: ['1'] })),
      { id: 'agent', address: RS, agent: { port: 9001, ...fast } },
      { id: 'agent-silent', address: RS, agent: { port: 9007, ...fast } },
    ]);
    await sleep(2500);
    const during = await h.monitor.process();
    // Mid-run, in-flight checks hold sockets (these bound the count, not prove hygiene).
    expect(during.fds).toBeGreaterThan(baseline.fds);
    await h.monitor.update([]);
    await sleep(500);
    const tcp = (await h.sh(h.director, 'ss', ['-tanH'])).split('\n').filter((l) => l.trim() && !/^TIME-WAIT/.test(l));
    const udp = (await h.sh(h.director, 'ss', ['-uanH'])).split('\n').filter((l) => l.trim());
    expect(tcp).toEqual([]);
    expect(udp).toEqual([]);
    const after = await h.monitor.process();
    expect(after.fds).toBe(baseline.fds);
    expect(await h.strays()).toEqual([]);
  });
});
