import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../../lab/netns.js';
import { makeCerts, type TestCerts } from './certs.js';
import { BLACKHOLE, check, healthLab, RS, signal, type HealthLab } from './harness.js';

interface ServerStats {
  requests: number;
  maxConcurrent: number;
  maxConcurrentByPath: Record<string, number>;
  bigBytesSent: number[];
}

async function serverStats(d: Daemon): Promise<ServerStats> {
  const line = await signal(d, 'SIGHUP', /STATS (\{.*\})\n/);
  return JSON.parse(line.slice('STATS '.length)) as ServerStats;
}

describe('health: HTTP and HTTPS checks against a real server', () => {
  let h: HealthLab;
  let srv: Daemon;
  let certs: TestCerts;
  beforeAll(async () => {
    h = await healthLab({
      prepare: async (lab) => {
        certs = await makeCerts(lab.dir);
        // The checker trusts the test CA the way a director trusts its realservers' CA.
        return { NODE_EXTRA_CA_CERTS: certs.ca };
      },
    });
    srv = await h.server('http', [
      JSON.stringify({
        host: RS,
        http: 8080,
        https: [
          { port: 8443, ...certs.selfSigned, sni: { 'www.example': certs.good, 'other.example': certs.good } },
          { port: 8444, ...certs.expired },
        ],
      }),
    ]);
  });
  afterAll(async () => {
    await h?.cleanup();
  });

  it('passes and fails HTTP in every way it can', async () => {
    const t = (id: string, port: number, fields: Parameters<typeof check<'http'>>[1]) => ({ id, address: RS, port, check: check('http', fields) });
    const base = { method: 'GET' as const, expectStatus: ['200-399'] as Array<string | number> };
    await h.monitor.update([
      t('ok', 8080, { ...base, path: '/ok', expectBody: 'healthy' }),
      t('503', 8080, { ...base, path: '/status/503' }),
      t('range', 8080, { ...base, path: '/status/204', expectStatus: ['200-299'] }),
      t('redirect-default', 8080, { ...base, path: '/status/302' }),
      t('redirect-exact', 8080, { ...base, path: '/status/302', expectStatus: [200, '204'] }),
      t('body', 8080, { ...base, path: '/ok', expectBody: '^unhealthy' }),
      t('vhost', 8080, { ...base, path: '/vhost', host: 'www.example' }),
      t('no-vhost', 8080, { ...base, path: '/vhost' }),
      t('post', 8080, { ...base, path: '/method', method: 'POST' }),
      t('head', 8080, { ...base, path: '/method', method: 'HEAD' }),
      t('refused', 8081, { ...base, path: '/ok' }),
      t('hang', 8080, { ...base, path: '/hang', timeout: 300 }),
      { id: 'blackhole', address: BLACKHOLE, port: 80, check: check('http', { ...base, path: '/', timeout: 300 }) },
      t('garbage', 8080, { ...base, path: '/garbage' }),
    ]);
    const v = await h.monitor.firstVerdicts(
      ['ok', '503', 'range', 'redirect-default', 'redirect-exact', 'body', 'vhost', 'no-vhost', 'post', 'head', 'refused', 'hang', 'blackhole', 'garbage'],
      5000,
    );
    const got = Object.fromEntries([...v].map(([id, e]) => [id, `${e.up ? 'up' : 'down'}: ${e.reason}`]));
    expect(got).toEqual({
      ok: 'up: HTTP 200',
      '503': 'down: HTTP 503',
      range: 'up: HTTP 204',
      'redirect-default': 'up: HTTP 302',
      'redirect-exact': 'down: HTTP 302',
      body: 'down: HTTP 200, body does not match /^unhealthy/',
      vhost: 'up: HTTP 200',
      'no-vhost': 'down: HTTP 421',
      post: 'up: HTTP 200',
      head: 'down: HTTP 405',
      refused: 'down: connect ECONNREFUSED',
      hang: 'down: timeout after 300 ms',
      blackhole: 'down: timeout after 300 ms',
      garbage: 'down: HTTP: bad response (HPE_INVALID_CONSTANT)',
    });
  });

  it('passes and fails HTTPS: SNI, verification, expired and self-signed certificates', async () => {
    const t = (id: string, port: number, fields: Partial<Parameters<typeof check<'https'>>[1]>) => ({
      id,
      address: RS,
      port,
      check: check('https', { method: 'GET', path: '/ok', expectStatus: ['200-399'], verifyTls: true, ...fields }),
    });
    await h.monitor.update([
      t('sni', 8443, { sni: 'www.example' }),
      t('host-gives-sni', 8443, { host: 'www.example', path: '/vhost' }),
      t('no-sni', 8443, {}),
      t('no-sni-unverified', 8443, { verifyTls: false }),
      t('wrong-name', 8443, { sni: 'other.example' }),
      t('expired', 8444, { sni: 'www.example' }),
      t('expired-unverified', 8444, { sni: 'www.example', verifyTls: false }),
      t('plain-http', 8080, { sni: 'www.example' }),
      t('refused', 8445, { sni: 'www.example' }),
    ]);
    const ids = ['sni', 'host-gives-sni', 'no-sni', 'no-sni-unverified', 'wrong-name', 'expired', 'expired-unverified', 'plain-http', 'refused'];
    const v = await h.monitor.firstVerdicts(ids, 5000);
    const got = Object.fromEntries([...v].map(([id, e]) => [id, `${e.up ? 'up' : 'down'}: ${e.reason}`]));
    expect(got).toMatchObject({
      sni: 'up: HTTP 200',
      'host-gives-sni': 'up: HTTP 200',
      'no-sni': 'down: TLS: self-signed certificate',
      'no-sni-unverified': 'up: HTTP 200',
      expired: 'down: TLS: certificate has expired',
      'expired-unverified': 'up: HTTP 200',
      refused: 'down: connect ECONNREFUSED',
    });
    expect(got['wrong-name']).toMatch(/^down: TLS: Hostname\/IP does not match certificate's altnames: Host: other\.example/);
    expect(got['plain-http']).toBe('down: TLS: wrong version number');
  });

  it('gives up on trickling servers at the timeout', async () => {
    const base = { method: 'GET' as const, expectStatus: ['200-399'] as Array<string | number>, timeout: 500, expectBody: 'healthy' };
    await h.monitor.update([
      { id: 'trickle-head', address: RS, port: 8080, check: check('http', { ...base, path: '/trickle-head' }) },
      { id: 'trickle-body', address: RS, port: 8080, check: check('http', { ...base, path: '/trickle-body' }) },
    ]);
    for (const id of ['trickle-head', 'trickle-body']) {
      const rs = await h.monitor.resultsAfter(id, 3, 5000);
      for (const { result } of rs) {
        expect(result).toMatchObject({ ok: false, reason: 'timeout after 500 ms' });
        expect(result.durationMs).toBeLessThan(1500);
      }
    }
  });

  it('reads no more than the bound of a 100 MB body, in time and in memory', async () => {
    await h.monitor.update([]);
    await serverStats(srv);
    const before = await h.monitor.process();
    const base = { method: 'GET' as const, expectStatus: ['200-399'] as Array<string | number>, path: '/big', interval: 100, timeout: 2000 };
    await h.monitor.update([
      { id: 'big-match', address: RS, port: 8080, check: check('http', { ...base, expectBody: '^BEGIN healthy' }) },
      { id: 'big-nomatch', address: RS, port: 8080, check: check('http', { ...base, expectBody: 'END' }) },
      { id: 'big-status-only', address: RS, port: 8080, check: check('http', base) },
    ]);
    const runs = 20;
    for (const [id, ok, reason] of [
      ['big-match', true, 'HTTP 200'],
      ['big-nomatch', false, 'HTTP 200, body does not match /END/'],
      ['big-status-only', true, 'HTTP 200'],
    ] as const) {
      const rs = await h.monitor.resultsAfter(id, runs, 20_000);
      for (const { result } of rs) {
        expect(result).toMatchObject({ ok, reason });
        expect(result.durationMs).toBeLessThan(1500);
      }
    }
    await h.monitor.update([]);
    const after = await h.monitor.process();
    // 60 checks of a 100 MB body: memory grows by far less than one body.
    expect(after.rssMb - before.rssMb).toBeLessThan(40);
    const stats = await serverStats(srv);
    expect(stats.bigBytesSent.length).toBeGreaterThanOrEqual(3 * runs);
    // What the server got out before the checker closed: socket buffers, not the body.
    expect(Math.max(...stats.bigBytesSent)).toBeLessThan(16 * 1024 * 1024);
  });

  it('follows a server that starts failing and recovers', async () => {
    await h.monitor.update([
      { id: 'toggle', address: RS, port: 8080, check: check('http', { method: 'GET', path: '/toggle', expectStatus: [200], interval: 100 }) },
    ]);
    expect((await h.monitor.firstVerdicts(['toggle'], 3000)).get('toggle')).toMatchObject({ up: true });
    const from = h.monitor.events.length;
    await signal(srv, 'SIGUSR1', /failing/);
    const down = await h.monitor.waitFor((e) => e.event === 'transition' && e.id === 'toggle', 3000, from);
    expect(down).toMatchObject({ up: false, reason: 'HTTP 503' });
    // Its log line comes 100 ms after the verdict (not beside a withdrawal it started), with the verdict's time.
    const line = await h.monitor.waitFor((e) => e.event === 'log' && e.msg === 'target down', 3000, from);
    if (down.event !== 'transition' || line.event !== 'log') throw new Error('unexpected events');
    expect(line.fields).toEqual({ id: 'toggle', reason: 'HTTP 503', at: new Date(down.at).toISOString() });
    expect(line.loggedAt - down.at).toBeGreaterThanOrEqual(90);
    const from2 = h.monitor.events.length;
    await signal(srv, 'SIGUSR2', /healthy/);
    expect(await h.monitor.waitFor((e) => e.event === 'transition' && e.id === 'toggle', 3000, from2)).toMatchObject({ up: true, reason: 'HTTP 200' });
  });
});
