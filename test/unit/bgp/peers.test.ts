import { describe, expect, it } from 'vitest';
import { bgpSchema, type BgpConfig } from '../../../src/config/schema.js';
import { diffPeers, globalMsg, needsRestart, toPeerMsg, validateBgpConfig } from '../../../src/bgp/peers.js';

const v4peer = { address: '192.0.2.1', asn: 64512 };
const v6peer = { address: '2001:db8:0:1::1', asn: 64512 };
const cfg = (extra: Record<string, unknown> = {}): BgpConfig => bgpSchema.parse({ asn: 64513, routerId: '192.0.2.10', peers: [v4peer, v6peer], ...extra });

describe('toPeerMsg', () => {
  it('converts timers to seconds and sets a low connect retry by default', () => {
    const c = cfg({ peers: [{ ...v4peer, holdTime: '9s', keepalive: '3s' }] });
    expect(toPeerMsg(c.peers[0]!, c, { restarting: false }).timers).toEqual({ config: { connect_retry: 5, hold_time: 9, keepalive_interval: 3 } });
  });

  it('always names the family of each afi_safi: the neighbour address family by default', () => {
    const c = cfg();
    expect(toPeerMsg(c.peers[0]!, c, { restarting: false }).afi_safis).toEqual([{ config: { family: { afi: 'AFI_IP', safi: 'SAFI_UNICAST' }, enabled: true }, mp_graceful_restart: { config: { enabled: true } } }]);
    expect(toPeerMsg(c.peers[1]!, c, { restarting: false }).afi_safis.map((a) => a.config.family.afi)).toEqual(['AFI_IP6']);
  });

  it('carries IPv4 and IPv6 unicast on one session when configured', () => {
    const c = cfg({ peers: [{ ...v4peer, families: ['ipv4', 'ipv6'] }] });
    expect(toPeerMsg(c.peers[0]!, c, { restarting: false }).afi_safis.map((a) => a.config.family)).toEqual([
      { afi: 'AFI_IP', safi: 'SAFI_UNICAST' },
      { afi: 'AFI_IP6', safi: 'SAFI_UNICAST' },
    ]);
  });

  it('maps ASNs (4-byte too), password, local address, passive mode and multihop', () => {
    const c = cfg({
      asn: 4200000001,
      peers: [{ address: '2001:DB8:0:1::1', asn: 4200000002, localAsn: 4200000003, localAddress: '2001:db8:0:1::10', password: 's3cret', passive: true, multihop: 3, description: 'edge' }],
    });
    const m = toPeerMsg(c.peers[0]!, c, { restarting: false });
    expect(m.conf).toEqual({ neighbor_address: '2001:db8:0:1::1', peer_asn: 4200000002, local_asn: 4200000003, auth_password: 's3cret', description: 'edge' });
    expect(m.transport).toEqual({ local_address: '2001:db8:0:1::10', passive_mode: true });
    expect(m.ebgp_multihop).toEqual({ enabled: true, multihop_ttl: 3 });
    expect(toPeerMsg(cfg().peers[0]!, cfg(), { restarting: false })).toMatchObject({ conf: { local_asn: 64513, auth_password: '' }, ebgp_multihop: { enabled: false } });
  });

  it('sets graceful restart, and its restart state only when restarting with it enabled', () => {
    const c = cfg({ gracefulRestart: { restartTime: '120s' } });
    expect(toPeerMsg(c.peers[0]!, c, { restarting: true }).graceful_restart).toEqual({ enabled: true, restart_time: 120, deferral_time: 10, local_restarting: true });
    expect(toPeerMsg(c.peers[0]!, c, { restarting: false }).graceful_restart.local_restarting).toBe(false);
    const off = cfg({ gracefulRestart: { enabled: false } });
    const m = toPeerMsg(off.peers[0]!, off, { restarting: true });
    expect(m.graceful_restart).toEqual({ enabled: false, restart_time: 0, deferral_time: 0, local_restarting: false });
    expect(m.afi_safis[0]?.mp_graceful_restart.config.enabled).toBe(false);
  });
});

describe('diffPeers', () => {
  it('adds everything on first configuration', () => {
    expect(diffPeers(undefined, cfg())).toEqual({ add: cfg().peers, update: [], remove: [] });
  });

  it('adds, changes and removes peers, leaving unchanged ones alone', () => {
    const before = cfg({ peers: [v4peer, v6peer, { address: '192.0.2.2', asn: 64514 }] });
    const after = cfg({ peers: [v4peer, { ...v6peer, holdTime: '30s', keepalive: '10s' }, { address: '192.0.2.3', asn: 64515 }] });
    const d = diffPeers(before, after);
    expect(d.add.map((p) => p.address)).toEqual(['192.0.2.3']);
    expect(d.update.map((p) => p.address)).toEqual(['2001:db8:0:1::1']);
    expect(d.remove).toEqual(['192.0.2.2']);
  });

  it('matches peers by canonical address', () => {
    expect(diffPeers(cfg(), cfg({ peers: [v4peer, { ...v6peer, address: '2001:DB8:0:1:0::1' }] }))).toEqual({ add: [], update: [], remove: [] });
  });

  it('updates every peer when a setting they all inherit changes', () => {
    expect(diffPeers(cfg(), cfg({ gracefulRestart: { restartTime: '30s' } })).update).toHaveLength(2);
    expect(diffPeers(cfg(), cfg({ withdrawDelay: '5s', nextHop: '192.0.2.20' })).update).toHaveLength(0);
  });
});

describe('needsRestart and globalMsg', () => {
  it('restarts gobgpd only for settings of the BGP instance or the process', () => {
    expect(needsRestart(cfg(), cfg({ peers: [] }))).toBe(false);
    expect(needsRestart(cfg(), cfg({ asn: 64600 }))).toBe(true);
    expect(needsRestart(cfg(), cfg({ routerId: '192.0.2.11' }))).toBe(true);
    expect(needsRestart(cfg(), cfg({ listenPort: 179 }))).toBe(true);
    expect(needsRestart(cfg(), cfg({ gobgpd: { binary: '/usr/local/bin/gobgpd' } }))).toBe(true);
  });

  it('starts BGP with no listener by default', () => {
    expect(globalMsg(cfg())).toEqual({ asn: 64513, router_id: '192.0.2.10', listen_port: -1, listen_addresses: [] });
  });

  it('binds the listener to the configured addresses, and restarts gobgpd when they change', () => {
    const c = cfg({ listenPort: 179, listenAddresses: ['192.0.2.10', '2001:db8:0:1::10'] });
    expect(globalMsg(c)).toMatchObject({ listen_port: 179, listen_addresses: ['192.0.2.10', '2001:db8:0:1::10'] });
    expect(needsRestart(c, cfg({ listenPort: 179, listenAddresses: ['192.0.2.10'] }))).toBe(true);
  });
});

describe('validateBgpConfig', () => {
  it('accepts a valid config', () => {
    expect(validateBgpConfig(cfg({ asn: 4200000001 }))).toEqual([]);
  });

  it('refuses reserved and out-of-range ASNs', () => {
    for (const asn of [0, 23456, 65535, 4294967295, 1.5]) {
      expect(validateBgpConfig({ ...cfg(), asn })).toEqual([`bgp.asn: ${asn}: ASN must be an integer 1..4294967294 (65535 and 23456 are reserved)`]);
    }
    const c = cfg();
    expect(validateBgpConfig({ ...c, peers: [{ ...c.peers[0]!, asn: 0, localAsn: 65535 }] })).toEqual([
      'bgp.peers[0].asn: 0: ASN must be an integer 1..4294967294 (65535 and 23456 are reserved)',
      'bgp.peers[0].localAsn: 65535: ASN must be an integer 1..4294967294 (65535 and 23456 are reserved)',
    ]);
  });

  it('refuses what gobgpd would misuse or never bring up', () => {
    const c = cfg();
    const p = c.peers[0]!;
    expect(
      validateBgpConfig({
        ...c,
        routerId: '2001:db8::1',
        peers: [
          { ...p, localAddress: '2001:db8:0:1::10', keepalive: 9000, holdTime: 9000, passive: true },
          { ...p, address: '192.0.2.1' },
          { ...p, address: 'router1' },
        ],
        listenAddresses: ['director1'],
      }),
    ).toEqual([
      'bgp.routerId: 2001:db8::1 is not an IPv4 address',
      'bgp.listenAddresses: listen addresses without a listener (bgp.listenPort is -1)',
      'bgp.listenAddresses: director1 is not an IP address',
      "bgp.peers[0].localAddress: 2001:db8:0:1::10 is not an address of the neighbour's family",
      'bgp.peers[0].keepalive: must be shorter than the hold time',
      'bgp.peers[0].passive: a passive peer must connect to us, but bgp.listenPort is -1 (no listener)',
      'bgp.peers[1].address: peer 192.0.2.1 is declared twice',
      'bgp.peers[2].address: router1 is not an IP address',
    ]);
  });
});
