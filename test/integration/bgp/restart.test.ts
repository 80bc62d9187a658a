/**
 * Graceful restart and deliberate stop, observed from BIRD: kill -9 of gobgpd and of the
 * vipd process must not withdraw anything at the router (BIRD's table is polled every 50 ms
 * and its log must show a graceful restart and no removal), also when the new vipd's first
 * route set has its VIPs pending (up, IPVS not applied yet); SIGTERM of vipd must withdraw
 * every route while the session is still up, and only then end it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BgpSpeaker } from '../../../src/bgp/speaker.js';
import type { DriverInput } from './driver.js';
import { bgpConfig, BirdControl, birdc, captureLogger, createBgpLab, DIRECTOR_ASN, ROUTER_ASN, sleep, V4_SESSION, vip, waitFor, type BgpLab } from './helpers.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const DRIVER = fileURLToPath(new URL('./driver.ts', import.meta.url));

interface Sample {
  present: boolean;
  established: boolean;
}

/**
 * Polls BIRD every 50 ms over its control socket (birdc through `ip netns exec` costs tens of
 * ms on a loaded host, too slow to see a short gap): is `prefix` in the table, is session d4 up.
 */
function monitor(bl: BgpLab, prefix: string): { stop(): Promise<Sample[]> } {
  const samples: Sample[] = [];
  let running = true;
  const loop = (async () => {
    const ctl = await BirdControl.connect(bl.bird.socket);
    try {
      while (running) {
        const present = await ctl.has(prefix);
        const established = /d4\s+BGP\s+\S+\s+up\s+\S+\s+Established/.test(await ctl.query('show protocols'));
        samples.push({ present, established });
        await sleep(50);
      }
    } finally {
      ctl.close();
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return samples;
    },
  };
}

interface Driver {
  child: ChildProcess;
  pid: number;
  /** Resolves with gobgpd's pid once the driver has announced its routes. */
  ready: Promise<number>;
  exited: Promise<number | null>;
  stderr(): string;
}

/** Running (a killed orphan may linger as a zombie until init reaps it). */
const alive = (pid: number): boolean => {
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

describe('graceful restart and deliberate stop, seen by BIRD', () => {
  let bl: BgpLab;
  let speaker: BgpSpeaker | undefined;
  const drivers = new Set<Driver>();
  const birdLog = (): string => bl.bird.daemon.output();

  function startDriver(input: DriverInput): Driver {
    const file = bl.lab.path('driver.json');
    writeFileSync(file, JSON.stringify(input));
    const child = spawn(process.execPath, ['--import', 'tsx', DRIVER, file], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stderr?.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-200_000)));
    const d: Driver = {
      child,
      pid: child.pid as number,
      stderr: () => err,
      exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))),
      ready: new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`driver not ready in 30 s: ${err.slice(-2000)}`)), 30_000);
        child.stdout?.on('data', (b: Buffer) => {
          out += b.toString();
          const m = /READY (\d+)/.exec(out);
          if (m) {
            clearTimeout(t);
            resolve(Number(m[1]));
          }
        });
        child.once('exit', (code) => {
          clearTimeout(t);
          reject(new Error(`driver exited (${code}) before ready: ${err.slice(-2000)}`));
        });
      }),
    };
    drivers.add(d);
    void d.exited.then(() => drivers.delete(d));
    return d;
  }

  beforeAll(async () => {
    bl = await createBgpLab([V4_SESSION]);
  });

  afterAll(async () => {
    for (const d of drivers) d.child.kill('SIGKILL');
    await Promise.all([...drivers].map((d) => d.exited));
    await speaker?.stop({ withdraw: false });
    await bl?.lab.cleanup();
  });

  it('kill -9 of gobgpd: BIRD keeps the route as stale and it is refreshed after the restart', async () => {
    const { log, entries } = captureLogger();
    speaker = new BgpSpeaker(bgpConfig(), log, { runDir: bl.lab.path('run1'), wrap: ['ip', 'netns', 'exec', bl.director], restartBackoff: { initialMs: 200, maxMs: 2_000 } });
    const lifecycle: string[] = [];
    speaker.on('gobgpd', (state) => lifecycle.push(state));
    await speaker.start();
    await speaker.setRoutes([{ vip: vip('198.51.100.30'), state: 'up' }]);
    await waitFor('198.51.100.30 in BIRD', async () => (await bl.routes()).has('198.51.100.30/32'));
    const gobgpd = speaker.gobgpdPid as number;
    const mark = birdLog().length;
    const mon = monitor(bl, '198.51.100.30/32');
    await sleep(200);

    process.kill(gobgpd, 'SIGKILL');
    await waitFor('BIRD: graceful restart done', async () => birdLog().slice(mark).includes('Neighbor graceful restart done'), 30_000);
    await sleep(200);
    const samples = await mon.stop();

    expect(samples.length).toBeGreaterThan(10);
    expect(samples.filter((s) => !s.present)).toEqual([]);
    const seen = birdLog().slice(mark);
    expect(seen).toMatch(/Neighbor graceful restart detected/);
    expect(seen).not.toMatch(/removed.*198\.51\.100\.30/);
    expect(speaker.gobgpdPid).toBeDefined();
    expect(speaker.gobgpdPid).not.toBe(gobgpd);
    expect(entries.some((e) => e.level === 'error' && /gobgpd died/.test(e.msg))).toBe(true);
    expect(lifecycle).toEqual(['up', 'down', 'up']);
  });

  it('a reload with a new router id restarts gobgpd gracefully: no withdrawal at BIRD', async () => {
    const sp = speaker as BgpSpeaker;
    const gobgpd = sp.gobgpdPid;
    const mark = birdLog().length;
    const mon = monitor(bl, '198.51.100.30/32');
    await sleep(200);
    const changes = await sp.reconfigure(bgpConfig({ routerId: '192.0.2.11' }));
    expect(changes).toMatchObject({ restarted: true, routes: { announced: ['198.51.100.30/32'] }, peers: { added: [], updated: [], removed: [] } });
    await waitFor('BIRD: graceful restart done', async () => birdLog().slice(mark).includes('Neighbor graceful restart done'), 30_000);
    await sleep(200);
    const samples = await mon.stop();
    expect(samples.filter((s) => !s.present)).toEqual([]);
    expect(birdLog().slice(mark)).not.toMatch(/removed.*198\.51\.100\.30/);
    expect(sp.gobgpdPid).not.toBe(gobgpd);
    expect(await birdc(bl, 'show protocols all d4')).toMatch(/Neighbor ID:\s+192\.0\.2\.11/);

    await sp.stop({ withdraw: true });
    speaker = undefined;
    await waitFor('198.51.100.30 withdrawn', async () => !(await bl.routes()).has('198.51.100.30/32'));
  });

  const input = (): DriverInput => ({
    bgp: {
      asn: DIRECTOR_ASN,
      routerId: '192.0.2.10',
      listenPort: 179,
      gracefulRestart: { enabled: true, restartTime: '60s' },
      withdrawDelay: '1s',
      peers: [{ address: '192.0.2.1', asn: ROUTER_ASN, holdTime: '9s', keepalive: '3s', connectRetry: '5s' }],
    },
    vips: [{ address: '198.51.100.31', med: 10 }],
    runDir: bl.lab.path('run2'),
    wrap: ['ip', 'netns', 'exec', bl.director],
    // Longer than a session takes to come up: an End-of-RIB sent meanwhile would drop the route.
    pendingMs: 3_000,
  });
  let second: Driver | undefined;

  it('kill -9 of vipd: the next vipd takes over, holds End-of-RIB while its VIP is pending, BIRD keeps the route', async () => {
    const first = startDriver(input());
    const gobgpd1 = await first.ready;
    await waitFor('198.51.100.31 in BIRD', async () => (await bl.routes()).has('198.51.100.31/32'));
    await waitFor('d4 Established', async () => /Established/.test((await bl.protocols()).get('d4')?.info ?? ''));
    const mark = birdLog().length;
    const mon = monitor(bl, '198.51.100.31/32');
    await sleep(200);

    first.child.kill('SIGKILL');
    await first.exited;
    second = startDriver(input());
    const gobgpd2 = await second.ready;
    await waitFor('BIRD: graceful restart done', async () => birdLog().slice(mark).includes('Neighbor graceful restart done'), 30_000);
    await sleep(200);
    const samples = await mon.stop();

    expect(gobgpd2).not.toBe(gobgpd1);
    expect(alive(gobgpd1)).toBe(false);
    expect(samples.length).toBeGreaterThan(10);
    expect(samples.filter((s) => !s.present)).toEqual([]);
    const seen = birdLog().slice(mark);
    expect(seen).toMatch(/Neighbor graceful restart detected/);
    expect(seen).not.toMatch(/removed.*198\.51\.100\.31/);
    expect(second.stderr()).toMatch(/graceful restart/);
    expect(second.stderr()).toMatch(/sessions wait until the pending VIPs are announced/);
    expect(second.stderr()).not.toMatch(/opening sessions without them/);
  });

  it('SIGTERM of vipd: every route is withdrawn while the session is up, then gobgpd stops and vipd exits', async () => {
    const d = second as Driver;
    const gobgpd = await d.ready;
    const mon = monitor(bl, '198.51.100.31/32');
    await sleep(200);
    d.child.kill('SIGTERM');
    expect(await d.exited).toBe(0);
    await sleep(300);
    const samples = await mon.stop();

    const gone = samples.findIndex((s) => !s.present);
    const down = samples.findIndex((s) => !s.established);
    expect(gone).toBeGreaterThan(0);
    expect(samples[gone]?.established).toBe(true);
    expect(down).toBeGreaterThan(gone);
    expect(samples.slice(gone).every((s) => !s.present)).toBe(true);
    expect(alive(gobgpd)).toBe(false);
    expect(existsSync(bl.lab.path('run2/gobgpd.pid'))).toBe(false);
    expect(existsSync(bl.lab.path('run2/gobgpd.sock'))).toBe(false);
  });

  it('a gobgpd slower to answer than startTimeout is started again, with more time, until BGP comes up', async () => {
    const { log, entries } = captureLogger();
    // Every gobgpd start waits 1.5 s first: past the 1 s start timeout, within the retries' 2 s or 4 s.
    const wrap = ['ip', 'netns', 'exec', bl.director, 'sh', '-c', 'sleep 1.5; exec "$0" "$@"'];
    const slow = new BgpSpeaker(bgpConfig({ gobgpd: { startTimeout: '1s' } }), log, { runDir: bl.lab.path('run3'), wrap, restartBackoff: { initialMs: 100, maxMs: 200 } });
    speaker = slow;
    await slow.start();
    expect(slow.gobgpdPid).toBeUndefined();
    await slow.setRoutes([{ vip: vip('198.51.100.32'), state: 'up' }]);
    await waitFor('198.51.100.32 in BIRD', async () => (await bl.routes()).has('198.51.100.32/32'), 60_000);
    const failures = entries.filter((e) => e.level === 'error' && /gobgpd did not start|gobgpd restart failed/.test(e.msg));
    expect(failures[0]?.msg).toBe('gobgpd did not start; trying again');
    expect(failures[0]?.fields.error).toMatch(/gobgpd not ready within 1000 ms/);
    await slow.stop({ withdraw: true });
    speaker = undefined;
  });
});
