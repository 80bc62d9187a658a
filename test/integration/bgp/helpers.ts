/**
 * BGP lab for integration tests and the benchmark: router namespace R running BIRD 2
 * (192.0.2.1, 2001:db8:0:1::1, AS 64512), director namespace D (192.0.2.10,
 * 2001:db8:0:1::10, AS 64513) where vipd's gobgpd runs; helpers to read BIRD's table.
 */
import { createConnection, type Socket } from 'node:net';
import { bgpSchema, vipSchema, type BgpConfig, type VipConfig } from '../../../src/config/schema.js';
import type { Logger } from '../../../src/log/logger.js';
import { startBird, type Bird } from '../../lab/bird.js';
import { Lab } from '../../lab/netns.js';

export const ROUTER_ASN = 64512;
export const DIRECTOR_ASN = 64513;

export interface BgpLab {
  lab: Lab;
  router: string;
  director: string;
  bird: Bird;
  birdConfig: string;
  /** Restarts BIRD with the same config (peer down/up). */
  restartBird(): Promise<void>;
  /** BIRD's routes, by prefix. */
  routes(): Promise<Map<string, BirdRoute[]>>;
  /** `show protocols` rows by name: state and since-time. */
  protocols(): Promise<Map<string, { state: string; since: string; info: string }>>;
}

export interface BirdSession {
  name: string;
  neighbor: string;
  families: ('ipv4' | 'ipv6')[];
  password?: string;
  /** BIRD only listens: vipd's gobgpd must connect out. */
  passive?: boolean;
}

export const V4_SESSION: BirdSession = { name: 'd4', neighbor: '192.0.2.10', families: ['ipv4'] };
export const V6_SESSION: BirdSession = { name: 'd6', neighbor: '2001:db8:0:1::10', families: ['ipv6'] };

export function birdConfig(sessions: readonly BirdSession[]): string {
  const protos = sessions.map((s) => {
    const local = s.neighbor.includes(':') ? '2001:db8:0:1::1' : '192.0.2.1';
    const channels = s.families.map((f) => `${f} { import all; export none; };`).join(' ');
    return `protocol bgp ${s.name} {
  local ${local} as ${ROUTER_ASN};
  neighbor ${s.neighbor} as ${DIRECTOR_ASN};
  graceful restart on;
  hold time 9;
  connect delay time 1;
  connect retry time 1;
  error wait time 1, 5;
  ${s.passive ? 'passive on;' : ''}
  ${s.password ? `password "${s.password}";` : ''}
  debug { states, events, routes };
  ${channels}
}`;
  });
  return `router id 192.0.2.1;
log stderr all;
protocol device {}
${protos.join('\n')}
`;
}

export async function createBgpLab(sessions: readonly BirdSession[]): Promise<BgpLab> {
  const lab = await Lab.create();
  try {
    const router = await lab.ns('r');
    const director = await lab.ns('d');
    await lab.veth(
      { ns: router, dev: 'eth0', cidrs: ['192.0.2.1/24', '2001:db8:0:1::1/64'] },
      { ns: director, dev: 'eth0', cidrs: ['192.0.2.10/24', '2001:db8:0:1::10/64'] },
    );
    const conf = birdConfig(sessions);
    const bl: BgpLab = {
      lab,
      router,
      director,
      bird: await startBird(lab, router, 'r1', conf),
      birdConfig: conf,
      restartBird: async () => {
        await bl.bird.stop();
        bl.bird = await startBird(lab, router, 'r1', conf);
      },
      routes: async () => parseBirdRoutes(await birdc(bl, 'show route all')),
      protocols: async () => {
        const out = new Map<string, { state: string; since: string; info: string }>();
        for (const line of (await birdc(bl, 'show protocols')).split('\n')) {
          const m = /^(\S+)\s+BGP\s+\S+\s+(\S+)\s+(\S+)\s*(.*)$/.exec(line);
          if (m) out.set(m[1] as string, { state: m[2] as string, since: m[3] as string, info: (m[4] ?? '').trim() });
        }
        return out;
      },
    };
    return bl;
  } catch (e) {
    await lab.cleanup();
    throw e;
  }
}

/** birdc output, whatever its exit status ("Network not found" exits non-zero). */
export async function birdc(bl: BgpLab, command: string): Promise<string> {
  const r = await bl.lab.exec(bl.router, 'birdc', ['-s', bl.bird.socket, ...command.split(' ')], 10_000);
  return r.stdout;
}

export interface BirdRoute {
  proto: string;
  nextHop?: string;
  med?: number;
  asPath: number[];
  communities: string[];
  largeCommunities: string[];
}

/** Parses `birdc show route all`. */
export function parseBirdRoutes(text: string): Map<string, BirdRoute[]> {
  const out = new Map<string, BirdRoute[]>();
  let prefix = '';
  let cur: BirdRoute | undefined;
  for (const line of text.split('\n')) {
    const start = /^(\S+)?\s+unicast \[(\S+)/.exec(line);
    if (start) {
      if (start[1]) prefix = start[1];
      cur = { proto: start[2] as string, asPath: [], communities: [], largeCommunities: [] };
      out.set(prefix, [...(out.get(prefix) ?? []), cur]);
      continue;
    }
    const attr = /^\s+BGP\.(\w+): (.*)$/.exec(line);
    if (!attr || !cur) continue;
    const [, key, value = ''] = attr;
    if (key === 'next_hop') cur.nextHop = value.split(' ')[0];
    else if (key === 'med') cur.med = Number(value);
    else if (key === 'as_path') cur.asPath = value.split(' ').filter(Boolean).map(Number);
    else if (key === 'community') cur.communities = value.match(/\([^)]*\)/g) ?? [];
    else if (key === 'large_community') cur.largeCommunities = value.match(/\([^)]*\)/g) ?? [];
  }
  return out;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls until `fn` returns a value other than undefined/false; throws naming `what` on timeout. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 20_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** A BgpConfig through the real schema (defaults, durations in ms), fast timers for tests. */
export function bgpConfig(input: Record<string, unknown> = {}): BgpConfig {
  return bgpSchema.parse({
    asn: DIRECTOR_ASN,
    routerId: '192.0.2.10',
    // Listening lets BIRD connect within a second; gobgpd's own connect loop waits 5-10 s.
    listenPort: 179,
    gracefulRestart: { enabled: true, restartTime: '60s' },
    withdrawDelay: '300ms',
    peers: [{ address: '192.0.2.1', asn: ROUTER_ASN, holdTime: '9s', keepalive: '3s', connectRetry: '5s' }],
    ...input,
  });
}

export function vip(address: string, extra: Record<string, unknown> = {}): VipConfig {
  return vipSchema.parse({ address, ...extra });
}

export interface LogEntry {
  level: string;
  component: string;
  msg: string;
  fields: Record<string, unknown>;
}

/** A Logger that records what it is given, for asserting on vipd's log. */
export function captureLogger(component = 'test', entries: LogEntry[] = []): { log: Logger; entries: LogEntry[] } {
  const at =
    (level: string) =>
    (msg: string, fields: Record<string, unknown> = {}): void => {
      entries.push({ level, component, msg, fields });
    };
  const log: Logger = {
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: at('debug'),
    child: (c) => captureLogger(c, entries).log,
  };
  return { log, entries };
}

/**
 * BIRD's control socket spoken directly: a query costs well under a millisecond, where
 * birdc through `ip netns exec` costs several (the benchmark polls with it).
 */
export class BirdControl {
  private buf = '';
  private waiter?: (reply: string) => void;
  private chain: Promise<unknown> = Promise.resolve();

  private constructor(private readonly sock: Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      this.buf += d;
      // A reply ends with a line whose 4-digit code is followed by a space.
      const end = /(^|\n)\d{4} [^\n]*\n$/.exec(this.buf);
      if (end && this.waiter) {
        const reply = this.buf;
        this.buf = '';
        const w = this.waiter;
        this.waiter = undefined;
        w(reply);
      }
    });
  }

  static async connect(path: string): Promise<BirdControl> {
    const sock = createConnection(path);
    const ctl = new BirdControl(sock);
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      ctl.waiter = () => resolve();
    });
    return ctl;
  }

  query(command: string): Promise<string> {
    const p = this.chain.then(
      () =>
        new Promise<string>((resolve) => {
          this.waiter = resolve;
          this.sock.write(`${command}\n`);
        }),
    );
    this.chain = p.catch(() => undefined);
    return p;
  }

  /** Routes in BIRD's table of one family. */
  async count(table: 'master4' | 'master6'): Promise<number> {
    const m = new RegExp(`(\\d+) of \\d+ routes for \\d+ networks in table ${table}`).exec(await this.query('show route count'));
    return Number(m?.[1] ?? 0);
  }

  async has(prefix: string): Promise<boolean> {
    return !(await this.query(`show route ${prefix}`)).includes('Network not found');
  }

  close(): void {
    this.sock.destroy();
  }
}
