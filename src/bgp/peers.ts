/**
 * Peer planner (pure): BgpConfig → gobgpd's global settings and AddPeer messages, the diff
 * between two configs' peer sets, and the checks that keep a bad BGP config away from
 * gobgpd. Durations are milliseconds in vipd's config and whole seconds in gobgpd's API.
 */
import { isIP } from 'node:net';
import type { BgpConfig, PeerConfig } from '../config/schema.js';
import { canonicalAddress } from '../util/ip.js';
import { FAMILY_IPV4, FAMILY_IPV6, type GlobalMsg, type PeerMsg } from './messages.js';
import { familyOf, peerFamilies } from './routes.js';

export interface PeerDiff {
  add: PeerConfig[];
  /** Changed peers: gobgpd gets them deleted and re-added (see speaker.ts for why not UpdatePeer). */
  update: PeerConfig[];
  /** Canonical neighbour addresses. */
  remove: string[];
}

export function peerKey(p: PeerConfig): string {
  return canonicalAddress(p.address);
}

const seconds = (ms: number): number => Math.max(1, Math.round(ms / 1000));

/**
 * How long a restarting gobgpd holds its routes back waiting for every peer's End-of-RIB.
 * vipd originates routes and imports none, so waiting buys nothing; it only matters when
 * one peer is down during a restart, and must stay well inside the routers' stale timers.
 */
function deferralSeconds(cfg: BgpConfig): number {
  return Math.max(1, Math.min(10, Math.floor(seconds(cfg.gracefulRestart.restartTime) / 2)));
}

export function globalMsg(cfg: BgpConfig): GlobalMsg {
  return { asn: cfg.asn, router_id: cfg.routerId, listen_port: cfg.listenPort, listen_addresses: cfg.listenAddresses ?? [] };
}

/**
 * The AddPeer message for one peer. `restarting` sets graceful restart's Restart State and
 * Forwarding bits after gobgpd was restarted, so the router keeps our routes (stale) until
 * our End-of-RIB instead of flushing them when the new session opens.
 */
export function toPeerMsg(p: PeerConfig, cfg: BgpConfig, opts: { restarting: boolean }): PeerMsg {
  const gr = cfg.gracefulRestart.enabled;
  return {
    conf: {
      neighbor_address: canonicalAddress(p.address),
      peer_asn: p.asn,
      local_asn: p.localAsn ?? cfg.asn,
      auth_password: p.password ?? '',
      description: p.description ?? '',
    },
    timers: { config: { connect_retry: seconds(p.connectRetry), hold_time: seconds(p.holdTime), keepalive_interval: seconds(p.keepalive) } },
    transport: { local_address: p.localAddress ? canonicalAddress(p.localAddress) : '', passive_mode: p.passive },
    ebgp_multihop: { enabled: p.multihop !== undefined, multihop_ttl: p.multihop ?? 0 },
    graceful_restart: {
      enabled: gr,
      restart_time: gr ? seconds(cfg.gracefulRestart.restartTime) : 0,
      deferral_time: gr ? deferralSeconds(cfg) : 0,
      local_restarting: gr && opts.restarting,
    },
    // Every entry names its family: an afi_safi without one crashes gobgpd.
    afi_safis: peerFamilies(p).map((f) => ({
      config: { family: f === 'ipv6' ? FAMILY_IPV6 : FAMILY_IPV4, enabled: true as const },
      mp_graceful_restart: { config: { enabled: gr } },
    })),
  };
}

/** Peers to add, change and remove to go from `before` to `after`; untouched peers are left out. */
export function diffPeers(before: BgpConfig | undefined, after: BgpConfig): PeerDiff {
  const sig = (p: PeerConfig, cfg: BgpConfig): string => JSON.stringify(toPeerMsg(p, cfg, { restarting: false }));
  const old = new Map((before?.peers ?? []).map((p) => [peerKey(p), sig(p, before as BgpConfig)]));
  const diff: PeerDiff = { add: [], update: [], remove: [] };
  const seen = new Set<string>();
  for (const p of after.peers) {
    const key = peerKey(p);
    seen.add(key);
    const was = old.get(key);
    if (was === undefined) diff.add.push(p);
    else if (was !== sig(p, after)) diff.update.push(p);
  }
  for (const key of old.keys()) if (!seen.has(key)) diff.remove.push(key);
  return diff;
}

/** Settings that only a new gobgpd instance (or a new BGP instance in it) can take. */
export function needsRestart(before: BgpConfig, after: BgpConfig): boolean {
  const key = (c: BgpConfig): string => JSON.stringify([globalMsg(c), c.gobgpd.binary, c.gobgpd.socket ?? '']);
  return key(before) !== key(after);
}

const validAsn = (n: number): boolean => Number.isInteger(n) && n >= 1 && n <= 4294967294 && n !== 23456 && n !== 65535;
const ASN_RULE = 'ASN must be an integer 1..4294967294 (65535 and 23456 are reserved)';

/**
 * Everything wrong with a BGP config, as `path: message` lines (empty when fine). The config
 * schema checks most of this already; this is the last gate before gobgpd.
 */
export function validateBgpConfig(cfg: BgpConfig): string[] {
  const out: string[] = [];
  if (!validAsn(cfg.asn)) out.push(`bgp.asn: ${cfg.asn}: ${ASN_RULE}`);
  if (isIP(cfg.routerId) !== 4) out.push(`bgp.routerId: ${cfg.routerId} is not an IPv4 address`);
  if (!(Number.isInteger(cfg.listenPort) && cfg.listenPort >= -1 && cfg.listenPort <= 65535)) out.push(`bgp.listenPort: ${cfg.listenPort} is not -1..65535`);
  if (cfg.listenAddresses && cfg.listenPort === -1) out.push('bgp.listenAddresses: listen addresses without a listener (bgp.listenPort is -1)');
  for (const a of cfg.listenAddresses ?? []) if (isIP(a) === 0) out.push(`bgp.listenAddresses: ${a} is not an IP address`);
  if (cfg.nextHop !== undefined && isIP(cfg.nextHop) !== 4) out.push(`bgp.nextHop: ${cfg.nextHop} is not an IPv4 address`);
  if (cfg.nextHop6 !== undefined && isIP(cfg.nextHop6) !== 6) out.push(`bgp.nextHop6: ${cfg.nextHop6} is not an IPv6 address`);
  if (seconds(cfg.gracefulRestart.restartTime) > 4095) out.push('bgp.gracefulRestart.restartTime: at most 4095 s');
  const seen = new Set<string>();
  cfg.peers.forEach((p, i) => {
    const at = `bgp.peers[${i}]`;
    if (isIP(p.address) === 0) {
      out.push(`${at}.address: ${p.address} is not an IP address`);
      return;
    }
    const key = peerKey(p);
    if (seen.has(key)) out.push(`${at}.address: peer ${p.address} is declared twice`);
    seen.add(key);
    if (!validAsn(p.asn)) out.push(`${at}.asn: ${p.asn}: ${ASN_RULE}`);
    if (p.localAsn !== undefined && !validAsn(p.localAsn)) out.push(`${at}.localAsn: ${p.localAsn}: ${ASN_RULE}`);
    if (p.localAddress !== undefined && (isIP(p.localAddress) === 0 || familyOf(p.localAddress) !== familyOf(p.address))) {
      out.push(`${at}.localAddress: ${p.localAddress} is not an address of the neighbour's family`);
    }
    const hold = seconds(p.holdTime);
    if (hold < 3 || hold > 65535) out.push(`${at}.holdTime: must be 3..65535 s`);
    if (seconds(p.keepalive) >= hold) out.push(`${at}.keepalive: must be shorter than the hold time`);
    if (p.password !== undefined && (p.password.length === 0 || p.password.length > 80)) out.push(`${at}.password: must be 1..80 characters`);
    if (p.multihop !== undefined && !(Number.isInteger(p.multihop) && p.multihop >= 1 && p.multihop <= 255)) out.push(`${at}.multihop: must be 1..255`);
    if (p.families !== undefined && (p.families.length === 0 || new Set(p.families).size !== p.families.length)) {
      out.push(`${at}.families: list each of ipv4, ipv6 at most once, and at least one`);
    }
    if (p.passive && cfg.listenPort === -1) out.push(`${at}.passive: a passive peer must connect to us, but bgp.listenPort is -1 (no listener)`);
  });
  return out;
}
