/**
 * Parsers for what the kernel reports (pure):
 * - `ipvsadm -Ln --exact [--nosort] [--thresholds | --stats]`: services with every attribute,
 *   destinations in the kernel's list order when --nosort is given. (`ipvsadm -Sn` would be
 *   shorter but drops thresholds and cannot be unsorted, so vipd does not read it.)
 * - `/proc/net/ip_vs`: hex addresses, kernel order, connection counts; the cheapest full read.
 * Anything unexpected throws a ParseError naming the line, rather than guessing.
 */
import { canonicalAddress } from '../util/ip.js';
import {
  addressKey,
  destId,
  flagBit,
  fullMask,
  serviceId,
  type Forwarding,
  type Persistence,
  type Protocol,
  type ServiceKey,
  type ServiceSpec,
} from './model.js';

export class ParseError extends Error {
  constructor(
    readonly line: number,
    readonly text: string,
    why: string,
  ) {
    super(`line ${line}: ${why}: ${JSON.stringify(text.slice(0, 200))}`);
    this.name = 'ParseError';
  }
}

export interface Stats {
  conns: number;
  inPkts: number;
  outPkts: number;
  inBytes: number;
  outBytes: number;
}

export interface ConnCounts {
  active: number;
  inactive: number;
}

/** `weights`: plain -Ln; `thresholds`: --thresholds; `stats`: --stats. */
export type ListMode = 'weights' | 'thresholds' | 'stats';

export interface ListedDest {
  id: string;
  address: string;
  port: number;
  /** weights mode */
  fwd?: Forwarding;
  weight?: number;
  /** thresholds mode */
  upper?: number;
  lower?: number;
  /** weights and thresholds modes */
  counts?: ConnCounts;
  /** stats mode */
  stats?: Stats;
}

export interface ListedService {
  /** In stats mode ipvsadm prints no attributes: scheduler is '' and flags 0 there. */
  spec: ServiceSpec;
  stats?: Stats;
  /** In the order listed: the kernel's (newest first) with --nosort. */
  dests: ListedDest[];
}

export interface Listing {
  mode: ListMode;
  services: ListedService[];
}

const FWD: Record<string, Forwarding> = {
  Route: 'dr',
  Tunnel: 'tunnel',
  Masq: 'nat',
  // Old kernels reported destinations on a local address as Local; they were added with -g.
  Local: 'dr',
};

const PROTOCOLS: Record<string, Protocol> = { TCP: 'tcp', UDP: 'udp', SCTP: 'sctp' };

/** `198.51.100.1:80` or `[2001:db8::1]:80`. */
function splitHostPort(s: string): { address: string; port: number } | undefined {
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(s) ?? /^(\d+\.\d+\.\d+\.\d+):(\d+)$/.exec(s);
  if (!m) return undefined;
  const address = (m[1] as string).includes(':') ? canonicalAddress(m[1] as string) : (m[1] as string);
  return { address, port: Number(m[2]) };
}

function int(s: string | undefined): number | undefined {
  return s !== undefined && /^\d+$/.test(s) ? Number(s) : undefined;
}

function statsOf(fields: readonly string[]): Stats | undefined {
  const n = fields.map(int);
  if (n.length !== 5 || n.some((x) => x === undefined)) return undefined;
  const [conns, inPkts, outPkts, inBytes, outBytes] = n as number[];
  return { conns, inPkts, outPkts, inBytes, outBytes } as Stats;
}

/** The service's attributes after the address: `wrr (flag-1) persistent 300 mask 255.255.255.0 ops`. */
function serviceAttrs(key: ServiceKey, tokens: readonly string[]): Omit<ServiceSpec, 'id' | 'key'> | string {
  const scheduler = tokens[0];
  if (!scheduler || !/^[a-z]+$/.test(scheduler)) return 'no scheduler';
  let flags = 0;
  let onePacket = false;
  let timeout: number | undefined;
  let netmask = fullMask(key.family);
  for (let i = 1; i < tokens.length; i++) {
    const t = tokens[i] as string;
    if (t.startsWith('(') && t.endsWith(')')) {
      for (const f of t.slice(1, -1).split(',')) {
        const bit = flagBit(f);
        if (bit === undefined) return `unknown scheduler flag ${f}`;
        flags |= bit;
      }
    } else if (t === 'persistent') {
      timeout = int(tokens[++i]);
      if (timeout === undefined) return 'bad persistence timeout';
    } else if (t === 'mask') {
      netmask = tokens[++i] ?? '';
    } else if (t === 'pe') {
      i++; // a persistence engine (sip): vipd does not configure one and leaves it alone
    } else if (t === 'ops') {
      onePacket = true;
    } else {
      return `unexpected ${t}`;
    }
  }
  const persistence: Persistence | undefined = timeout === undefined ? undefined : { timeout, netmask };
  return persistence ? { scheduler, flags, persistence, onePacket } : { scheduler, flags, onePacket };
}

/** Parses `ipvsadm -Ln --exact` output in any of its three column layouts. */
export function parseList(text: string): Listing {
  let mode: ListMode | undefined;
  const services: ListedService[] = [];
  let svc: ListedService | undefined;
  const lines = text.split('\n');
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n] as string;
    const fail = (why: string): never => {
      throw new ParseError(n + 1, line, why);
    };
    if (line.trim() === '' || line.startsWith('IP Virtual Server version')) continue;
    if (line.startsWith('Prot LocalAddress:Port')) {
      mode = line.includes('Uthreshold') ? 'thresholds' : line.includes('Conns') ? 'stats' : 'weights';
      continue;
    }
    if (/^\s+-> RemoteAddress:Port/.test(line)) continue;
    if (!mode) fail('no header line before the table');
    const dm = /^\s+->\s+(\S+)\s*(.*)$/.exec(line);
    if (dm) {
      if (!svc) return fail('destination before any service');
      const hp = splitHostPort(dm[1] as string) ?? fail('bad destination address');
      const f = (dm[2] as string).trim().split(/\s+/);
      const d: ListedDest = { id: destId(hp.address, hp.port), address: hp.address, port: hp.port };
      if (mode === 'stats') {
        d.stats = statsOf(f) ?? fail('expected 5 counters');
      } else {
        const [a, b, c, e] = [f[0], int(f[1]), int(f[2]), int(f[3])];
        if (f.length !== 4 || b === undefined || c === undefined || e === undefined) fail('expected 4 columns');
        if (mode === 'weights') {
          d.fwd = FWD[a as string] ?? fail(`unknown forwarding ${a}`);
          d.weight = b;
        } else {
          d.upper = int(a) ?? fail('bad upper threshold');
          d.lower = b;
        }
        d.counts = { active: c as number, inactive: e as number };
      }
      svc.dests.push(d);
      continue;
    }
    const sm = /^(TCP|UDP|SCTP|FWM)\s+(\S+)\s*(.*)$/.exec(line) ?? fail('not a service or destination line');
    let rest = (sm[3] as string).trim().split(/\s+/).filter(Boolean);
    let key: ServiceKey;
    if (sm[1] === 'FWM') {
      const mark = int(sm[2]) ?? fail('bad firewall mark');
      const v6 = rest[0] === 'IPv6';
      if (v6) rest = rest.slice(1);
      key = { kind: 'fwmark', family: v6 ? 6 : 4, fwmark: mark };
    } else {
      const hp = splitHostPort(sm[2] as string) ?? fail('bad service address');
      key = addressKey(PROTOCOLS[sm[1] as string] as Protocol, hp.address, hp.port);
    }
    const id = serviceId(key);
    if (mode === 'stats') {
      const stats = statsOf(rest) ?? fail('expected 5 counters');
      svc = { spec: { id, key, scheduler: '', flags: 0, onePacket: false }, stats, dests: [] };
    } else {
      const attrs = serviceAttrs(key, rest);
      if (typeof attrs === 'string') fail(attrs);
      svc = { spec: { id, key, ...(attrs as Omit<ServiceSpec, 'id' | 'key'>) }, dests: [] };
    }
    services.push(svc);
  }
  return { mode: mode ?? 'weights', services };
}

function hexAddress(s: string): string | undefined {
  if (/^[0-9A-Fa-f]{8}$/.test(s)) {
    const n = parseInt(s, 16);
    return [24, 16, 8, 0].map((sh) => (n >>> sh) & 0xff).join('.');
  }
  const m = /^\[([0-9a-fA-F:]+)\]$/.exec(s);
  return m ? canonicalAddress(m[1] as string) : undefined;
}

/** `C6336401:0050` / `[2001:0db8:...]:0050` → address and port. */
function hexHostPort(s: string): { address: string; port: number } | undefined {
  const i = s.lastIndexOf(':');
  const address = hexAddress(s.slice(0, i));
  const port = /^[0-9A-Fa-f]{4}$/.test(s.slice(i + 1)) ? parseInt(s.slice(i + 1), 16) : NaN;
  return address !== undefined && !Number.isNaN(port) ? { address, port } : undefined;
}

/**
 * Connection counts from `/proc/net/ip_vs`: service id → destination id → counts. The file does
 * not say a firewall-mark service's family; its destinations' addresses do (a mark without
 * destinations has nothing to count).
 */
export function parseProcCounts(text: string): Map<string, Map<string, ConnCounts>> {
  const out = new Map<string, Map<string, ConnCounts>>();
  let current: { id?: string; mark?: number; dests: Map<string, ConnCounts> } | undefined;
  const lines = text.split('\n');
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n] as string;
    const fail = (why: string): never => {
      throw new ParseError(n + 1, line, why);
    };
    if (line.trim() === '' || line.startsWith('IP Virtual Server') || line.startsWith('Prot ') || /^\s+-> RemoteAddress/.test(line)) continue;
    const dm = /^\s+->\s+(\S+)\s+\S+\s+\d+\s+(\d+)\s+(\d+)/.exec(line);
    if (dm) {
      if (!current) return fail('destination before any service');
      const hp = hexHostPort(dm[1] as string) ?? fail('bad destination address');
      if (current.id === undefined && current.mark !== undefined) {
        current.id = serviceId({ kind: 'fwmark', fwmark: current.mark, family: hp.address.includes(':') ? 6 : 4 });
        out.set(current.id, current.dests);
      }
      current.dests.set(destId(hp.address, hp.port), { active: Number(dm[2]), inactive: Number(dm[3]) });
      continue;
    }
    const sm = /^(TCP|UDP|SCTP|FWM)\s+(\S+)/.exec(line) ?? fail('not a service or destination line');
    const dests = new Map<string, ConnCounts>();
    if (sm[1] === 'FWM') {
      const mark = /^[0-9A-Fa-f]{8}$/.test(sm[2] as string) ? parseInt(sm[2] as string, 16) : fail('bad firewall mark');
      current = { mark, dests };
    } else {
      const hp = hexHostPort(sm[2] as string) ?? fail('bad service address');
      const id = serviceId(addressKey(PROTOCOLS[sm[1] as string] as Protocol, hp.address, hp.port));
      current = { id, dests };
      out.set(id, dests);
    }
  }
  return out;
}
