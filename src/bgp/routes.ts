/**
 * Route planner (pure): VIPs the coordinator wants announced × BgpConfig → the /32 and /128
 * paths vipd wants in gobgpd, and the minimal change from what gobgpd has. Every prefix,
 * family and next hop is validated here, before anything is turned into an API message:
 * gobgpd itself accepts an IPv6 prefix under AFI_IP and sends a malformed NLRI that makes
 * the router reset the session, taking every VIP on it down.
 */
import { isIP, SocketAddress } from 'node:net';
import type { BgpConfig, PeerConfig, VipConfig } from '../config/schema.js';
import { canonicalAddress } from '../util/ip.js';
import { FAMILY_IPV4, FAMILY_IPV6, TYPE, type LargeCommunityMsg, type PathAttribute, type PathMsg } from './messages.js';

export type AddressFamily = 'ipv4' | 'ipv6';

/** What the coordinator asks for one VIP; VIPs not listed are withdrawn. */
export interface RouteIntent {
  vip: VipConfig;
  /** `softfail`: still announced, with the VIP's worse soft-fail attributes. */
  state: 'up' | 'softfail';
  /**
   * Up, but not to be announced yet (its address or IPVS is still being applied). Not sent to
   * gobgpd; after a restart it holds back End-of-RIB (see speaker.ts).
   */
  pending?: boolean;
}

/** One route as vipd wants it in gobgpd, in a normalised, comparable form. */
export interface PlannedRoute {
  /** Canonical prefix, `198.51.100.10/32` or `2001:db8:100::10/128`: the route's identity. */
  key: string;
  family: AddressFamily;
  prefix: string;
  prefixLen: 32 | 128;
  /** `0.0.0.0` / `::` mean "self": gobgpd puts the session's local address. */
  nextHop: string;
  state: 'up' | 'softfail';
  /** Sorted, without duplicates. */
  communities: number[];
  largeCommunities: LargeCommunityMsg[];
  med?: number;
  /** Extra copies of the local ASN in the AS path. */
  prepend: number;
  /** Attributes as one string, so that a changed route is found with one comparison. */
  sig: string;
}

export interface RejectedRoute {
  address: string;
  reason: string;
}

export interface RoutePlan {
  routes: Map<string, PlannedRoute>;
  rejected: RejectedRoute[];
}

export interface RouteDiff {
  announce: PlannedRoute[];
  /** Same prefix, other attributes: re-added, which replaces the path in place (no withdrawal). */
  update: PlannedRoute[];
  withdraw: PlannedRoute[];
}

const U32 = 4294967295;
const isU32 = (n: number): boolean => Number.isInteger(n) && n >= 0 && n <= U32;

export function familyOf(address: string): AddressFamily {
  return isIP(address) === 6 ? 'ipv6' : 'ipv4';
}

/** Families a peer carries: configured, else its neighbour address's family. */
export function peerFamilies(p: PeerConfig): AddressFamily[] {
  return p.families ?? [familyOf(p.address)];
}

const label = (f: AddressFamily): string => (f === 'ipv6' ? 'IPv6' : 'IPv4');

function uniqueSorted(ns: readonly number[]): number[] {
  return ns.length < 2 ? [...ns] : [...new Set(ns)].sort((a, b) => a - b);
}

function uniqueLarge(ls: readonly { globalAdmin: number; localData1: number; localData2: number }[]): LargeCommunityMsg[] {
  if (ls.length === 0) return [];
  const seen = new Map<string, LargeCommunityMsg>();
  for (const l of ls) seen.set(`${l.globalAdmin}:${l.localData1}:${l.localData2}`, { global_admin: l.globalAdmin, local_data1: l.localData1, local_data2: l.localData2 });
  return [...seen.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, v]) => v);
}

/** What every VIP's check needs to know about the sessions, computed once per plan. */
interface Sessions {
  any: boolean;
  carried: Set<AddressFamily>;
  /** A peer carrying this family over a session of the other family, if any. */
  cross: Partial<Record<AddressFamily, PeerConfig>>;
}

function sessions(cfg: BgpConfig): Sessions {
  const s: Sessions = { any: cfg.peers.length > 0, carried: new Set(), cross: {} };
  for (const p of cfg.peers) {
    for (const f of peerFamilies(p)) {
      s.carried.add(f);
      if (familyOf(p.address) !== f) s.cross[f] ??= p;
    }
  }
  return s;
}

/**
 * Problems of one VIP's route against the BGP config, or undefined. Cross-family sessions
 * need an explicit next hop: for an IPv6 VIP over an IPv4 session gobgpd would use the
 * session's IPv4 address as next hop, which the router drops.
 */
function problem(vip: VipConfig, family: AddressFamily, nextHop: string | undefined, ses: Sessions): string | undefined {
  if (nextHop !== undefined && familyOf(nextHop) !== family) return `next hop ${nextHop} is not ${label(family)}`;
  if (ses.any && !ses.carried.has(family)) return `${label(family)} VIP but no BGP peer carries ${family}; add '${family}' to a peer's families`;
  const cross = ses.cross[family];
  if (nextHop === undefined && cross) {
    return `${label(family)} VIP sent over the ${label(familyOf(cross.address))} session to ${cross.address} needs an ${label(family)} next hop: set bgp.${family === 'ipv6' ? 'nextHop6' : 'nextHop'} or the VIP's nextHop`;
  }
  const attrs = [vip, ...(vip.softFail ? [vip.softFail] : [])];
  for (const a of attrs) {
    if (!a.communities.every(isU32)) return 'a community is not a 32-bit value';
    if (!a.largeCommunities.every((l) => isU32(l.globalAdmin) && isU32(l.localData1) && isU32(l.localData2))) return 'a large community part is not a 32-bit value';
    if (a.med !== undefined && !isU32(a.med)) return `MED ${a.med} is not a 32-bit value`;
    if (!(Number.isInteger(a.prepend) && a.prepend >= 0 && a.prepend <= 16)) return `prepend ${a.prepend} is not 0..16`;
  }
  return undefined;
}

/** One VIP's planned route, or why it is refused. */
type Planned = PlannedRoute | { refused: string };

/**
 * Plans of VIPs already seen, per VipConfig object and state. Valid for one BgpConfig only:
 * its owner starts a new memo when the config changes. Lets a 10,000-VIP desired state with
 * one change be planned in a few milliseconds (VipConfig objects are never mutated).
 */
export type RouteMemo = WeakMap<VipConfig, Partial<Record<RouteIntent['state'], Planned>>>;

/** canonicalAddress, through the native parser for plain IPv6 (cold plans of 10,000 VIPs are dominated by it). */
function canonical(address: string, family: AddressFamily): string {
  return family === 'ipv6' && !address.includes('.') ? new SocketAddress({ address, family }).address : canonicalAddress(address);
}

/** The key of the route a VIP address is announced as (see PlannedRoute.key); undefined for no IP address. */
export function routeKey(address: string): string | undefined {
  const v = isIP(address);
  if (v === 0 || address.includes('%')) return undefined;
  return v === 6 ? `${canonical(address, 'ipv6')}/128` : `${canonical(address, 'ipv4')}/32`;
}

function planOne(vip: VipConfig, state: RouteIntent['state'], cfg: BgpConfig, ses: Sessions): Planned {
  const v = isIP(vip.address);
  if (v === 0 || vip.address.includes('%')) return { refused: 'not an IP address (without zone)' };
  const family: AddressFamily = v === 6 ? 'ipv6' : 'ipv4';
  const configuredNextHop = vip.nextHop ?? (family === 'ipv6' ? cfg.nextHop6 : cfg.nextHop);
  const why = problem(vip, family, configuredNextHop, ses);
  if (why) return { refused: why };
  const prefix = canonical(vip.address, family);
  const prefixLen = family === 'ipv6' ? 128 : 32;
  const soft = state === 'softfail' && vip.softFail ? vip.softFail : undefined;
  const nextHop = configuredNextHop !== undefined ? canonicalAddress(configuredNextHop) : family === 'ipv6' ? '::' : '0.0.0.0';
  const communities = soft ? uniqueSorted([...vip.communities, ...soft.communities]) : uniqueSorted(vip.communities);
  const largeCommunities = uniqueLarge(soft ? [...vip.largeCommunities, ...soft.largeCommunities] : vip.largeCommunities);
  const med = soft?.med ?? vip.med;
  const prepend = vip.prepend + (soft?.prepend ?? 0);
  const large = largeCommunities.map((l) => `${l.global_admin}:${l.local_data1}:${l.local_data2}`).join(',');
  const route: PlannedRoute = {
    key: `${prefix}/${prefixLen}`,
    family,
    prefix,
    prefixLen,
    nextHop,
    state: soft ? 'softfail' : 'up',
    communities,
    largeCommunities,
    prepend,
    sig: `${nextHop}|${communities.join(',')}|${large}|${med ?? ''}|${prepend}`,
  };
  if (med !== undefined) route.med = med;
  return route;
}

/**
 * Desired routes from intents. A soft-failing VIP keeps its own attributes plus the soft-fail
 * ones: extra communities and prepends add up, the soft-fail MED (when set) replaces the MED.
 * `softfail` for a VIP without a softFail section announces it as `up`.
 */
export function planRoutes(intents: readonly RouteIntent[], cfg: BgpConfig, memo?: RouteMemo): RoutePlan {
  const chunks = planChunks(intents, cfg, memo, intents.length || 1);
  let step = chunks.next();
  while (!step.done) step = chunks.next();
  return step.value;
}

/**
 * planRoutes in steps: yields the routes planned from each `size` intents, returns the whole
 * plan. Lets the speaker send one chunk to gobgpd while it plans the next.
 */
export function* planChunks(intents: readonly RouteIntent[], cfg: BgpConfig, memo: RouteMemo | undefined, size: number): Generator<PlannedRoute[], RoutePlan> {
  const routes = new Map<string, PlannedRoute>();
  const rejected: RejectedRoute[] = [];
  const ses = sessions(cfg);
  for (let i = 0; i < intents.length; i += size) {
    const chunk: PlannedRoute[] = [];
    for (let j = i; j < Math.min(i + size, intents.length); j++) {
      const { vip, state } = intents[j] as RouteIntent;
      let slot = memo?.get(vip);
      let p = slot?.[state];
      if (!p) {
        p = planOne(vip, state, cfg, ses);
        if (memo) {
          slot ??= {};
          slot[state] = p;
          memo.set(vip, slot);
        }
      }
      if ('refused' in p) rejected.push({ address: vip.address, reason: p.refused });
      else if (routes.has(p.key)) rejected.push({ address: vip.address, reason: `${p.key} is listed twice` });
      else {
        routes.set(p.key, p);
        chunk.push(p);
      }
    }
    yield chunk;
  }
  return { routes, rejected };
}

/** Whether gobgpd, holding `have`, must be sent `want` (new prefix or other attributes). */
export function needsSending(have: PlannedRoute | undefined, want: PlannedRoute): boolean {
  return have?.sig !== want.sig;
}

/** The minimal change from `current` (what gobgpd has) to `desired`. */
export function diffRoutes(current: ReadonlyMap<string, PlannedRoute>, desired: ReadonlyMap<string, PlannedRoute>): RouteDiff {
  const d: RouteDiff = { announce: [], update: [], withdraw: [] };
  for (const [key, want] of desired) {
    const have = current.get(key);
    if (!have) d.announce.push(want);
    else if (needsSending(have, want)) d.update.push(want);
  }
  for (const [key, have] of current) if (!desired.has(key)) d.withdraw.push(have);
  return d;
}

/**
 * The API path of a planned route; `withdraw` marks it for removal by NLRI. Re-checks the
 * family/prefix pairing itself, so that no code path can hand gobgpd a mismatched NLRI.
 */
export function toPathMsg(r: PlannedRoute, asn: number, withdraw = false): PathMsg {
  const v6 = r.family === 'ipv6';
  // Planned addresses are valid IPs already; only their pairing with the family is checked here.
  if (r.prefix.includes(':') !== v6 || r.prefixLen !== (v6 ? 128 : 32) || r.nextHop.includes(':') !== v6) {
    throw new Error(`refusing to send ${r.prefix}/${r.prefixLen} via ${r.nextHop} as ${r.family}: family, prefix length and next hop disagree`);
  }
  const pattrs: PathAttribute[] = [
    { '@type': TYPE.origin, origin: 0 },
    { '@type': TYPE.nextHop, next_hop: r.nextHop },
  ];
  if (r.prepend > 0) pattrs.push({ '@type': TYPE.asPath, segments: [{ type: 'AS_SEQUENCE', numbers: Array<number>(r.prepend).fill(asn) }] });
  if (r.med !== undefined) pattrs.push({ '@type': TYPE.med, med: r.med });
  if (r.communities.length) pattrs.push({ '@type': TYPE.communities, communities: r.communities });
  if (r.largeCommunities.length) pattrs.push({ '@type': TYPE.largeCommunities, communities: r.largeCommunities });
  return {
    family: v6 ? FAMILY_IPV6 : FAMILY_IPV4,
    nlri: { '@type': TYPE.prefix, prefix: r.prefix, prefix_len: r.prefixLen },
    pattrs,
    ...(withdraw ? { is_withdraw: true } : {}),
  };
}
