/**
 * vipd end to end: the real daemon in the VM (real IPVS, gobgpd), a BIRD router and three
 * HTTP realservers in namespaces on one bridge. Health drives IPVS weights and the route.
 */
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBird, type Bird } from '../../lab/bird.js';
import { Lab, type Daemon } from '../../lab/netns.js';
import { REPO_ROOT, Vm } from '../../lab/vm.js';

const VIP = '198.51.100.10';
const PROTO = `${process.env.VIPD_CACHE ?? '/var/cache/vipd'}/gobgp-proto`;

function config(opts: { vips?: string[]; minHealthy?: number } = {}): string {
  const vips = opts.vips ?? [VIP];
  return `
node: { name: e2e, stateDir: /tmp/vipd-state, runDir: /run/vipd }
log: { level: debug, format: json }
vipRanges: [198.51.100.0/24]
bgp:
  asn: 64513
  routerId: 192.0.2.10
  withdrawDelay: 1s
  peers: [{ address: 192.0.2.1, asn: 64512, connectRetry: 1s, holdTime: 9s, keepalive: 3s }]
vips: [${vips.map((v) => `{ address: ${v}, minHealthy: ${opts.minHealthy ?? 1} }`).join(', ')}]
nodes: [{ name: n3 }]
services:
${vips
  .map(
    (v) => `  - vip: ${v}
    port: 80
    scheduler: mh
    flags: [mh-fallback, mh-port]
    check: { type: tcp, interval: 500ms, timeout: 1s, rise: 2, fall: 2 }
    realservers: [{ address: 203.0.113.11 }, { address: 203.0.113.12 }, { address: 203.0.113.13, node: n3 }]`,
  )
  .join('\n')}
`;
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 30_000, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

describe('vipd end to end (VM with IPVS, BIRD, realservers)', () => {
  let lab: Lab;
  let vm: Vm;
  let bird: Bird;
  let cfgFile: string;
  const servers = new Map<string, Daemon>();
  const rsNs = new Map<string, string>();

  const route = async (): Promise<boolean> => (await bird.cli(`show route`)).includes(`${VIP}/32`);
  const weights = async (): Promise<Record<string, number>> => {
    const out = (await vm.run('ipvsadm -Sn')).stdout;
    const w: Record<string, number> = {};
    for (const m of out.matchAll(new RegExp(`-a -t ${VIP}:80 -r (\\S+):80 -g -w (\\d+)`, 'g'))) w[m[1]!] = Number(m[2]);
    return w;
  };
  const vipctl = async (args: string): Promise<unknown> => JSON.parse((await vm.run(`node ${REPO_ROOT}/dist/vipctl.mjs --socket /run/vipd/vipd.sock ${args} --json`)).stdout);
  let vipdPid = 0;
  const startVipd = async (): Promise<void> => {
    const r = await vm.run(`VIPD_GOBGP_PROTO_DIR=${PROTO}/api setsid node ${REPO_ROOT}/dist/vipd.mjs run --config ${cfgFile} >>/tmp/vipd.log 2>&1 </dev/null & echo $!`);
    vipdPid = Number(r.stdout.trim());
  };
  // By PID: `pkill -f` would also match the shell that runs it.
  const signalVipd = (sig: string): Promise<unknown> => vm.run(`kill -${sig} ${vipdPid}`);
  const startServer = (ip: string): void => {
    servers.set(ip, lab.spawn(rsNs.get(ip)!, 'python3', ['-m', 'http.server', '--bind', ip, '80']));
  };

  beforeAll(async () => {
    lab = await Lab.create();
    const net = await lab.ns('net');
    await lab.bridge(net, 'br0');
    const r = await lab.ns('r');
    await lab.veth({ ns: r, dev: 'eth0', cidrs: ['192.0.2.1/24'] }, { ns: net, dev: 'r0', master: 'br0' });
    for (const [i, ip] of ['203.0.113.11', '203.0.113.12', '203.0.113.13'].entries()) {
      const ns = await lab.ns(`rs${i + 1}`);
      rsNs.set(ip, ns);
      await lab.veth({ ns, dev: 'eth0', cidrs: [`${ip}/24`] }, { ns: net, dev: `rs${i + 1}`, master: 'br0' });
      startServer(ip);
    }
    bird = await startBird(
      lab,
      r,
      'r',
      `router id 192.0.2.1;
protocol device {}
protocol bgp director { local 192.0.2.1 as 64512; neighbor 192.0.2.10 as 64513; passive on; graceful restart on; ipv4 { import all; export none; }; }
`,
    );
    cfgFile = lab.path('vipd.yaml');
    writeFileSync(cfgFile, config());
    vm = await Vm.boot(lab, {
      netns: net,
      bridge: 'br0',
      ip: '192.0.2.10/24',
      extraShares: [
        { path: lab.dir, tag: 'lab' },
        { path: PROTO, tag: 'proto' },
      ],
    });
    await vm.run('ip addr add 203.0.113.1/24 dev eth0');
    await startVipd();
  }, 240_000);

  afterAll(async () => {
    if (bird) console.info(await bird.cli('show protocols all director').catch(String), await bird.cli('show route all').catch(String));
    if (vm) {
      const log = await vm.exec('grep -v debug /tmp/vipd.log | tail -n 60');
      if (log.stdout) console.info(log.stdout);
      await vm.shutdown();
    }
    await lab?.cleanup();
  });

  it('programs IPVS and announces the VIP once the realservers are healthy', async () => {
    await until('route in BIRD', route, 120_000);
    expect(await weights()).toEqual({ '203.0.113.11': 100, '203.0.113.12': 100, '203.0.113.13': 100 });
    const status = (await vipctl('status')) as { serving: boolean; peers: { state: string }[]; vips: { state: string; announced: boolean }[] };
    expect(status.serving).toBe(true);
    expect(status.peers[0]?.state).toBe('ESTABLISHED');
    expect(status.vips[0]).toMatchObject({ state: 'up', announced: true });
  });

  it('puts a failed realserver at weight 0 and shows why', async () => {
    await servers.get('203.0.113.12')!.stop('SIGKILL');
    await until('weight 0', async () => (await weights())['203.0.113.12'] === 0, 20_000);
    const svc = (await vipctl('services')) as { realservers: { address: string; healthy: boolean; reason: string }[] }[];
    const rs = svc[0]!.realservers.find((x) => x.address === '203.0.113.12');
    expect(rs?.healthy).toBe(false);
    expect(rs?.reason).toMatch(/ECONNREFUSED|timeout/);
    expect(await route()).toBe(true);
    startServer('203.0.113.12');
    await until('weight back', async () => (await weights())['203.0.113.12'] === 100, 20_000);
  });

  it('drains a node at runtime and keeps the drain across a restart', async () => {
    await vipctl('drain n3');
    await until('node drained', async () => (await weights())['203.0.113.13'] === 0, 10_000);
    await signalVipd('KILL');
    await startVipd();
    await until('vipd back', async () => ((await vipctl('status')) as { serving: boolean }).serving, 60_000);
    expect((await weights())['203.0.113.13']).toBe(0);
    await vipctl('undrain n3');
    await until('node undrained', async () => (await weights())['203.0.113.13'] === 100, 10_000);
  });

  it('refuses a bad config on SIGHUP and changes nothing', async () => {
    const before = await weights();
    writeFileSync(cfgFile, config().replace('203.0.113.11', '203.0.113.300'));
    await signalVipd('HUP');
    const status = await until(
      'reload refused',
      async () => {
        const s = (await vipctl('status')) as { config: { lastReload: { ok: boolean; problems: string[] } } };
        return s.config.lastReload.ok ? undefined : s;
      },
      10_000,
    );
    expect(status.config.lastReload.problems.join('\n')).toContain('services[0].realservers[0].address: not an IPv4 or IPv6 address');
    expect(await weights()).toEqual(before);
    expect(await route()).toBe(true);
    writeFileSync(cfgFile, config());
  });

  it('withdraws when the last realserver fails and announces again when one recovers', async () => {
    for (const ip of servers.keys()) await servers.get(ip)!.stop('SIGKILL');
    await until('route withdrawn', async () => !(await route()), 20_000);
    const w = await weights();
    expect(Object.values(w)).toEqual([0, 0, 0]);
    startServer('203.0.113.11');
    await until('route back', route, 20_000);
    startServer('203.0.113.12');
    startServer('203.0.113.13');
    await until('all healthy', async () => {
      const w = Object.values(await weights());
      return w.length === 3 && w.every((x) => x === 100);
    }, 20_000);
  });

  it('restarts with the same config without touching IPVS or the route', async () => {
    const statsBefore = (await vm.run(`ipvsadm -Sn`)).stdout;
    let lost = false;
    let polling = true;
    const poll = (async () => {
      while (polling) {
        if (!(await route())) lost = true;
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    await signalVipd('KILL');
    await vm.run('killall -9 gobgpd; true');
    await startVipd();
    await until('vipd serving again', async () => ((await vipctl('status')) as { serving: boolean }).serving, 60_000);
    await new Promise((r) => setTimeout(r, 3000));
    polling = false;
    await poll;
    expect(lost).toBe(false);
    expect((await vm.run('ipvsadm -Sn')).stdout).toBe(statsBefore);
    const events = (await vipctl('events -n 1000')) as { seq: number; kind: string; message: string }[];
    const started = events.filter((e) => e.message === 'vipd started').at(-1)!.seq;
    expect(events.filter((e) => e.seq > started && e.kind === 'ipvs' && e.message.startsWith('applied'))).toEqual([]);
  });

  it('removing a VIP withdraws it before its address leaves the interface', async () => {
    const dev = (await vm.run(`ip -o addr show to ${VIP}/32`)).stdout.split(/\s+/)[1];
    expect(dev).toBeTruthy();
    writeFileSync(cfgFile, config({ vips: ['198.51.100.11'] }));
    await signalVipd('HUP');
    let routeGone = 0;
    let addrGone = 0;
    await until(
      'route and address gone',
      async () => {
        if (!routeGone && !(await route())) routeGone = Date.now();
        if (!addrGone && !(await vm.run(`ip -o addr show to ${VIP}/32`)).stdout.trim()) addrGone = Date.now();
        return routeGone && addrGone ? true : undefined;
      },
      30_000,
      50,
    );
    expect(routeGone).toBeLessThan(addrGone);
    await until('service removed', async () => !(await vm.run('ipvsadm -Sn')).stdout.includes(VIP), 20_000);
  });
});
