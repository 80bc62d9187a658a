/**
 * The IPVS table as vipd models it (pure): virtual services and destinations, their canonical
 * keys, and the canonical destination order. The desired table (from config), the kernel's
 * table (parsed from ipvsadm) and the planner that diffs them all speak these types.
 */
import { addressToBigInt, canonicalAddress } from '../util/ip.js';

export type Protocol = 'tcp' | 'udp' | 'sctp';
export type Family = 4 | 6;
/** dr: direct routing (-g); tunnel: IPIP (-i); nat: masquerade (-m). */
export type Forwarding = 'dr' | 'tunnel' | 'nat';

export interface AddressKey {
  readonly kind: 'addr';
  readonly protocol: Protocol;
  readonly family: Family;
  /** Canonical text (RFC 5952 for IPv6). */
  readonly address: string;
  readonly port: number;
}

export interface FwmarkKey {
  readonly kind: 'fwmark';
  readonly family: Family;
  readonly fwmark: number;
}

/** What the kernel identifies a virtual service by. */
export type ServiceKey = AddressKey | FwmarkKey;

export interface Persistence {
  /** Seconds, as the kernel keeps it. */
  readonly timeout: number;
  /** IPv4: a dotted mask (`255.255.255.255` = per client); IPv6: a prefix length (`128`). */
  readonly netmask: string;
}

/** A virtual service's own attributes (everything `-A`/`-E` sets). */
export interface ServiceSpec {
  /** Canonical key text, e.g. `tcp 198.51.100.10:80`, `udp [2001:db8:100::1]:53`, `fwm 7`, `fwm 7 ipv6`. */
  readonly id: string;
  readonly key: ServiceKey;
  readonly scheduler: string;
  /** Scheduler flag bits as the kernel stores them: 1 = flag-1, 2 = flag-2, 4 = flag-3. */
  readonly flags: number;
  readonly persistence?: Persistence;
  readonly onePacket: boolean;
}

/** A destination (realserver) of a virtual service: everything `-a`/`-e` sets. */
export interface Dest {
  /** `203.0.113.10:80` or `[2001:db8:203::10]:80`: unique within a service. */
  readonly id: string;
  readonly address: string;
  readonly port: number;
  readonly fwd: Forwarding;
  readonly weight: number;
  /** Connection thresholds; 0 = none. */
  readonly upper: number;
  readonly lower: number;
  /**
   * mh only, for a destination wanted at weight 0: the weight it serves at. The kernel gives a
   * destination its share of mh's lookup table from its last non-zero weight (`last_weight`),
   * so one that went to 0 on a long-running director keeps its slots, while one added at 0 on
   * a fresh director would get none. Adding it at this weight and then setting 0 makes both
   * directors build the same table.
   */
  readonly nominal?: number;
}

/** A desired virtual service. `dests` iterates in canonical order (see compareDests). */
export interface Service extends ServiceSpec {
  readonly dests: ReadonlyMap<string, Dest>;
}

/**
 * The table vipd wants, by service id. Treat it and its services as immutable: to change a
 * service, put a new Service object in a new table (desired.ts `withServices`). The planner
 * skips services whose object it has already converged, which is what keeps one change in a
 * 200,000-destination table as cheap as in a small one.
 */
export type DesiredTable = ReadonlyMap<string, Service>;

/**
 * One service as it is in the kernel. `dests` iterates in the order the destinations were
 * added, which is the reverse of the kernel's own list: the kernel inserts each new
 * destination at the head of the service's list (`list_add_rcu` in `__ip_vs_update_dest`), and
 * `/proc/net/ip_vs` and `ipvsadm -Ln --nosort` print that list front to back. Keeping the add
 * order lets a JavaScript Map model it exactly: set() appends, delete() keeps the others in place.
 */
export interface KernelService {
  spec: ServiceSpec;
  /**
   * Once the service has converged this is the desired Service's own map (same destinations,
   * same order): a 200,000-destination table is then held once, not twice. Never mutated in
   * place while shared; plan.ts applyOps copies it first.
   */
  dests: ReadonlyMap<string, Dest>;
  /** The desired Service object this entry was last made equal to, if still equal. */
  converged?: Service;
}

export type KernelTable = Map<string, KernelService>;

/**
 * Schedulers whose choice depends on the order of the kernel's destination list: sh and dh
 * deal their buckets out by walking the list; mh (Maglev) fills its lookup table in rounds
 * where the earlier destination wins a contested slot (measured in the lab VM: 31 of 2,000
 * flows over 20 realservers change destination when the list is reversed); fo and ovf pick
 * the first of equal candidates. For these, every director must hold the list in the same
 * order to map a flow to the same realserver behind ECMP.
 */
export const ORDER_SENSITIVE: ReadonlySet<string> = new Set(['mh', 'sh', 'dh', 'fo', 'ovf']);

/** flag-1: mh-fallback / sh-fallback. */
export const FLAG_1 = 1;

const FLAG_BITS: Record<string, number> = {
  'flag-1': 1,
  'flag-2': 2,
  'flag-3': 4,
  'sh-fallback': 1,
  'sh-port': 2,
  'mh-fallback': 1,
  'mh-port': 2,
};

/** Flag names (config's or ipvsadm's) to kernel bits; undefined for an unknown name. */
export function flagBit(name: string): number | undefined {
  return FLAG_BITS[name];
}

/** Kernel bits to the names ipvsadm uses for this scheduler. */
export function flagNames(bits: number, scheduler: string): string[] {
  const names =
    scheduler === 'mh' ? ['mh-fallback', 'mh-port', 'flag-3'] : scheduler === 'sh' ? ['sh-fallback', 'sh-port', 'flag-3'] : ['flag-1', 'flag-2', 'flag-3'];
  return names.filter((_, i) => (bits & (1 << i)) !== 0);
}

/** `198.51.100.1:80`, `[2001:db8::1]:80`. */
export function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

export function serviceId(key: ServiceKey): string {
  if (key.kind === 'fwmark') return key.family === 6 ? `fwm ${key.fwmark} ipv6` : `fwm ${key.fwmark}`;
  return `${key.protocol} ${hostPort(key.address, key.port)}`;
}

export function destId(address: string, port: number): string {
  return hostPort(address, port);
}

export function addressKey(protocol: Protocol, address: string, port: number): AddressKey {
  const a = canonicalAddress(address);
  return { kind: 'addr', protocol, family: a.includes(':') ? 6 : 4, address: a, port };
}

/** Hex form of addresses already seen: the same realservers stand behind many services. */
const addressHex = new Map<string, string>();

/**
 * A string that sorts like (address as a number, port): fixed-width hex. Computed once per
 * destination, so sorting 200,000 of them costs no BigInt arithmetic per comparison.
 */
export function orderKey(address: string, port: number): string {
  let hex = addressHex.get(address);
  if (hex === undefined) {
    if (address.includes(':')) {
      hex = addressToBigInt(address).toString(16).padStart(32, '0');
    } else {
      hex = '';
      for (const octet of address.split('.')) hex += Number(octet).toString(16).padStart(2, '0');
    }
    // Bounded: a config has far fewer realserver addresses; this only guards against misuse.
    if (addressHex.size >= 100_000) addressHex.clear();
    addressHex.set(address, hex);
  }
  return hex + port.toString(16).padStart(4, '0');
}

/**
 * Canonical destination order: by address, then port. Every director sorts the same way, so
 * given the same config they add destinations in the same order and hold identical lists.
 */
export function sortDests(dests: Dest[]): Dest[] {
  const keyed = dests.map((d) => ({ d, k: orderKey(d.address, d.port) }));
  keyed.sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0));
  return keyed.map((x) => x.d);
}

export function sameSpec(a: ServiceSpec, b: ServiceSpec): boolean {
  return (
    a.scheduler === b.scheduler &&
    a.flags === b.flags &&
    a.onePacket === b.onePacket &&
    a.persistence?.timeout === b.persistence?.timeout &&
    a.persistence?.netmask === b.persistence?.netmask
  );
}

export function sameDest(a: Dest, b: Dest): boolean {
  return a.fwd === b.fwd && a.weight === b.weight && a.upper === b.upper && a.lower === b.lower;
}

/** The default persistence granularity: one client address. */
export function fullMask(family: Family): string {
  return family === 6 ? '128' : '255.255.255.255';
}

/** Prefix length to a dotted IPv4 mask (24 → 255.255.255.0). */
export function prefixToMask(len: number): string {
  const n = len <= 0 ? 0 : len >= 32 ? 0xffffffff : (0xffffffff << (32 - len)) >>> 0;
  return [24, 16, 8, 0].map((s) => (n >>> s) & 0xff).join('.');
}

/** A dotted IPv4 mask to its prefix length (count of leading one bits). */
export function maskToPrefix(mask: string): number {
  const n = mask.split('.').reduce((acc, o) => ((acc << 8) | (Number(o) & 0xff)) >>> 0, 0);
  let len = 0;
  while (len < 32 && (n & (0x80000000 >>> len)) !== 0) len++;
  return len;
}
