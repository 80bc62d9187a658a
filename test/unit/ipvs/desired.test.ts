import { describe, expect, it } from 'vitest';
import { serviceSchema, type ServiceConfig } from '../../../src/config/schema.js';
import { changedSince, desiredService, desiredTable, realserverKey, withServices, type Effective } from '../../../src/ipvs/desired.js';

const svc = (s: Record<string, unknown>): ServiceConfig => serviceSchema.parse(s);

describe('desired table', () => {
  const web = svc({
    vip: '198.51.100.10',
    port: 80,
    scheduler: 'mh',
    flags: ['mh-port', 'mh-fallback'],
    realservers: [
      { address: '203.0.113.12', weight: 50 },
      { address: '203.0.113.2', forwarding: 'tunnel', upperThreshold: 100, lowerThreshold: 10 },
      { address: '203.0.113.11' },
    ],
  });

  it('builds a service with every attribute and destinations in canonical order', () => {
    const s = desiredService(web);
    expect(s.id).toBe('tcp 198.51.100.10:80');
    expect(s.scheduler).toBe('mh');
    expect(s.flags).toBe(3);
    expect(s.onePacket).toBe(false);
    expect(s.persistence).toBeUndefined();
    expect([...s.dests.keys()]).toEqual(['203.0.113.2:80', '203.0.113.11:80', '203.0.113.12:80']);
    expect(s.dests.get('203.0.113.2:80')).toEqual({ id: '203.0.113.2:80', address: '203.0.113.2', port: 80, fwd: 'tunnel', weight: 100, upper: 100, lower: 10 });
    expect(s.dests.get('203.0.113.12:80')?.weight).toBe(50);
  });

  it('gives the same table whatever the config order', () => {
    const shuffled = { ...web, realservers: [...web.realservers].reverse() };
    expect([...desiredService(shuffled).dests.values()]).toEqual([...desiredService(web).dests.values()]);
  });

  it('converts persistence to seconds and masks per family', () => {
    const v4 = desiredService(svc({ vip: '198.51.100.10', port: 443, persistence: { timeout: '5m', netmask: 24 } }));
    expect(v4.persistence).toEqual({ timeout: 300, netmask: '255.255.255.0' });
    const v4d = desiredService(svc({ vip: '198.51.100.10', port: 443, persistence: { timeout: 1500 } }));
    expect(v4d.persistence).toEqual({ timeout: 2, netmask: '255.255.255.255' });
    const v6 = desiredService(svc({ vip: '2001:DB8:100::0:1', port: 443, persistence: { timeout: '30s', netmask: 64 } }));
    expect(v6.id).toBe('tcp [2001:db8:100::1]:443');
    expect(v6.persistence).toEqual({ timeout: 30, netmask: '64' });
  });

  it('keys firewall-mark services by mark and family, with port-0 destinations', () => {
    const s = desiredService(svc({ vip: '2001:db8:100::1', fwmark: 7, realservers: [{ address: '2001:db8:203::1' }] }));
    expect(s.id).toBe('fwm 7 ipv6');
    expect([...s.dests.keys()]).toEqual(['[2001:db8:203::1]:0']);
  });

  it('applies effective weights: numbers, down (TCP weight 0, UDP removed) and drain (removed)', () => {
    const udp = svc({ vip: '198.51.100.10', port: 53, protocol: 'udp', realservers: [{ address: '203.0.113.1' }, { address: '203.0.113.2' }] });
    const weights = new Map<string, Effective>([
      [realserverKey(web, web.realservers[0]!), 'down'],
      [realserverKey(web, web.realservers[1]!), 70000],
      [realserverKey(web, web.realservers[2]!), 'drain'],
      [realserverKey(udp, udp.realservers[0]!), 'down'],
      [realserverKey(udp, udp.realservers[1]!), 12.6],
    ]);
    const t = desiredTable([web, udp], weights);
    const w = t.get('tcp 198.51.100.10:80')!;
    expect([...w.dests.values()].map((d) => [d.id, d.weight])).toEqual([
      ['203.0.113.2:80', 65535],
      ['203.0.113.12:80', 0],
    ]);
    const u = t.get('udp 198.51.100.10:53')!;
    expect([...u.dests.values()].map((d) => [d.id, d.weight])).toEqual([['203.0.113.2:53', 13]]);
  });

  it('removes failing realservers of mh/sh services without fallback, keeps them (with their serving weight) with it', () => {
    const mh = (flags: string[]) => svc({ vip: '198.51.100.10', port: 80, scheduler: 'mh', flags, realservers: [{ address: '203.0.113.1', weight: 30 }, { address: '203.0.113.2' }] });
    const down: Effective[] = ['down'];
    const noFallback = mh(['mh-port']);
    expect([...desiredService(noFallback, down).dests.keys()]).toEqual(['203.0.113.2:80']);
    const fallback = mh(['mh-fallback']);
    expect(desiredService(fallback, down).dests.get('203.0.113.1:80')).toMatchObject({ weight: 0, nominal: 30 });
    const sh = svc({ ...noFallback, scheduler: 'sh', flags: [] });
    expect([...desiredService(sh, down).dests.keys()]).toEqual(['203.0.113.2:80']);
    // Other schedulers: kept at weight 0, nothing to remember.
    const wrr = svc({ ...noFallback, scheduler: 'wrr', flags: [] });
    expect(desiredService(wrr, down).dests.get('203.0.113.1:80')).toEqual({ id: '203.0.113.1:80', address: '203.0.113.1', port: 80, fwd: 'dr', weight: 0, upper: 0, lower: 0 });
  });

  it('shares equal destination objects among the services of a table', () => {
    const a = svc({ vip: '198.51.100.10', port: 80, realservers: [{ address: '203.0.113.1' }, { address: '203.0.113.2', weight: 5 }] });
    const b = svc({ vip: '198.51.100.11', port: 80, realservers: [{ address: '203.0.113.1' }, { address: '203.0.113.2', weight: 6 }] });
    const t = desiredTable([a, b]);
    const da = t.get('tcp 198.51.100.10:80')!.dests;
    const db = t.get('tcp 198.51.100.11:80')!.dests;
    expect(db.get('203.0.113.1:80')).toBe(da.get('203.0.113.1:80'));
    expect(db.get('203.0.113.2:80')).not.toBe(da.get('203.0.113.2:80'));
    expect(db.get('203.0.113.2:80')?.weight).toBe(6);
  });

  it('takes weights by realserver (in config order, or by realserverKey for a table) and reuses equal destinations it is handed', () => {
    const other = svc({ vip: '198.51.100.11', port: 80, realservers: [{ address: '203.0.113.1' }, { address: '203.0.113.2' }] });
    const t = desiredTable([web, other], new Map<string, Effective>([[realserverKey(other, other.realservers[0]!), 'down'], [realserverKey(other, other.realservers[1]!), 40]]));
    const changed = t.get('tcp 198.51.100.11:80')!;
    expect([...changed.dests.values()].map((d) => d.weight)).toEqual([0, 40]);
    expect(desiredService(other, ['down', 40])).toEqual(changed);
    // Handed the last service's destinations, an unchanged one comes back as the same object.
    const next = desiredService(other, ['down', 50], new Map(changed.dests));
    expect(next.dests.get('203.0.113.1:80')).toBe(changed.dests.get('203.0.113.1:80'));
    expect(next.dests.get('203.0.113.2:80')?.weight).toBe(50);
    // A config parsed again (a reload) is another object: built afresh, equal in value.
    const reparsed = svc({ vip: '198.51.100.10', port: 80, scheduler: 'mh', flags: ['mh-port', 'mh-fallback'], realservers: web.realservers });
    expect(desiredService(reparsed)).not.toBe(desiredService(web));
    expect(desiredService(reparsed)).toEqual(desiredService(web));
    expect(realserverKey(reparsed, reparsed.realservers[0]!)).toBe(realserverKey(web, web.realservers[0]!));
  });

  it('replaces one service without touching the others', () => {
    const other = svc({ vip: '198.51.100.11', port: 80, realservers: [{ address: '203.0.113.1' }] });
    const t = desiredTable([web, other]);
    const next = withServices(t, [desiredService({ ...web, scheduler: 'rr', flags: [] })]);
    expect(next.get('tcp 198.51.100.11:80')).toBe(t.get('tcp 198.51.100.11:80'));
    expect(next.get('tcp 198.51.100.10:80')?.scheduler).toBe('rr');
    expect(t.get('tcp 198.51.100.10:80')?.scheduler).toBe('mh');
  });

  it('derives tables without copying them, behaving as maps, and knows what changed', () => {
    const many = Array.from({ length: 100 }, (_, i) => svc({ vip: '198.51.100.10', port: 1000 + i, realservers: [{ address: '203.0.113.1' }] }));
    const base = desiredTable(many);
    const changed = desiredService({ ...many[5]!, scheduler: 'rr' });
    const extra = desiredService(svc({ vip: '198.51.100.11', port: 80 }));
    const d1 = withServices(base, [changed]);
    const d2 = withServices(d1, [extra]);
    expect(d2.size).toBe(101);
    expect(d2.get(changed.id)).toBe(changed);
    expect(d2.has(extra.id)).toBe(true);
    expect(d2.get(many[0]!.vip)).toBeUndefined();
    const ids = [...d2.keys()];
    expect(ids.slice(0, 100)).toEqual([...base.keys()]);
    expect(ids[100]).toBe(extra.id);
    expect([...d2.values()][5]).toBe(changed);
    const seen: string[] = [];
    d2.forEach((_, id) => seen.push(id));
    expect(seen).toEqual(ids);
    expect(new Map(d2).get(changed.id)).toBe(changed);
    expect(base.get(changed.id)).not.toBe(changed);

    expect(changedSince(base, base)).toEqual(new Set());
    expect(changedSince(base, d2)).toEqual(new Set([changed.id, extra.id]));
    expect(changedSince(d1, d2)).toEqual(new Set([changed.id, extra.id]));
    expect(changedSince(d2, base)).toEqual(new Set([changed.id, extra.id]));
    expect(changedSince(base, desiredTable(many))).toBeUndefined();

    // Past 64 changes a derived table becomes a plain one (and the lineage starts again).
    let t = base;
    for (let i = 0; i < 70; i++) t = withServices(t, [desiredService({ ...many[i]!, scheduler: 'rr' })]);
    expect(t.size).toBe(100);
    expect([...t.values()].filter((s) => s.scheduler === 'rr')).toHaveLength(70);
    expect(changedSince(base, t)).toBeUndefined();
  });
});
