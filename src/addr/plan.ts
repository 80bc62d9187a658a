/**
 * Which VIP addresses should exist on which interface, compared with what `ip -j addr` reports,
 * and which kernel settings a director needs for them (pure: no I/O, nothing spawned).
 *
 * vipd owns host addresses (/32, /128) inside its VIP ranges and nothing else: an address with a
 * shorter prefix is an interface address even when it lies inside a VIP range, and an address
 * outside every range is never added or removed.
 */
import { isIP } from 'node:net';
import type { VipConfig } from '../config/schema.js';
import { canonicalAddress, inPrefix } from '../util/ip.js';

/** A VIP as a host address on one interface. */
export interface HostAddress {
  address: string;
  device: string;
}

/** One address as the kernel reports it. */
export interface CurrentAddress {
  address: string;
  prefixLength: number;
  device: string;
  /** IPv6 duplicate address detection failed: the kernel keeps the address but never uses it. */
  dadFailed: boolean;
}

export interface AddressPlan {
  add: HostAddress[];
  remove: HostAddress[];
  /** Desired addresses outside every VIP range: never added. */
  refused: HostAddress[];
}

export function hostLength(address: string): 32 | 128 {
  return isIP(address) === 6 ? 128 : 32;
}

const key = (a: HostAddress): string => `${canonicalAddress(a.address)}%${a.device}`;

/**
 * Addresses to add and remove so that exactly `desired` exists among the host addresses inside
 * `vipRanges`. Removals come first in the plan: a VIP moving between interfaces is never on two.
 */
export function planAddresses(desired: readonly HostAddress[], current: readonly CurrentAddress[], vipRanges: readonly string[]): AddressPlan {
  const inRanges = (a: string): boolean => vipRanges.some((r) => inPrefix(a, r));
  const want = new Map<string, HostAddress>();
  const refused: HostAddress[] = [];
  for (const d of desired) {
    const norm = { address: canonicalAddress(d.address), device: d.device };
    if (inRanges(norm.address)) want.set(key(norm), norm);
    else refused.push(norm);
  }
  const have = new Set<string>();
  const remove: HostAddress[] = [];
  for (const c of current) {
    if (c.prefixLength !== hostLength(c.address) || !inRanges(c.address)) continue;
    const h = { address: canonicalAddress(c.address), device: c.device };
    // A DAD-failed copy is dead weight: remove it, and re-add it below if it is wanted.
    if (want.has(key(h)) && !c.dadFailed) have.add(key(h));
    else remove.push(h);
  }
  const add = [...want.values()].filter((w) => !have.has(key(w)));
  return { add, remove, refused };
}

/** One `ip -batch` line per change, removals first. */
export function batchLines(plan: Pick<AddressPlan, 'add' | 'remove'>): { op: 'add' | 'del'; target: HostAddress; line: string }[] {
  const line = (op: 'add' | 'del', t: HostAddress): string => `address ${op} ${t.address}/${hostLength(t.address)} dev ${t.device}`;
  return [
    ...plan.remove.map((target) => ({ op: 'del' as const, target, line: line('del', target) })),
    ...plan.add.map((target) => ({ op: 'add' as const, target, line: line('add', target) })),
  ];
}

/**
 * The addresses VIP config asks for: BGP-mode VIPs always, on the non-ARPing `bgpDevice`;
 * ARP-mode VIPs on their interface only while this director owns them (otherwise the kernel
 * would answer ARP for them next to the owner).
 */
export function desiredVipAddresses(vips: readonly { vip: VipConfig; owned: boolean }[], bgpDevice: string): HostAddress[] {
  const out: HostAddress[] = [];
  for (const { vip, owned } of vips) {
    if (vip.mode === 'bgp') out.push({ address: vip.address, device: bgpDevice });
    else if (owned && vip.interface) out.push({ address: vip.address, device: vip.interface });
  }
  return out;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

/** Parses `ip -j addr show`; entries without an address (some tunnels) are skipped. */
export function parseIpAddr(json: string): CurrentAddress[] {
  const doc: unknown = JSON.parse(json);
  if (!Array.isArray(doc)) throw new Error('ip -j addr: expected a JSON array');
  const out: CurrentAddress[] = [];
  for (const link of doc) {
    if (!isRecord(link) || typeof link.ifname !== 'string' || !Array.isArray(link.addr_info)) continue;
    for (const a of link.addr_info) {
      if (!isRecord(a) || typeof a.local !== 'string' || typeof a.prefixlen !== 'number' || isIP(a.local) === 0) continue;
      out.push({ address: a.local, prefixLength: a.prefixlen, device: link.ifname, dadFailed: a.dadfailed === true });
    }
  }
  return out;
}

/** A kernel setting under /proc/sys, with the reason vipd needs it. */
export interface SysctlSetting {
  /** Relative to /proc/sys, e.g. `net/ipv4/conf/all/arp_ignore`. */
  path: string;
  value: number;
  why: string;
}

/**
 * Settings a director needs so that only the owner of a VIP ever answers for it.
 * `devices`: the L2 interfaces carrying ARP-mode VIPs, and whether any of them is IPv6.
 *
 * arp_ignore/arp_announce take the larger of `all` and the interface value, so setting `all`
 * covers every interface (also the ones facing a BGP router, where lo/vipd0 VIPs must stay mute).
 * rp_filter takes the larger too; loose (2) per ARP interface cannot be undone by `all`.
 */
export function desiredSysctls(devices: readonly { device: string; ipv6: boolean }[]): SysctlSetting[] {
  const out: SysctlSetting[] = [
    {
      path: 'net/ipv4/conf/all/arp_ignore',
      value: 1,
      why: 'answer ARP only for addresses on the receiving interface: VIPs on lo/vipd0 stay mute',
    },
    {
      path: 'net/ipv4/conf/all/arp_announce',
      value: 2,
      why: 'never use a VIP as the sender of our own ARP requests (it would move the VIP to us)',
    },
  ];
  const seen = new Set<string>();
  for (const { device, ipv6 } of devices) {
    if (!seen.has(device)) {
      seen.add(device);
      out.push({
        path: `net/ipv4/conf/${device}/rp_filter`,
        value: 2,
        why: 'loose reverse-path check: VIP traffic may arrive on an interface other than the route back',
      });
    }
    if (ipv6 && !seen.has(`${device}/6`)) {
      seen.add(`${device}/6`);
      out.push(
        { path: `net/ipv6/conf/${device}/ndisc_notify`, value: 1, why: 'kernel sends an unsolicited NA when a VIP is added' },
        { path: `net/ipv6/conf/${device}/dad_transmits`, value: 0, why: 'a taken-over VIP is usable at once; vipd elects one owner itself' },
        {
          path: `net/ipv6/conf/${device}/router_solicitation_delay`,
          value: 0,
          why: 'the kernel delays DAD (and so the NA) by up to this many seconds',
        },
      );
    }
  }
  return out;
}
