import { describe, expect, it } from 'vitest';
import { batchLines, desiredSysctls, desiredVipAddresses, parseIpAddr, planAddresses, type CurrentAddress } from '../../../src/addr/plan.js';
import { parseBatchErrors } from '../../../src/addr/ip.js';
import { vipSchema } from '../../../src/config/schema.js';

const RANGES = ['198.51.100.0/24', '2001:db8:100::/64'];
const cur = (address: string, prefixLength: number, device: string, dadFailed = false): CurrentAddress => ({ address, prefixLength, device, dadFailed });

describe('planAddresses', () => {
  it('adds what is missing and removes unwanted host addresses inside the VIP ranges only', () => {
    const plan = planAddresses(
      [
        { address: '198.51.100.1', device: 'lo' },
        { address: '198.51.100.2', device: 'eth0' },
      ],
      [
        cur('198.51.100.1', 32, 'lo'),
        cur('198.51.100.9', 32, 'lo'), // stale VIP: removed
        cur('198.51.100.10', 24, 'eth0'), // interface address inside a range: never touched
        cur('192.0.2.10', 24, 'eth0'), // outside every range: never touched
        cur('192.0.2.99', 32, 'lo'), // host address outside the ranges: never touched
        cur('127.0.0.1', 8, 'lo'),
      ],
      RANGES,
    );
    expect(plan.add).toEqual([{ address: '198.51.100.2', device: 'eth0' }]);
    expect(plan.remove).toEqual([{ address: '198.51.100.9', device: 'lo' }]);
    expect(plan.refused).toEqual([]);
  });

  it('refuses desired addresses outside the ranges', () => {
    const plan = planAddresses([{ address: '203.0.113.5', device: 'lo' }], [], RANGES);
    expect(plan.add).toEqual([]);
    expect(plan.refused).toEqual([{ address: '203.0.113.5', device: 'lo' }]);
  });

  it('compares IPv6 canonically and moves a VIP between interfaces (removal first)', () => {
    const plan = planAddresses(
      [
        { address: '2001:DB8:100:0::5', device: 'eth1' },
        { address: '2001:db8:100::6', device: 'eth0' },
      ],
      [cur('2001:db8:100::5', 128, 'eth0'), cur('2001:db8:100::6', 128, 'eth0')],
      RANGES,
    );
    expect(plan.remove).toEqual([{ address: '2001:db8:100::5', device: 'eth0' }]);
    expect(plan.add).toEqual([{ address: '2001:db8:100::5', device: 'eth1' }]);
    expect(batchLines(plan).map((l) => l.line)).toEqual([
      'address del 2001:db8:100::5/128 dev eth0',
      'address add 2001:db8:100::5/128 dev eth1',
    ]);
  });

  it('replaces a wanted address whose duplicate address detection failed', () => {
    const plan = planAddresses([{ address: '2001:db8:100::7', device: 'eth0' }], [cur('2001:db8:100::7', 128, 'eth0', true)], RANGES);
    expect(plan.remove).toHaveLength(1);
    expect(plan.add).toHaveLength(1);
  });
});

describe('desiredVipAddresses', () => {
  it('puts BGP VIPs on the BGP device and ARP VIPs on their interface only while owned', () => {
    const bgp = vipSchema.parse({ address: '198.51.100.1' });
    const arp = vipSchema.parse({ address: '198.51.100.2', mode: 'arp', interface: 'eth0' });
    expect(
      desiredVipAddresses(
        [
          { vip: bgp, owned: false },
          { vip: arp, owned: false },
        ],
        'vipd0',
      ),
    ).toEqual([{ address: '198.51.100.1', device: 'vipd0' }]);
    expect(desiredVipAddresses([{ vip: arp, owned: true }], 'lo')).toEqual([{ address: '198.51.100.2', device: 'eth0' }]);
  });
});

describe('parseIpAddr', () => {
  it('reads ip -j addr show output', () => {
    const json = JSON.stringify([
      { ifindex: 1, ifname: 'lo', addr_info: [{ family: 'inet', local: '127.0.0.1', prefixlen: 8 }, { family: 'inet', local: '198.51.100.1', prefixlen: 32 }] },
      { ifindex: 2, ifname: 'eth0', addr_info: [{ family: 'inet6', local: '2001:db8:100::7', prefixlen: 128, dadfailed: true, tentative: true }] },
      { ifindex: 3, ifname: 'tun0', addr_info: [{}] },
    ]);
    expect(parseIpAddr(json)).toEqual([
      cur('127.0.0.1', 8, 'lo'),
      cur('198.51.100.1', 32, 'lo'),
      cur('2001:db8:100::7', 128, 'eth0', true),
    ]);
  });
});

describe('parseBatchErrors', () => {
  it('assigns each error text to the batch line ip names after it', () => {
    const stderr = 'Error: ipv4: Address already assigned.\nCommand failed -:2\nCannot find device "nope"\nCommand failed -:4\n';
    expect([...parseBatchErrors(stderr)]).toEqual([
      [2, 'ipv4: Address already assigned.'],
      [4, 'Cannot find device "nope"'],
    ]);
  });
});

describe('desiredSysctls', () => {
  it('mutes ARP for VIPs on lo everywhere, loosens rp_filter on ARP interfaces, enables NA for IPv6 ones', () => {
    const s = desiredSysctls([
      { device: 'eth0', ipv6: false },
      { device: 'eth1', ipv6: true },
    ]);
    const map = Object.fromEntries(s.map((x) => [x.path, x.value]));
    expect(map).toEqual({
      'net/ipv4/conf/all/arp_ignore': 1,
      'net/ipv4/conf/all/arp_announce': 2,
      'net/ipv4/conf/eth0/rp_filter': 2,
      'net/ipv4/conf/eth1/rp_filter': 2,
      'net/ipv6/conf/eth1/ndisc_notify': 1,
      'net/ipv6/conf/eth1/dad_transmits': 0,
      'net/ipv6/conf/eth1/router_solicitation_delay': 0,
    });
    expect(s.every((x) => x.why.length > 10)).toBe(true);
  });
});
