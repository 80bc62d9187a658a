/**
 * The network around the appliance, for the image test, the image benchmark and `make demo`:
 *
 *   client 192.0.2.130/25 ---- router eth1 192.0.2.129/25   (BIRD, AS 64512)
 *                              router br0 192.0.2.1/25     ---- appliance eth0 192.0.2.10/25 (AS 64513)
 *                              router br1 203.0.113.1/24   ---- appliance eth1 203.0.113.10/24
 *                                                          ---- realservers rs1..rs3 203.0.113.11-13/24
 *
 * A second appliance may run beside the first at SPARE (192.0.2.11/25, 203.0.113.20/24, NICs
 * SPARE_NICS; BIRD protocol `spare`, passive), e.g. with a config that must announce nothing.
 *
 * The appliance sets up its two NICs from the network section of its vipd.yaml (no VLAN here:
 * the host kernel has no 8021q). BIRD
 * puts the VIP route it learns into the router's kernel, so the client reaches 198.51.100.10
 * through the appliance (IPVS, direct routing). Realservers hold the VIP on lo, do not answer
 * ARP for it, and reply to the client straight through the router.
 */
import { writeFileSync } from 'node:fs';
import { run } from '../../src/util/exec.js';
import { startBird, type Bird } from './bird.js';
import type { Daemon, Lab } from './netns.js';

export const ROUTER = '192.0.2.1';
export const DIRECTOR = '192.0.2.10';
export const SPARE = '192.0.2.11';
export const CLIENT = '192.0.2.130';
export const VIP = '198.51.100.10';
export const REALSERVERS = ['203.0.113.11', '203.0.113.12', '203.0.113.13'];
export const ROUTER_ASN = 64512;
export const DIRECTOR_ASN = 64513;
/** The appliance's NICs, eth0 and eth1: uplink to the router, and the realservers' segment. */
export const NICS = [
  { bridge: 'br0', mac: '52:54:00:00:02:0a' },
  { bridge: 'br1', mac: '52:54:00:00:71:0a' },
] as const;
export const SPARE_NICS = [
  { bridge: 'br0', mac: '52:54:00:00:02:0b' },
  { bridge: 'br1', mac: '52:54:00:00:71:14' },
] as const;

export interface ImageLab {
  router: string;
  client: string;
  bird: Bird;
  /** The HTTP servers of REALSERVERS, in that order (stop one to fail its health check). */
  realservers: Daemon[];
  /** Whether BIRD's session with the appliance (or the spare one) is Established. */
  established(protocol?: 'director' | 'spare'): Promise<boolean>;
  /** Prefixes BIRD learnt over one session. */
  routesFrom(protocol: 'director' | 'spare'): Promise<string[]>;
  /** Whether BIRD has a route for the VIP (stale ones during graceful restart included). */
  hasVipRoute(): Promise<boolean>;
  /** `count` HTTP GETs from the client to the VIP, each on a new connection: the bodies (or errors). */
  fetchVip(count: number): Promise<string[]>;
}

const birdConf = `router id ${ROUTER};
log stderr all;
protocol device {}
protocol kernel { ipv4 { import none; export all; }; }
protocol bgp director {
  local ${ROUTER} as ${ROUTER_ASN};
  neighbor ${DIRECTOR} as ${DIRECTOR_ASN};
  graceful restart on;
  hold time 9;
  connect delay time 1;
  connect retry time 1;
  error wait time 1, 5;
  ipv4 { import all; export none; };
}
protocol bgp spare {
  local ${ROUTER} as ${ROUTER_ASN};
  neighbor ${SPARE} as ${DIRECTOR_ASN};
  passive on;
  graceful restart on;
  ipv4 { import all; export none; };
}
`;

// A realserver: its name at /, 200 at /healthz (vipd's health check).
const realserver = `
const name = process.argv[1];
require('node:http').createServer((q, s) => s.end(q.url === '/healthz' ? 'ok' : name)).listen(80, '0.0.0.0');
`;

const fetcher = `
const [url, n] = process.argv.slice(2);
const out = [];
for (let i = 0; i < Number(n); i++) {
  try {
    const r = await fetch(url, { headers: { connection: 'close' }, signal: AbortSignal.timeout(3000) });
    out.push(await r.text());
  } catch (e) {
    out.push('error: ' + (e.cause?.code ?? e.message));
  }
}
console.log(JSON.stringify(out));
`;

export async function createImageLab(lab: Lab): Promise<ImageLab> {
  const router = await lab.ns('r');
  const client = await lab.ns('c');
  for (const k of ['net.ipv4.ip_forward=1', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0']) {
    await lab.exec(router, 'sysctl', ['-qw', k]);
  }
  await lab.bridge(router, 'br0', ['192.0.2.1/25']);
  await lab.bridge(router, 'br1', ['203.0.113.1/24']);
  await lab.veth({ ns: router, dev: 'eth1', cidrs: ['192.0.2.129/25'] }, { ns: client, dev: 'eth0', cidrs: [`${CLIENT}/25`] });
  await lab.ip(client, ['route', 'add', 'default', 'via', '192.0.2.129']);

  const realservers: Daemon[] = [];
  for (const [i, addr] of REALSERVERS.entries()) {
    const ns = await lab.ns(`rs${i + 1}`);
    await lab.veth({ ns: router, dev: `rs${i + 1}`, master: 'br1' }, { ns, dev: 'eth0', cidrs: [`${addr}/24`] });
    await lab.ip(ns, ['route', 'add', 'default', 'via', '203.0.113.1']);
    // Direct routing: the VIP is local, but only the director answers ARP for it.
    await lab.addr(ns, 'lo', `${VIP}/32`);
    for (const k of ['net.ipv4.conf.all.arp_ignore=1', 'net.ipv4.conf.all.arp_announce=2', 'net.ipv4.conf.all.rp_filter=0']) {
      await lab.exec(ns, 'sysctl', ['-qw', k]);
    }
    realservers.push(lab.spawn(ns, process.execPath, ['-e', realserver, `rs${i + 1}`]));
    await waitUntil(`realserver rs${i + 1} listening`, async () => (await lab.exec(ns, 'ss', ['-Hltn', 'sport = :80'])).stdout.includes(':80'), 10_000);
  }

  const bird = await startBird(lab, router, 'router', birdConf);
  const birdc = async (cmd: string): Promise<string> =>
    (await lab.exec(router, 'birdc', ['-s', bird.socket, ...cmd.split(' ')], 10_000)).stdout;
  const script = lab.path('fetch.mjs');
  writeFileSync(script, fetcher);
  return {
    router,
    client,
    bird,
    realservers,
    established: async (protocol = 'director') => new RegExp(`${protocol}\\s+BGP\\s+\\S+\\s+up\\s+\\S+\\s+Established`).test(await birdc(`show protocols ${protocol}`)),
    routesFrom: async (protocol) => [...(await birdc(`show route protocol ${protocol}`)).matchAll(/^(\S+\/\d+)\s/gm)].map((m) => m[1] as string),
    hasVipRoute: async () => (await birdc(`show route for ${VIP}`)).includes(`${VIP}/32`),
    fetchVip: async (count) => {
      const r = await lab.exec(client, process.execPath, [script, `http://${VIP}/`, String(count)], 10_000 + count * 3_000);
      if (r.code !== 0) throw new Error(`fetch from the client failed: ${r.stderr}`);
      return JSON.parse(r.stdout) as string[];
    },
  };
}

/**
 * vipd.yaml for the appliance: the issue's one VIP and three realservers, with the network
 * section; `spare` for the second appliance's addresses.
 */
export function directorConfig(opts: { spare?: boolean } = {}): string {
  const [name, uplink, local] = opts.spare ? ['director-2', SPARE, '203.0.113.20'] : ['director-1', DIRECTOR, '203.0.113.10'];
  return `# The image test's director.
node:
  name: ${name}
network:
  interfaces:
    - name: eth0
      addresses: [${uplink}/25]
      gateway: ${ROUTER}
    - name: eth1
      addresses: [${local}/24]
vipRanges: [198.51.100.0/24]
bgp:
  asn: ${DIRECTOR_ASN}
  routerId: ${uplink}
  # BIRD connects in as soon as gobgpd listens, instead of waiting for gobgpd's connect loop.
  listenPort: 179
  peers:
    - address: ${ROUTER}
      asn: ${ROUTER_ASN}
      holdTime: 9s
      keepalive: 3s
      connectRetry: 5s
vips:
  - address: ${VIP}
services:
  - vip: ${VIP}
    port: 80
    scheduler: mh
    flags: [mh-fallback, mh-port]
    forwarding: dr
    check: { type: http, path: /healthz, interval: 1s, timeout: 500ms, rise: 2, fall: 2 }
    realservers:
${REALSERVERS.map((a) => `      - address: ${a}`).join('\n')}
`;
}

/**
 * A config volume as an operator makes one (image/README.md): a small FAT filesystem labelled
 * VIPDCFG holding vipd.yaml and, optionally, rootpw.hash for console login.
 */
export async function makeConfigVolume(path: string, files: Record<string, string>): Promise<string> {
  await run('mkfs.vfat', ['-C', '-n', 'VIPDCFG', path, '4096'], { timeoutMs: 10_000 });
  for (const [name, content] of Object.entries(files)) {
    const local = `${path}.${name}`;
    writeFileSync(local, content);
    await run('mcopy', ['-i', path, local, `::/${name}`], { timeoutMs: 10_000 });
  }
  return path;
}

export async function waitUntil(what: string, fn: () => Promise<boolean>, timeoutMs: number, everyMs = 200): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
