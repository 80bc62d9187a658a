import { describe, expect, it } from 'vitest';
import { bgpSchema, vipSchema, type BgpConfig, type VipConfig } from '../../../src/config/schema.js';
import { TYPE } from '../../../src/bgp/messages.js';
import { diffRoutes, needsSending, planChunks, planRoutes, routeKey, toPathMsg, type PlannedRoute, type RouteIntent } from '../../../src/bgp/routes.js';

const cfg = (extra: Record<string, unknown> = {}): BgpConfig =>
  bgpSchema.parse({ asn: 64513, routerId: '192.0.2.10', peers: [{ address: '192.0.2.1', asn: 64512, families: ['ipv4', 'ipv6'] }], nextHop6: '2001:db8:0:1::10', ...extra });
const vip = (address: string, extra: Record<string, unknown> = {}): VipConfig => vipSchema.parse({ address, ...extra });
const up = (...vips: VipConfig[]): RouteIntent[] => vips.map((v) => ({ vip: v, state: 'up' }));
const only = (intents: RouteIntent[], c = cfg()): PlannedRoute => {
  const { routes, rejected } = planRoutes(intents, c);
  expect(rejected).toEqual([]);
  expect(routes.size).toBe(1);
  return [...routes.values()][0] as PlannedRoute;
};

describe('planRoutes', () => {
  it('plans a /32 with next hop self and IGP defaults', () => {
    expect(only(up(vip('198.51.100.10')))).toMatchObject({ key: '198.51.100.10/32', family: 'ipv4', prefixLen: 32, nextHop: '0.0.0.0', communities: [], largeCommunities: [], prepend: 0, state: 'up' });
  });

  it('plans a /128 under its canonical spelling', () => {
    expect(only(up(vip('2001:DB8:100:0::0:10')))).toMatchObject({ key: '2001:db8:100::10/128', prefix: '2001:db8:100::10', family: 'ipv6', prefixLen: 128 });
  });

  it('takes the next hop from the VIP, else the bgp section, else self', () => {
    expect(only(up(vip('198.51.100.10', { nextHop: '192.0.2.20' })), cfg({ nextHop: '192.0.2.30' })).nextHop).toBe('192.0.2.20');
    expect(only(up(vip('198.51.100.10')), cfg({ nextHop: '192.0.2.30' })).nextHop).toBe('192.0.2.30');
    expect(only(up(vip('2001:db8:100::10'))).nextHop).toBe('2001:db8:0:1::10');
    const v6only = cfg({ nextHop6: undefined, peers: [{ address: '2001:db8:0:1::1', asn: 64512 }] });
    expect(only(up(vip('2001:db8:100::10')), v6only).nextHop).toBe('::');
  });

  it('normalises communities: multiplied 32-bit values, sorted, without duplicates', () => {
    const r = only(up(vip('198.51.100.10', { communities: ['65535:65535', '64513:100', '64513:100'], largeCommunities: ['64513:2:1', '64513:1:20', '64513:1:20'], med: 0 })));
    expect(r.communities).toEqual([64513 * 65536 + 100, 4294967295]);
    expect(r.largeCommunities).toEqual([
      { global_admin: 64513, local_data1: 1, local_data2: 20 },
      { global_admin: 64513, local_data1: 2, local_data2: 1 },
    ]);
    expect(r.med).toBe(0);
  });

  it('soft-fail adds communities and prepends and replaces the MED', () => {
    const v = vip('198.51.100.10', { communities: ['64513:100'], largeCommunities: ['64513:1:1'], med: 100, prepend: 1, softFail: { below: '50%', med: 500, prepend: 2, communities: ['64513:666'], largeCommunities: ['64513:9:9'] } });
    const r = only([{ vip: v, state: 'softfail' }]);
    expect(r).toMatchObject({ state: 'softfail', med: 500, prepend: 3, communities: [64513 * 65536 + 100, 64513 * 65536 + 666] });
    expect(r.largeCommunities).toHaveLength(2);
    const keepMed = only([{ vip: vip('198.51.100.10', { med: 100, softFail: { below: 0.5, prepend: 1 } }), state: 'softfail' }]);
    expect(keepMed).toMatchObject({ med: 100, prepend: 1 });
  });

  it('announces a soft-failing VIP without a softFail section as up', () => {
    expect(only([{ vip: vip('198.51.100.10', { med: 5 }), state: 'softfail' }])).toMatchObject({ state: 'up', med: 5, prepend: 0 });
  });

  it('refuses an IPv6 VIP when no peer carries ipv6, naming the fix', () => {
    const v4only = cfg({ peers: [{ address: '192.0.2.1', asn: 64512 }] });
    const { routes, rejected } = planRoutes(up(vip('198.51.100.10'), vip('2001:db8:100::10')), v4only);
    expect([...routes.keys()]).toEqual(['198.51.100.10/32']);
    expect(rejected).toEqual([{ address: '2001:db8:100::10', reason: "IPv6 VIP but no BGP peer carries ipv6; add 'ipv6' to a peer's families" }]);
  });

  it('refuses a VIP carried over a session of the other family without a next hop of its own family', () => {
    const { rejected } = planRoutes(up(vip('2001:db8:100::10')), cfg({ nextHop6: undefined }));
    expect(rejected[0]?.reason).toMatch(/IPv6 VIP sent over the IPv4 session to 192\.0\.2\.1 needs an IPv6 next hop: set bgp\.nextHop6/);
    const v4over6 = cfg({ peers: [{ address: '2001:db8:0:1::1', asn: 64512, families: ['ipv4', 'ipv6'] }] });
    expect(planRoutes(up(vip('198.51.100.10')), v4over6).rejected[0]?.reason).toMatch(/needs an IPv4 next hop: set bgp\.nextHop/);
    expect(planRoutes(up(vip('198.51.100.10', { nextHop: '192.0.2.20' })), v4over6).rejected).toEqual([]);
  });

  it('refuses a next hop of the wrong family, duplicates and values outside 32 bits', () => {
    const bad: VipConfig = { ...vip('198.51.100.12'), communities: [2 ** 32] };
    const { routes, rejected } = planRoutes(
      [
        ...up(vip('198.51.100.10', { nextHop: '2001:db8::1' }), vip('198.51.100.11'), vip('198.51.100.11')),
        { vip: bad, state: 'up' },
        { vip: { ...vip('198.51.100.13'), address: 'nope' }, state: 'up' },
        { vip: { ...vip('198.51.100.13'), address: 'fe80::1%eth0' }, state: 'up' },
      ],
      cfg(),
    );
    expect([...routes.keys()]).toEqual(['198.51.100.11/32']);
    expect(rejected.map((r) => r.reason)).toEqual([
      'next hop 2001:db8::1 is not IPv4',
      '198.51.100.11/32 is listed twice',
      'a community is not a 32-bit value',
      'not an IP address (without zone)',
      'not an IP address (without zone)',
    ]);
  });

  it('reuses plans from a memo for the same VIP object and state', () => {
    const memo = new WeakMap();
    const v = vip('198.51.100.10', { softFail: { below: 0.5, med: 9 } });
    const first = planRoutes(up(v), cfg(), memo).routes.get('198.51.100.10/32');
    expect(planRoutes(up(v), cfg(), memo).routes.get('198.51.100.10/32')).toBe(first);
    expect(planRoutes([{ vip: v, state: 'softfail' }], cfg(), memo).routes.get('198.51.100.10/32')).toMatchObject({ med: 9 });
    const twice = planRoutes(up(v, v), cfg(), memo);
    expect(twice.rejected).toEqual([{ address: '198.51.100.10', reason: '198.51.100.10/32 is listed twice' }]);
    const refused = { ...v, address: 'nope' };
    planRoutes(up(refused), cfg(), memo);
    expect(planRoutes(up(refused), cfg(), memo).rejected).toEqual([{ address: 'nope', reason: 'not an IP address (without zone)' }]);
  });

  it('plans routes without peers (nothing is sent until peers exist)', () => {
    expect(planRoutes(up(vip('2001:db8:100::10')), cfg({ peers: [], nextHop6: undefined })).rejected).toEqual([]);
  });
});

describe('planChunks', () => {
  it('yields the new routes of each chunk, finds duplicates across chunks, and returns the whole plan', () => {
    const intents = up(vip('198.51.100.1'), vip('198.51.100.2'), vip('2001:db8:100::1'), vip('198.51.100.1'), vip('198.51.100.3'));
    const chunks = planChunks(intents, cfg(), undefined, 2);
    const seen: string[][] = [];
    let step = chunks.next();
    while (!step.done) {
      seen.push(step.value.map((r) => r.key));
      step = chunks.next();
    }
    expect(seen).toEqual([['198.51.100.1/32', '198.51.100.2/32'], ['2001:db8:100::1/128'], ['198.51.100.3/32']]);
    expect(step.value).toEqual(planRoutes(intents, cfg()));
    expect(step.value.rejected).toEqual([{ address: '198.51.100.1', reason: '198.51.100.1/32 is listed twice' }]);
  });
});

describe('routeKey', () => {
  it("is the key of the VIP's planned route, under any spelling; undefined for no IP address", () => {
    for (const a of ['198.51.100.10', '2001:DB8:100:0::0:10', '::ffff:198.51.100.10']) expect(routeKey(a)).toBe(only(up(vip(a))).key);
    expect(routeKey('2001:DB8:100:0::0:10')).toBe('2001:db8:100::10/128');
    expect(routeKey('not-an-ip')).toBeUndefined();
    expect(routeKey('fe80::1%eth0')).toBeUndefined();
  });
});

describe('diffRoutes', () => {
  const plan = (intents: RouteIntent[]): Map<string, PlannedRoute> => planRoutes(intents, cfg()).routes;
  const a = vip('198.51.100.10', { med: 10, softFail: { below: 0.5, med: 20 } });
  const b = vip('198.51.100.11');
  const c = vip('2001:db8:100::1');

  it('announces new routes, updates changed ones, withdraws missing ones, leaves the rest', () => {
    const current = plan(up(a, b));
    const d = diffRoutes(current, plan([{ vip: a, state: 'softfail' }, { vip: c, state: 'up' }]));
    expect(d.announce.map((r) => r.key)).toEqual(['2001:db8:100::1/128']);
    expect(d.update.map((r) => r.key)).toEqual(['198.51.100.10/32']);
    expect(d.withdraw.map((r) => r.key)).toEqual(['198.51.100.11/32']);
  });

  it('finds nothing to do for the same state', () => {
    expect(diffRoutes(plan(up(a, b)), plan(up(b, a)))).toEqual({ announce: [], update: [], withdraw: [] });
  });

  it('sends a route that is new or has other attributes', () => {
    const [upA] = plan(up(a)).values();
    const [softA] = plan([{ vip: a, state: 'softfail' }]).values();
    expect(needsSending(undefined, upA!)).toBe(true);
    expect(needsSending(upA, softA!)).toBe(true);
    expect(needsSending(upA, { ...upA! })).toBe(false);
  });
});

describe('toPathMsg', () => {
  it('builds origin IGP, next hop, AS path prepends, MED, communities and large communities', () => {
    const r = only([{ vip: vip('198.51.100.10', { communities: ['64513:1'], largeCommunities: ['1:2:3'], med: 7, prepend: 2 }), state: 'up' }]);
    expect(toPathMsg(r, 4200000001)).toEqual({
      family: { afi: 'AFI_IP', safi: 'SAFI_UNICAST' },
      nlri: { '@type': TYPE.prefix, prefix: '198.51.100.10', prefix_len: 32 },
      pattrs: [
        { '@type': 'type.googleapis.com/apipb.OriginAttribute', origin: 0 },
        { '@type': 'type.googleapis.com/apipb.NextHopAttribute', next_hop: '0.0.0.0' },
        { '@type': 'type.googleapis.com/apipb.AsPathAttribute', segments: [{ type: 'AS_SEQUENCE', numbers: [4200000001, 4200000001] }] },
        { '@type': 'type.googleapis.com/apipb.MultiExitDiscAttribute', med: 7 },
        { '@type': 'type.googleapis.com/apipb.CommunitiesAttribute', communities: [64513 * 65536 + 1] },
        { '@type': 'type.googleapis.com/apipb.LargeCommunitiesAttribute', communities: [{ global_admin: 1, local_data1: 2, local_data2: 3 }] },
      ],
    });
  });

  it('marks withdrawals and puts IPv6 under AFI_IP6', () => {
    const m = toPathMsg(only(up(vip('2001:db8:100::1'))), 64513, true);
    expect(m).toMatchObject({ family: { afi: 'AFI_IP6', safi: 'SAFI_UNICAST' }, nlri: { prefix: '2001:db8:100::1', prefix_len: 128 }, is_withdraw: true });
    expect(m.pattrs).toHaveLength(2);
  });

  it('never builds an IPv6 prefix under AFI_IP or a prefix of the wrong length', () => {
    const r = only(up(vip('198.51.100.10')));
    expect(() => toPathMsg({ ...r, prefix: '2001:db8:100::1' }, 64513)).toThrow(/family, prefix length and next hop disagree/);
    expect(() => toPathMsg({ ...r, prefixLen: 128 }, 64513)).toThrow(/disagree/);
    expect(() => toPathMsg({ ...r, nextHop: '::' }, 64513)).toThrow(/disagree/);
  });
});
