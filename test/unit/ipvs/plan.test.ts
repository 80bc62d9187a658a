import { describe, expect, it } from 'vitest';
import { serviceSchema, type ServiceConfig } from '../../../src/config/schema.js';
import { desiredService, desiredTable, type Effective } from '../../../src/ipvs/desired.js';
import type { DesiredTable, KernelTable, ServiceKey } from '../../../src/ipvs/model.js';
import { applyOps, plan, reorderFrom, type Counts, type Drains, type Plan, type PlanInput } from '../../../src/ipvs/plan.js';
import { renderOp } from '../../../src/ipvs/render.js';
import { inPrefix } from '../../../src/util/ip.js';

const svc = (s: Record<string, unknown>): ServiceConfig => serviceSchema.parse(s);
const rs = (...octets: number[]): { address: string }[] => octets.map((o) => ({ address: `203.0.113.${o}` }));
const owns = (k: ServiceKey): boolean => k.kind === 'fwmark' || inPrefix(k.address, '198.51.100.0/24') || inPrefix(k.address, '2001:db8:100::/64');

function run(current: KernelTable, desired: DesiredTable, more: Partial<PlanInput> = {}): Plan {
  return plan({ current, desired, owns, drains: new Map(), counts: new Map(), now: 1000, drainTimeoutMs: 60_000, flushConntrack: false, ...more });
}
const lines = (p: Plan): string[] => p.ops.map((o) => renderOp(o) ?? `conntrack ${o.kind} ${o.svc.id}${'dest' in o && o.dest ? ` ${o.dest.id}` : ''}`);

/** Plans and applies in one go, as the manager does on success. */
function converge(k: KernelTable, desired: DesiredTable, more: Partial<PlanInput> = {}): Plan {
  const p = run(k, desired, more);
  applyOps(k, p.ops, p.converged);
  return p;
}

const web = svc({ vip: '198.51.100.10', port: 80, scheduler: 'wrr', realservers: rs(1, 2) });
const dns = svc({ vip: '198.51.100.10', port: 53, protocol: 'udp', scheduler: 'mh', flags: ['mh-port'], realservers: [...rs(1, 2).map((r) => ({ ...r, forwarding: 'nat' }))] });

describe('plan', () => {
  it('creates services then their destinations in canonical order, and nothing the second time', () => {
    const k: KernelTable = new Map();
    const p = converge(k, desiredTable([svc({ ...web, realservers: rs(2, 10, 1) })]));
    expect(lines(p)).toEqual([
      '-A -t 198.51.100.10:80 -s wrr',
      '-a -t 198.51.100.10:80 -r 203.0.113.1:80 -g -w 100',
      '-a -t 198.51.100.10:80 -r 203.0.113.2:80 -g -w 100',
      '-a -t 198.51.100.10:80 -r 203.0.113.10:80 -g -w 100',
    ]);
    // Same objects: skipped without comparing; rebuilt from config: compared, equal.
    expect(run(k, desiredTable([svc({ ...web, realservers: rs(2, 10, 1) })])).ops).toEqual([]);
  });

  it('orders removals and weight drops, then edits, then additions', () => {
    const k: KernelTable = new Map();
    converge(k, desiredTable([web, svc({ vip: '198.51.100.11', port: 80, realservers: rs(1) })]));
    const next = desiredTable([
      svc({ ...web, scheduler: 'wlc', realservers: [{ address: '203.0.113.1', weight: 10 }, { address: '203.0.113.2', weight: 200 }, { address: '203.0.113.3' }] }),
      svc({ vip: '198.51.100.12', port: 80, realservers: rs(1) }),
    ]);
    expect(lines(run(k, next, { drainTimeoutMs: 0 }))).toEqual([
      '-e -t 198.51.100.10:80 -r 203.0.113.1:80 -g -w 10',
      '-D -t 198.51.100.11:80',
      '-E -t 198.51.100.10:80 -s wlc',
      '-e -t 198.51.100.10:80 -r 203.0.113.2:80 -g -w 200',
      '-a -t 198.51.100.10:80 -r 203.0.113.3:80 -g -w 100',
      '-A -t 198.51.100.12:80 -s wrr',
      '-a -t 198.51.100.12:80 -r 203.0.113.1:80 -g -w 100',
    ]);
  });

  it('edits forwarding and thresholds in place', () => {
    const k: KernelTable = new Map();
    converge(k, desiredTable([web]));
    const p = run(k, desiredTable([svc({ ...web, realservers: [{ address: '203.0.113.1', forwarding: 'tunnel', upperThreshold: 500, lowerThreshold: 50 }, ...rs(2)] })]));
    expect(lines(p)).toEqual(['-e -t 198.51.100.10:80 -r 203.0.113.1:80 -i -w 100 -x 500 -y 50']);
  });

  it('looks only at the services it is told may have changed, and at those draining', () => {
    const k: KernelTable = new Map();
    const a = svc({ vip: '198.51.100.10', port: 80, realservers: rs(1) });
    const b = svc({ vip: '198.51.100.11', port: 80, realservers: rs(1) });
    const c = svc({ vip: '198.51.100.12', port: 80, realservers: rs(1, 2) });
    converge(k, desiredTable([a, b, c]));
    const next = desiredTable([svc({ ...a, realservers: rs(2) }), svc({ ...b, realservers: rs(2) }), svc({ ...c, realservers: rs(1) })], new Map());
    const drains: Drains = new Map([['tcp 198.51.100.12:80', new Map([['203.0.113.2:80', 0]])]]);
    const p = run(k, next, { only: new Set(['tcp 198.51.100.10:80']), drains, now: 120_000 });
    expect(lines(p)).toEqual([
      '-e -t 198.51.100.10:80 -r 203.0.113.1:80 -g -w 0',
      '-d -t 198.51.100.12:80 -r 203.0.113.2:80',
      '-a -t 198.51.100.10:80 -r 203.0.113.2:80 -g -w 100',
    ]);
    // An orphan that is draining is visited too.
    const q = run(k, desiredTable([a, b]), { only: new Set(), drains, now: 120_000 });
    expect(lines(q)).toEqual(['-e -t 198.51.100.12:80 -r 203.0.113.1:80 -g -w 0', '-d -t 198.51.100.12:80 -r 203.0.113.2:80']);
  });

  describe('drain', () => {
    const k = (): KernelTable => {
      const t: KernelTable = new Map();
      converge(t, desiredTable([web]));
      return t;
    };
    const without2 = desiredTable([svc({ ...web, realservers: rs(1) })]);
    const counts = (active: number, inactive: number, at: number): Map<string, Map<string, Counts>> =>
      new Map([['tcp 198.51.100.10:80', new Map([['203.0.113.2:80', { active, inactive, at }]])]]);

    it('puts a leaving TCP destination at weight 0 and remembers when', () => {
      const p = run(k(), without2);
      expect(lines(p)).toEqual(['-e -t 198.51.100.10:80 -r 203.0.113.2:80 -g -w 0']);
      expect(p.drains.get('tcp 198.51.100.10:80')).toEqual(new Map([['203.0.113.2:80', 1000]]));
      expect(p.converged).toEqual([]);
    });

    it('keeps it while connections remain or counts predate the drain, deletes it once idle', () => {
      const t = k();
      const first = converge(t, without2);
      const drains: Drains = first.drains;
      // Still at weight 0: no op, still draining.
      expect(run(t, without2, { drains, now: 5000 }).ops).toEqual([]);
      expect(run(t, without2, { drains, now: 5000, counts: counts(1, 0, 4000) }).drains.size).toBe(1);
      expect(run(t, without2, { drains, now: 5000, counts: counts(0, 1, 4000) }).ops).toEqual([]);
      // Zero counts read before the drain began prove nothing.
      expect(run(t, without2, { drains, now: 5000, counts: counts(0, 0, 1000) }).ops).toEqual([]);
      const done = run(t, without2, { drains, now: 5000, counts: counts(0, 0, 4000) });
      expect(lines(done)).toEqual(['-d -t 198.51.100.10:80 -r 203.0.113.2:80']);
      expect(done.drains.size).toBe(0);
    });

    it('deletes at the drain timeout whatever the counts', () => {
      const t = k();
      const { drains } = converge(t, without2);
      expect(run(t, without2, { drains, now: 60_999, counts: counts(5, 5, 60_000) }).ops).toEqual([]);
      expect(lines(run(t, without2, { drains, now: 61_000, counts: counts(5, 5, 60_000) }))).toEqual(['-d -t 198.51.100.10:80 -r 203.0.113.2:80']);
    });

    it('restores a destination that comes back while draining', () => {
      const t = k();
      const { drains } = converge(t, without2);
      const p = run(t, desiredTable([web]), { drains });
      expect(lines(p)).toEqual(['-e -t 198.51.100.10:80 -r 203.0.113.2:80 -g -w 100']);
      expect(p.drains.size).toBe(0);
    });

    it('deletes leaving UDP destinations at once, with a conntrack flush for NAT ones', () => {
      const t: KernelTable = new Map();
      converge(t, desiredTable([dns]));
      const next = desiredTable([svc({ ...dns, realservers: [{ address: '203.0.113.1', forwarding: 'nat' }] })]);
      expect(lines(run(t, next, { flushConntrack: true }))).toEqual([
        '-d -u 198.51.100.10:53 -r 203.0.113.2:53',
        'conntrack flush-conntrack udp 198.51.100.10:53 203.0.113.2:53',
      ]);
      expect(lines(run(t, next, { flushConntrack: false }))).toEqual(['-d -u 198.51.100.10:53 -r 203.0.113.2:53']);
      // Health: a failing UDP realserver is removed too (a failing TCP one stays at weight 0).
      const down = new Map<string, Effective>([['udp 198.51.100.10:53 203.0.113.2:53', 'down']]);
      expect(lines(run(t, desiredTable([dns], down)))).toEqual(['-d -u 198.51.100.10:53 -r 203.0.113.2:53']);
      const t2: KernelTable = new Map();
      converge(t2, desiredTable([web]));
      expect(lines(run(t2, desiredTable([web], new Map([['tcp 198.51.100.10:80 203.0.113.2:80', 'down']]))))).toEqual(['-e -t 198.51.100.10:80 -r 203.0.113.2:80 -g -w 0']);
    });
  });

  describe('ownership', () => {
    it('drains an orphan TCP service inside the ranges, then deletes it whole', () => {
      const t: KernelTable = new Map();
      converge(t, desiredTable([web]));
      const first = converge(t, new Map());
      expect(lines(first)).toEqual(['-e -t 198.51.100.10:80 -r 203.0.113.1:80 -g -w 0', '-e -t 198.51.100.10:80 -r 203.0.113.2:80 -g -w 0']);
      const c = new Map([['tcp 198.51.100.10:80', new Map([['203.0.113.1:80', { active: 0, inactive: 0, at: 2000 }], ['203.0.113.2:80', { active: 1, inactive: 0, at: 2000 }]])]]);
      expect(lines(run(t, new Map(), { drains: first.drains, counts: c, now: 3000 }))).toEqual(['-d -t 198.51.100.10:80 -r 203.0.113.1:80']);
      expect(lines(run(t, new Map(), { drains: first.drains, now: 61_000 }))).toEqual(['-D -t 198.51.100.10:80']);
    });

    it('deletes an orphan UDP service at once and flushes its flows', () => {
      const t: KernelTable = new Map();
      converge(t, desiredTable([dns]));
      expect(lines(run(t, new Map(), { flushConntrack: true }))).toEqual(['-D -u 198.51.100.10:53', 'conntrack flush-conntrack udp 198.51.100.10:53']);
    });

    it('never touches services outside the ranges, and refuses to create them', () => {
      const t: KernelTable = new Map();
      const foreign = svc({ vip: '192.0.2.80', port: 80, realservers: rs(1) });
      converge(t, desiredTable([foreign]), { owns: () => true });
      const p = run(t, desiredTable([svc({ ...foreign, realservers: rs(1, 2) })]));
      expect(p.ops).toEqual([]);
      expect(p.refused).toEqual(['tcp 192.0.2.80:80']);
      expect(run(t, new Map()).ops).toEqual([]);
    });
  });

  describe('canonical order for hash schedulers', () => {
    const mh = (...o: number[]): ServiceConfig => svc({ vip: '198.51.100.20', port: 80, scheduler: 'mh', realservers: rs(...o) });
    const order = (t: KernelTable): string[] => [...(t.get('tcp 198.51.100.20:80')?.dests.keys() ?? [])];

    it('appends a destination that sorts last', () => {
      const t: KernelTable = new Map();
      converge(t, desiredTable([mh(1, 2)]));
      expect(lines(converge(t, desiredTable([mh(1, 2, 3)])))).toEqual(['-a -t 198.51.100.20:80 -r 203.0.113.3:80 -g -w 100']);
    });

    it('re-adds the destinations after one that sorts earlier, each deletion next to its re-add', () => {
      const t: KernelTable = new Map();
      converge(t, desiredTable([mh(1, 3, 4)]));
      const p = converge(t, desiredTable([mh(1, 2, 3, 4)]));
      expect(lines(p)).toEqual([
        '-a -t 198.51.100.20:80 -r 203.0.113.2:80 -g -w 100',
        '-d -t 198.51.100.20:80 -r 203.0.113.3:80',
        '-a -t 198.51.100.20:80 -r 203.0.113.3:80 -g -w 100',
        '-d -t 198.51.100.20:80 -r 203.0.113.4:80',
        '-a -t 198.51.100.20:80 -r 203.0.113.4:80 -g -w 100',
      ]);
      expect(order(t)).toEqual(['203.0.113.1:80', '203.0.113.2:80', '203.0.113.3:80', '203.0.113.4:80']);
    });

    it('does not reorder for schedulers that do not depend on order', () => {
      const t: KernelTable = new Map();
      converge(t, desiredTable([svc({ ...mh(1, 3), scheduler: 'wrr' })]));
      expect(lines(run(t, desiredTable([svc({ ...mh(1, 2, 3), scheduler: 'wrr' })])))).toEqual(['-a -t 198.51.100.20:80 -r 203.0.113.2:80 -g -w 100']);
    });

    it('reorders when a service switches to an order-sensitive scheduler', () => {
      const t: KernelTable = new Map();
      converge(t, desiredTable([svc({ ...mh(2), scheduler: 'wrr' })]));
      converge(t, desiredTable([svc({ ...mh(1, 2), scheduler: 'wrr' })]));
      expect(order(t)).toEqual(['203.0.113.2:80', '203.0.113.1:80']);
      const p = converge(t, desiredTable([mh(1, 2)]));
      expect(lines(p)[0]).toBe('-E -t 198.51.100.20:80 -s mh');
      expect(order(t)).toEqual(['203.0.113.1:80', '203.0.113.2:80']);
    });

    it('adds a weight-0 mh destination at its serving weight first, so it gets its table share', () => {
      const t: KernelTable = new Map();
      const s = svc({ ...mh(1, 2), flags: ['mh-fallback'] });
      const down = new Map<string, Effective>([['tcp 198.51.100.20:80 203.0.113.2:80', 'down']]);
      expect(lines(converge(t, desiredTable([s], down)))).toEqual([
        '-A -t 198.51.100.20:80 -s mh -b mh-fallback',
        '-a -t 198.51.100.20:80 -r 203.0.113.1:80 -g -w 100',
        '-a -t 198.51.100.20:80 -r 203.0.113.2:80 -g -w 100',
        '-e -t 198.51.100.20:80 -r 203.0.113.2:80 -g -w 0',
      ]);
      expect(t.get('tcp 198.51.100.20:80')?.dests.get('203.0.113.2:80')?.weight).toBe(0);
      expect(run(t, desiredTable([s], down)).ops).toEqual([]);
    });

    it('finds the longest untouched prefix', () => {
      const d = (...o: number[]) => [...desiredService(mh(...o)).dests.values()];
      // In the given (add) order, not sorted.
      const present = (...o: number[]) => new Map(o.map((n) => d(n)[0]!).map((x) => [x.id, x]));
      expect(reorderFrom(present(1, 2, 3), d(1, 2, 3))).toBe(3);
      expect(reorderFrom(present(1, 2), d(1, 2, 3))).toBe(2);
      expect(reorderFrom(present(1, 3), d(1, 2, 3))).toBe(1);
      expect(reorderFrom(present(2, 1, 3), d(1, 2, 3))).toBe(1);
      expect(reorderFrom(present(3), d(1, 2, 3))).toBe(0);
    });

    it('ends in the order a fresh director has, whatever the history (randomised)', () => {
      let seed = 42;
      const rnd = (n: number): number => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        return seed % n;
      };
      for (let round = 0; round < 200; round++) {
        const t: KernelTable = new Map();
        let drains: Drains = new Map();
        let set: number[] = [];
        for (let step = 0; step < 8; step++) {
          const pick = new Set<number>();
          for (let i = 0; i < 1 + rnd(6); i++) pick.add(1 + rnd(12));
          set = [...pick];
          const scheduler = ['mh', 'sh', 'wrr'][rnd(3)] as string;
          const want = desiredTable([svc({ ...mh(...set), scheduler, realservers: set.map((o) => ({ address: `203.0.113.${o}`, weight: 1 + rnd(3) })) })]);
          const p = converge(t, want, { drains, drainTimeoutMs: 0 });
          drains = p.drains;
          expect(run(t, want, { drains, drainTimeoutMs: 0 }).ops).toEqual([]);
          if (scheduler !== 'wrr') {
            const fresh: KernelTable = new Map();
            converge(fresh, want);
            expect(order(t)).toEqual(order(fresh));
          }
        }
      }
    });
  });
});
