import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { validateConfig, parseConfigText } from '../../../src/config/load.js';
import { formatProblem } from '../../../src/config/errors.js';

/** A small valid config; each case below breaks one thing in a copy of it. */
function base(): Record<string, any> {
  return {
    node: { name: 'd1' },
    vipRanges: ['198.51.100.0/24', '2001:db8:100::/64'],
    bgp: { asn: 64513, routerId: '192.0.2.10', nextHop6: '2001:db8::10', peers: [{ address: '192.0.2.1', asn: 64512, families: ['ipv4', 'ipv6'] }] },
    vips: [{ address: '198.51.100.10' }, { address: '2001:db8:100::10' }, { address: '198.51.100.20', mode: 'arp', interface: 'eth1' }],
    nodes: [{ name: 'n1', weight: 50 }],
    services: [
      {
        vip: '198.51.100.10',
        port: 80,
        scheduler: 'mh',
        flags: ['mh-port'],
        check: { type: 'http', path: '/healthz', interval: '1s' },
        realservers: [{ address: '203.0.113.11', node: 'n1' }, { address: '203.0.113.12' }],
      },
      { vip: '198.51.100.20', port: 53, protocol: 'udp', onePacket: true, forwarding: 'nat', realservers: [{ address: '203.0.113.11', port: 5353 }] },
      { vip: '2001:db8:100::10', port: 443, realservers: [{ address: '2001:db8:203::11' }] },
    ],
  };
}

function problems(mutate: (c: Record<string, any>) => void): string[] {
  const c = base();
  mutate(c);
  const r = validateConfig(c);
  return r.ok ? [] : r.problems.map((p) => formatProblem(undefined, p));
}

describe('config schema', () => {
  it('accepts the base config and fills defaults', () => {
    const r = validateConfig(base());
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const s = r.config.services[0]!;
    expect(s.protocol).toBe('tcp');
    expect(s.forwarding).toBe('dr');
    expect(s.realservers[0]!.weight).toBe(100);
    expect(s.check).toMatchObject({ type: 'http', interval: 1000, timeout: 1000, rise: 2, fall: 3, method: 'GET' });
    expect(r.config.bgp!.peers[0]).toMatchObject({ holdTime: 90_000, keepalive: 30_000, connectRetry: 5000, passive: false });
    expect(r.config.coordinator.presencePorts).toEqual([44444]);
    expect(r.config.metrics.listen).toBe('127.0.0.1:9642');
    expect(r.config.status.socket).toBeUndefined();
    expect(r.version).toMatch(/^[0-9a-f]{12}$/);
  });

  it('gives the same version to the same config and another to a changed one', () => {
    const a = validateConfig(base());
    const b = validateConfig(base());
    const c = base();
    c.services[0].realservers[0].weight = 7;
    const d = validateConfig(c);
    expect(a.ok && b.ok && d.ok).toBe(true);
    if (a.ok && b.ok && d.ok) {
      expect(a.version).toBe(b.version);
      expect(d.version).not.toBe(a.version);
    }
  });

  it('parses durations, communities and fractions', () => {
    const r = validateConfig({
      ...base(),
      vips: [
        { address: '198.51.100.10', communities: ['64512:100'], largeCommunities: ['4200000001:1:2'], softFail: { below: '75%', med: 500 } },
        { address: '2001:db8:100::10' },
        { address: '198.51.100.20', mode: 'arp', interface: 'eth1' },
      ],
      ipvs: { drainTimeout: '2m' },
    });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.config.vips[0]!.communities).toEqual([64512 * 65536 + 100]);
    expect(r.config.vips[0]!.largeCommunities).toEqual([{ globalAdmin: 4200000001, localData1: 1, localData2: 2 }]);
    expect(r.config.vips[0]!.softFail!.below).toBe(0.75);
    expect(r.config.ipvs.drainTimeout).toBe(120_000);
  });

  // [what is broken, the mutation, the exact line expected among the problems]
  const cases: [string, (c: Record<string, any>) => void, string][] = [
    ['unknown top-level key', (c) => (c.bogus = 1), 'bogus: unknown setting'],
    ['unknown nested key (typo)', (c) => (c.services[0].realservers[0].wieght = 3), 'services[0].realservers[0].wieght: unknown setting'],
    ['wrong type', (c) => (c.services[0].port = '80'), 'services[0].port: Invalid input: expected number, received string'],
    ['missing required field', (c) => delete c.bgp.routerId, 'bgp.routerId: required (string)'],
    ['bad address', (c) => (c.services[2].realservers[0].address = '203.0.113.300'), 'services[2].realservers[0].address: not an IPv4 or IPv6 address'],
    ['bad prefix', (c) => (c.vipRanges = ['198.51.100.0/33']), 'vipRanges[0]: not a prefix like 198.51.100.0/24 or 2001:db8::/64'],
    ['port out of range', (c) => (c.services[0].port = 70000), 'services[0].port: Too big: expected number to be <=65535'],
    ['unknown scheduler', (c) => (c.services[0].scheduler = 'fastest'), 'services[0].scheduler: Invalid option: expected one of'],
    ['unknown check type', (c) => (c.services[0].check = { type: 'icmp' }), 'services[0].check.type: Invalid discriminator value'],
    ['bad regex', (c) => (c.services[0].check.expectBody = '(['), 'services[0].check.expectBody: not a valid regular expression'],
    ['bad status range', (c) => (c.services[0].check.expectStatus = ['2xx']), 'services[0].check.expectStatus[0]'],
    ['bad duration', (c) => (c.services[0].check.interval = 'soon'), 'services[0].check.interval: not a duration (use e.g. 500ms, 2s, 5m): "soon"'],
    ['relative script path', (c) => (c.services[0].check = { type: 'script', command: 'check.sh' }), 'services[0].check.command: command must be an absolute path'],
    ['ASN zero', (c) => (c.bgp.asn = 0), 'bgp.asn: ASN must be 1..4294967294'],
    ['ASN too big', (c) => (c.bgp.peers[0].asn = 4294967296), 'bgp.peers[0].asn: ASN must be 1..4294967294'],
    ['reserved ASN', (c) => (c.bgp.peers[0].asn = 65535), 'bgp.peers[0].asn: ASN 65535 and 23456 are reserved'],
    ['router id not IPv4', (c) => (c.bgp.routerId = '2001:db8::1'), 'bgp.routerId: not an IPv4 address'],
    ['bad community', (c) => (c.vips[0].communities = ['70000:1']), 'vips[0].communities[0]: not a community ASN:VALUE with 16-bit parts'],
    ['bad large community', (c) => (c.vips[0].largeCommunities = ['1:2']), 'vips[0].largeCommunities[0]: not a large community'],
    ['bad fraction', (c) => (c.vips[0].softFail = { below: '150%' }), 'vips[0].softFail.below: not a fraction 0..1'],
    ['unknown sysctl', (c) => (c.ipvs = { sysctls: { conntrak: 1 } }), 'ipvs.sysctls.conntrak: unknown setting net.ipv4.vs.conntrak'],
    ['sysctl out of range', (c) => (c.ipvs = { sysctls: { conn_reuse_mode: 9 } }), 'ipvs.sysctls.conn_reuse_mode: net.ipv4.vs.conn_reuse_mode must be 0..3'],
    ['bad metrics listener', (c) => (c.metrics = { listen: 'localhost' }), 'metrics.listen: not ADDRESS:PORT'],
    ['bad log level', (c) => (c.log = { level: 'chatty' }), 'log.level: Invalid option'],
    ['relative state dir', (c) => (c.node.stateDir = 'state'), 'node.stateDir:'],
    // cross-field rules
    ['VIP outside the owned ranges', (c) => (c.vips[0].address = '203.0.113.99'), 'vips[0].address: 203.0.113.99 is outside vipRanges'],
    ['duplicate VIP', (c) => c.vips.push({ address: '198.51.100.10' }), 'vips[3].address: 198.51.100.10 is declared twice (also vips[0])'],
    ['duplicate VIP in another spelling', (c) => c.vips.push({ address: '2001:DB8:100:0::10' }), 'vips[3].address: 2001:DB8:100:0::10 is declared twice'],
    ['ARP VIP without interface', (c) => delete c.vips[2].interface, 'vips[2].interface: an ARP-mode VIP needs the interface it lives on'],
    ['BGP VIP without bgp section', (c) => delete c.bgp, 'vips[0].mode: a BGP-mode VIP needs a bgp section'],
    ['IPv6 VIP on IPv4-only sessions', (c) => (c.bgp.peers[0].families = ['ipv4']), "vips[1].address: IPv6 VIP but no BGP peer carries ipv6; add 'ipv6' to a peer's families"],
    ['next hop of the wrong family', (c) => (c.vips[0].nextHop = '2001:db8::1'), 'vips[0].nextHop: IPv6 next hop for an IPv4 VIP'],
    ['service on an undeclared VIP', (c) => (c.services[0].vip = '198.51.100.99'), 'services[0].vip: 198.51.100.99 is not declared under vips'],
    ['service without port', (c) => delete c.services[0].port, 'services[0].port: a service needs a port (or a fwmark)'],
    ['fwmark service with port', (c) => (c.services[0].fwmark = 5), 'services[0].port: a firewall-mark service has no port'],
    ['duplicate service', (c) => c.services.push({ ...c.services[0], realservers: [] }), 'services[3]: duplicate service tcp:198.51.100.10:80 (also services[0])'],
    ['flag of another scheduler', (c) => (c.services[0].flags = ['sh-port']), 'services[0].flags[0]: sh-port only applies to the sh scheduler, not mh'],
    ['one-packet on TCP', (c) => (c.services[0].onePacket = true), 'services[0].onePacket: one-packet scheduling applies to UDP services only'],
    ['realserver family mismatch', (c) => (c.services[2].realservers[0].address = '203.0.113.5'), 'services[2].realservers[0].address: IPv4 realserver behind an IPv6 VIP'],
    ['DR with another port', (c) => (c.services[0].realservers[0].port = 8080), 'services[0].realservers[0].port: direct routing does not rewrite ports: 8080 must equal the service port 80 (only nat may differ)'],
    ['tunnel with another port', (c) => ((c.services[0].forwarding = 'tunnel'), (c.services[0].realservers[0].port = 8080)), 'services[0].realservers[0].port: an IPIP tunnel does not rewrite ports'],
    ['duplicate realserver', (c) => c.services[0].realservers.push({ address: '203.0.113.11' }), 'services[0].realservers[2].address: duplicate realserver 203.0.113.11:80 (also realservers[0])'],
    ['undeclared node', (c) => (c.services[0].realservers[1].node = 'n9'), 'services[0].realservers[1].node: node n9 is not declared under nodes'],
    ['thresholds inverted', (c) => Object.assign(c.services[0].realservers[0], { upperThreshold: 10, lowerThreshold: 20 }), 'services[0].realservers[0].lowerThreshold: lower threshold above the upper threshold'],
    ['duplicate node', (c) => c.nodes.push({ name: 'n1' }), 'nodes[1].name: node n1 is declared twice'],
    ['node weight above 100%', (c) => (c.nodes[0].weight = 150), 'nodes[0].weight: Too big'],
    ['duplicate peer', (c) => c.bgp.peers.push({ address: '192.0.2.1', asn: 64514 }), 'bgp.peers[1].address: peer 192.0.2.1 is declared twice'],
    ['keepalive not below hold time', (c) => Object.assign(c.bgp.peers[0], { holdTime: '3s', keepalive: '3s' }), 'bgp.peers[0].keepalive: keepalive must be shorter than the hold time'],
    ['local address of the wrong family', (c) => (c.bgp.peers[0].localAddress = '2001:db8::10'), 'bgp.peers[0].localAddress: IPv6 local address for an IPv4 neighbour'],
    ['passive peer without a listener', (c) => (c.bgp.peers[0].passive = true), 'bgp.peers[0].passive: a passive peer needs bgp.listenPort'],
    ['listen addresses without a listener', (c) => (c.bgp.listenAddresses = ['192.0.2.10']), 'bgp.listenAddresses: listen addresses without a listener (bgp.listenPort is -1)'],
    ['IPv6 VIP over IPv4 session without IPv6 next hop', (c) => delete c.bgp.nextHop6, 'vips[1].nextHop: IPv6 VIP over an IPv4 session needs a next hop of its own family'],
    ['duplicate presence port', (c) => (c.coordinator = { presencePorts: [44444, 44444] }), 'coordinator.presencePorts[1]: port 44444 is listed twice'],
  ];

  it.each(cases)('refuses %s with a message naming the path', (_what, mutate, expected) => {
    const got = problems(mutate);
    expect(got.some((p) => p.startsWith(expected) || p.includes(expected)), `expected "${expected}" in:\n${got.join('\n')}`).toBe(true);
  });

  it('accepts NAT with another port, which only NAT can do', () => {
    expect(problems((c) => (c.services[1].realservers[0].port = 8053))).toEqual([]);
  });

  it('reports every field problem at once', () => {
    const got = problems((c) => {
      c.bogus = 1;
      c.services[0].port = 0;
      c.bgp.asn = -1;
    });
    expect(got).toHaveLength(3);
  });
});

describe('config text', () => {
  it('reports YAML syntax errors with their line', () => {
    const r = parseConfigText('node:\n  name: d1\nvips: [\n');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problems[0]!.line).toBeGreaterThanOrEqual(3);
  });

  it('refuses duplicate keys', () => {
    const r = parseConfigText('node: {name: a}\nnode: {name: b}\n');
    expect(r.ok).toBe(false);
  });

  it('refuses a file that is not a mapping', () => {
    const r = parseConfigText('- a\n- b\n');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problems[0]!.message).toMatch(/mapping of sections/);
  });

  it('points schema problems at the line of the offending value', () => {
    const text = stringify(base()).replace('203.0.113.12', '203.0.113.312');
    const parsed = parseConfigText(text);
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    const r = validateConfig(parsed.file.data, parsed.file);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const line = text.split('\n').findIndex((l) => l.includes('203.0.113.312')) + 1;
    expect(r.problems[0]).toMatchObject({ path: 'services[0].realservers[1].address', line });
  });

  it('accepts JSON, which is YAML', () => {
    const parsed = parseConfigText(JSON.stringify(base()));
    expect(parsed.ok && validateConfig(parsed.file.data).ok).toBe(true);
  });
});
