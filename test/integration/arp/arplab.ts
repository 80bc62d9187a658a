/**
 * The ARP lab: directors d1, d2 and a neighbour n on one bridge (in namespace sw), vipd's ARP
 * side running as child processes inside the director namespaces, and a capture of ARP and
 * neighbour discovery in n, parsed into events with wire timestamps.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab, type Daemon } from '../../lab/netns.js';
import type { DriverConfig } from './driver.js';

export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const VIP = '198.51.100.1';
export const VIP6 = '2001:db8:100::1';
export const VIP_RANGES = ['198.51.100.0/24', '2001:db8:100::/64'];

let built: string | undefined;

/**
 * Compiles the driver (and the sources it imports) with the project's TypeScript into a
 * temporary directory and returns its path. A `node_modules` link there lets the compiled files
 * find the project's packages. VIPD_ARP_DRIVER points at a driver built already (the benchmark).
 */
export function driverPath(): string {
  if (process.env.VIPD_ARP_DRIVER) return process.env.VIPD_ARP_DRIVER;
  if (built && existsSync(built)) return built;
  const out = mkdtempSync(join(tmpdir(), 'vipd-arp-build-'));
  process.once('exit', () => rmSync(out, { recursive: true, force: true }));
  compile(out, [join(REPO, 'test/integration/arp/driver.ts')]);
  built = join(out, 'test/integration/arp/driver.js');
  return built;
}

/** tsc with the project's compiler settings, for the given entry files, into `out`. */
export function compile(out: string, entries: string[]): void {
  mkdirSync(out, { recursive: true });
  if (!existsSync(join(out, 'node_modules'))) symlinkSync(join(REPO, 'node_modules'), join(out, 'node_modules'));
  const tsc = join(REPO, 'node_modules/typescript/bin/tsc');
  const flags = ['--outDir', out, '--rootDir', REPO, '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--types', 'node', '--skipLibCheck', '--strict'];
  execFileSync(process.execPath, [tsc, ...flags, ...entries], { stdio: 'pipe', timeout: 120_000 });
}

export interface WireEvent {
  /** Wire time, ms since the epoch. */
  t: number;
  /** Source MAC of the frame. */
  src: string;
  kind: 'garp' | 'reply' | 'request' | 'dad' | 'na';
  /** The IP the frame is about (ARP target / NA target). */
  ip: string;
  /** For replies: the MAC given for the IP. */
  mac?: string;
}

/** Parses `tcpdump -tt -n -e -l` lines for ARP and neighbour advertisements. */
export function parseWire(text: string): WireEvent[] {
  const out: WireEvent[] = [];
  for (const line of text.split('\n')) {
    const head = /^(\d+\.\d+) ([0-9a-f:]{17}) > /.exec(line);
    if (!head?.[1] || !head[2]) continue;
    const t = Number(head[1]) * 1000;
    const src = head[2];
    const req = /Request who-has (\S+) (?:\([^)]*\) )?tell (\S+?),/.exec(line);
    const rep = /Reply (\S+) is-at ([0-9a-f:]{17})/.exec(line);
    const na = /neighbor advertisement, tgt is (\S+?),/.exec(line);
    if (req?.[1] && req[2]) out.push({ t, src, ip: req[1], kind: req[1] === req[2] ? 'garp' : req[2] === '0.0.0.0' ? 'dad' : 'request' });
    else if (rep?.[1] && rep[2]) out.push({ t, src, ip: rep[1], kind: 'reply', mac: rep[2] });
    else if (na?.[1]) out.push({ t, src, ip: na[1], kind: 'na' });
  }
  return out;
}

export interface DriverEvent {
  event: string;
  t: number;
  [k: string]: unknown;
}

export function driverEvents(d: Daemon): DriverEvent[] {
  return d
    .output()
    .split('\n')
    .filter((l) => l.startsWith('EVT '))
    .map((l) => JSON.parse(l.slice(4)) as DriverEvent);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function until<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs: number, everyMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

export interface Director {
  ns: string;
  name: string;
  address: string;
  mac: string;
}

export class ArpLab {
  readonly directors: Director[] = [];
  n = '';
  sw = '';

  private constructor(readonly lab: Lab) {}

  /**
   * A bridge with `count` directors (192.0.2.11, .12, ...) and the neighbour n (192.0.2.100).
   * `ipv4: false` links them over IPv6 only, leaving every IPv4 documentation address for VIPs.
   */
  static async create(count: number, opts: { ipv4?: boolean } = {}): Promise<ArpLab> {
    const v4 = opts.ipv4 ?? true;
    const lab = await Lab.create();
    const a = new ArpLab(lab);
    try {
      a.sw = await lab.ns('sw');
      await lab.bridge(a.sw, 'br0');
      a.n = await lab.ns('n');
      await lab.veth({ ns: a.sw, dev: 'pn', master: 'br0' }, { ns: a.n, dev: 'eth0', cidrs: [...(v4 ? ['192.0.2.100/24'] : []), '2001:db8:0:1::100/64'] });
      // The neighbour creates entries from gratuitous ARP and unsolicited NA, as routers are often set to.
      await lab.exec(a.n, 'sysctl', ['-qw', 'net.ipv4.conf.eth0.arp_accept=1']);
      // The VIP ranges are on-link for the neighbour, as for a router on an ARP-mode VIP's segment.
      await lab.ip(a.n, ['route', 'add', '198.51.100.0/24', 'dev', 'eth0']);
      await lab.ip(a.n, ['-6', 'route', 'add', '2001:db8:100::/64', 'dev', 'eth0']);
      // Linux takes untracked NAs only as a router (forwarding on).
      await lab.exec(a.n, 'sysctl', ['-qw', 'net.ipv6.conf.all.forwarding=1']);
      await lab.exec(a.n, 'sysctl', ['-qw', 'net.ipv6.conf.eth0.accept_untracked_na=1']);
      for (let i = 1; i <= count; i++) {
        const ns = await lab.ns(`d${i}`);
        const address = `192.0.2.${10 + i}`;
        await lab.veth({ ns: a.sw, dev: `p${i}`, master: 'br0' }, { ns, dev: 'eth0', cidrs: [...(v4 ? [`${address}/24`] : []), `2001:db8:0:1::${10 + i}/64`] });
        a.directors.push({ ns, name: `d${i}`, address, mac: await a.mac(ns, 'eth0') });
      }
      return a;
    } catch (e) {
      await lab.cleanup();
      throw e;
    }
  }

  async mac(ns: string, dev: string): Promise<string> {
    const r = await this.lab.ip(ns, ['-j', 'link', 'show', 'dev', dev]);
    const doc = JSON.parse(r.stdout) as { address: string }[];
    return doc[0]?.address ?? '';
  }

  director(i: number): Director {
    const d = this.directors[i];
    if (!d) throw new Error(`no director ${i}`);
    return d;
  }

  /** Starts the ARP side in a director namespace and waits until it runs. */
  async start(d: Director, cfg: DriverConfig): Promise<Daemon> {
    const daemon = this.lab.spawn(d.ns, process.execPath, [driverPath(), JSON.stringify(cfg)]);
    await daemon.waitFor(/EVT \{"event":"(ready|fatal)"/, 20_000);
    if (/"event":"fatal"/.test(daemon.output())) throw new Error(`driver in ${d.name} failed: ${daemon.output().slice(-2000)}`);
    return daemon;
  }

  /** tcpdump in n; `events()` parses everything captured so far. */
  async capture(filter = 'arp or icmp6'): Promise<{ daemon: Daemon; events: () => WireEvent[] }> {
    const daemon = this.lab.spawn(this.n, 'tcpdump', ['-tt', '-n', '-e', '-l', '-i', 'eth0', ...filter.split(' ')]);
    await daemon.waitFor(/listening on/, 10_000);
    return { daemon, events: () => parseWire(daemon.output()) };
  }

  async addresses(ns: string, dev: string): Promise<string[]> {
    const r = await this.lab.ip(ns, ['-j', 'addr', 'show', 'dev', dev]);
    const doc = JSON.parse(r.stdout) as { addr_info: { local: string; prefixlen: number }[] }[];
    return (doc[0]?.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`);
  }

  async neighbour(ip: string): Promise<string | undefined> {
    const r = await this.lab.ip(this.n, ['-j', 'neigh', 'show', ip, 'dev', 'eth0']);
    const doc = JSON.parse(r.stdout || '[]') as { lladdr?: string }[];
    return doc[0]?.lladdr;
  }

  cleanup(): Promise<void> {
    return this.lab.cleanup();
  }
}

/** Path of the busybox arping from the Alpine minirootfs in shared/, unpacked once; undefined without it. */
export function alpineBusybox(dir: string): string[] | undefined {
  const candidates = [join(REPO, '../shared/alpine'), '/work/shared/alpine'];
  const tarDir = candidates.find((c) => existsSync(c));
  if (!tarDir) return undefined;
  const tar = execFileSync('sh', ['-c', `ls ${tarDir}/alpine-minirootfs-*-x86_64.tar.gz | head -n1`], { timeout: 5000 }).toString().trim();
  if (!tar) return undefined;
  execFileSync('tar', ['-xzf', tar, '-C', dir, './bin/busybox', './lib/ld-musl-x86_64.so.1'], { timeout: 30_000 });
  return [join(dir, 'lib/ld-musl-x86_64.so.1'), join(dir, 'bin/busybox'), 'arping'];
}
