/** Cross-field rules of vipd.yaml that a per-field schema cannot express. */
import type { z } from 'zod';
import { canonicalAddress, inPrefix } from '../util/ip.js';
import type { ConfigShape } from './schema.js';
import { ipFamily } from './types.js';

type Shape = z.output<ConfigShape>;
type Path = (string | number)[];

export function refineConfig(c: Shape, ctx: z.RefinementCtx): void {
  const fail = (path: Path, message: string): void => ctx.addIssue({ code: 'custom', path, message });
  const fam = (a: string): string => (ipFamily(a) === 6 ? 'IPv6' : 'IPv4');

  // VIPs: unique, inside the owned ranges, with what their mode needs.
  const vips = new Map<string, number>();
  c.vips.forEach((v, i) => {
    const key = canonicalAddress(v.address);
    if (vips.has(key)) fail(['vips', i, 'address'], `${v.address} is declared twice (also vips[${vips.get(key)}])`);
    vips.set(key, i);
    if (!c.vipRanges.some((r) => inPrefix(v.address, r))) {
      fail(['vips', i, 'address'], `${v.address} is outside vipRanges (${c.vipRanges.join(', ') || 'none declared'}); vipd only manages addresses inside them`);
    }
    if (v.mode === 'arp' && !v.interface) fail(['vips', i, 'interface'], 'an ARP-mode VIP needs the interface it lives on');
    if (v.mode === 'bgp' && !c.bgp) fail(['vips', i, 'mode'], 'a BGP-mode VIP needs a bgp section');
    if (v.nextHop && ipFamily(v.nextHop) !== ipFamily(v.address)) {
      fail(['vips', i, 'nextHop'], `${fam(v.nextHop)} next hop for an ${fam(v.address)} VIP`);
    }
    if (/%$/.test(String(v.minHealthy)) && Number.parseFloat(String(v.minHealthy)) > 100) {
      fail(['vips', i, 'minHealthy'], 'a percentage cannot exceed 100%');
    }
    if (v.mode === 'bgp' && c.bgp) {
      const want = ipFamily(v.address) === 6 ? 'ipv6' : 'ipv4';
      const carried = c.bgp.peers.some((p) => (p.families ?? [ipFamily(p.address) === 6 ? 'ipv6' : 'ipv4']).includes(want));
      if (c.bgp.peers.length > 0 && !carried) {
        fail(['vips', i, 'address'], `${fam(v.address)} VIP but no BGP peer carries ${want}; add '${want}' to a peer's families`);
      }
      // Over a session of the other family the router needs a next hop of the VIP's family.
      const sameFamilySession = c.bgp.peers.some((p) => ipFamily(p.address) === ipFamily(v.address));
      const ownNextHop = v.nextHop ?? (ipFamily(v.address) === 6 ? c.bgp.nextHop6 : c.bgp.nextHop);
      if (carried && !sameFamilySession && !ownNextHop) {
        fail(['vips', i, 'nextHop'], `${fam(v.address)} VIP over an ${fam(v.address) === 'IPv6' ? 'IPv4' : 'IPv6'} session needs a next hop of its own family (vips[].nextHop or bgp.${want === 'ipv6' ? 'nextHop6' : 'nextHop'})`);
      }
    }
  });

  // Services: declared VIP, unique key, scheduler flags and forwarding rules.
  const nodeNames = new Set(c.nodes.map((n) => n.name));
  const services = new Map<string, number>();
  c.services.forEach((s, i) => {
    const at = (...p: Path): Path => ['services', i, ...p];
    if (!vips.has(canonicalAddress(s.vip))) fail(at('vip'), `${s.vip} is not declared under vips`);
    if (s.fwmark === undefined && s.port === undefined) fail(at('port'), 'a service needs a port (or a fwmark)');
    if (s.fwmark !== undefined && s.port !== undefined) fail(at('port'), 'a firewall-mark service has no port');
    const key = s.fwmark !== undefined ? `fwm:${s.fwmark}:${ipFamily(s.vip)}` : `${s.protocol}:${canonicalAddress(s.vip)}:${s.port}`;
    if (services.has(key)) fail(at(), `duplicate service ${key} (also services[${services.get(key)}])`);
    services.set(key, i);
    s.flags.forEach((f, j) => {
      const needs = f.startsWith('mh-') ? 'mh' : 'sh';
      if (s.scheduler !== needs) fail(at('flags', j), `${f} only applies to the ${needs} scheduler, not ${s.scheduler}`);
    });
    if (s.onePacket && s.protocol !== 'udp') fail(at('onePacket'), 'one-packet scheduling applies to UDP services only');
    if (typeof s.persistence?.netmask === 'number' && ipFamily(s.vip) === 4 && s.persistence.netmask > 32) {
      fail(at('persistence', 'netmask'), 'an IPv4 persistence netmask is at most 32 bits');
    }
    const seen = new Map<string, number>();
    s.realservers.forEach((r, j) => {
      const rat = (...p: Path): Path => at('realservers', j, ...p);
      const fwd = r.forwarding ?? s.forwarding;
      if (ipFamily(r.address) !== ipFamily(s.vip)) fail(rat('address'), `${fam(r.address)} realserver behind an ${fam(s.vip)} VIP`);
      if (r.port !== undefined && s.port !== undefined && r.port !== s.port && fwd !== 'nat') {
        fail(
          rat('port'),
          `${fwd === 'dr' ? 'direct routing' : 'an IPIP tunnel'} does not rewrite ports: ${r.port} must equal the service port ${s.port} (only nat may differ)`,
        );
      }
      const rkey = `${canonicalAddress(r.address)}:${r.port ?? s.port ?? 0}`;
      if (seen.has(rkey)) fail(rat('address'), `duplicate realserver ${rkey} (also realservers[${seen.get(rkey)}])`);
      seen.set(rkey, j);
      if (r.node !== undefined && !nodeNames.has(r.node)) fail(rat('node'), `node ${r.node} is not declared under nodes`);
      if (r.upperThreshold && r.lowerThreshold !== undefined && r.lowerThreshold > r.upperThreshold) {
        fail(rat('lowerThreshold'), 'lower threshold above the upper threshold');
      }
    });
  });

  const names = new Set<string>();
  c.nodes.forEach((n, i) => {
    if (names.has(n.name)) fail(['nodes', i, 'name'], `node ${n.name} is declared twice`);
    names.add(n.name);
  });

  if (c.bgp) {
    if (c.bgp.listenAddresses && c.bgp.listenPort === -1) fail(['bgp', 'listenAddresses'], 'listen addresses without a listener (bgp.listenPort is -1)');
    const peers = new Set<string>();
    c.bgp.peers.forEach((p, i) => {
      const at = (...q: Path): Path => ['bgp', 'peers', i, ...q];
      const key = canonicalAddress(p.address);
      if (peers.has(key)) fail(at('address'), `peer ${p.address} is declared twice`);
      peers.add(key);
      if (p.localAddress && ipFamily(p.localAddress) !== ipFamily(p.address)) {
        fail(at('localAddress'), `${fam(p.localAddress)} local address for an ${fam(p.address)} neighbour`);
      }
      if (p.keepalive >= p.holdTime) fail(at('keepalive'), 'keepalive must be shorter than the hold time');
      if (p.passive && c.bgp?.listenPort === -1) fail(at('passive'), 'a passive peer needs bgp.listenPort (vipd does not listen with -1)');
    });
  }

  if (c.arp.holdTime <= c.arp.advertInterval) fail(['arp', 'holdTime'], 'the hold time must be longer than the advert interval');

  const ports = new Set<number>();
  c.coordinator.presencePorts.forEach((p, i) => {
    if (ports.has(p)) fail(['coordinator', 'presencePorts', i], `port ${p} is listed twice`);
    ports.add(p);
  });
}
