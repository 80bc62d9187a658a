/**
 * vipd's IPVS subsystem against the real kernel (Debian's, in the lab VM). Every scenario runs
 * in a network namespace of its own inside the guest: a fresh director each time. The tests
 * run concurrently in the one VM: most of their time is a node process starting under
 * emulation or a wait for the kernel, which the other tests fill.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Vm } from '../../lab/vm.js';
import { assignment, bundleGuest, saved, scenario, type ServiceInput, type Step, type StepResult } from './vm-scenario.js';

const rs = (address: string, more: Record<string, unknown> = {}): Record<string, unknown> => ({ address, ...more });
const sh = (cmd: string): Step => ({ op: 'sh', cmd });
const SAVE = sh('ipvsadm -Sn');
const THRESHOLDS = sh('ipvsadm -Ln --thresholds --exact');
const ok = (r: StepResult | undefined): StepResult => {
  expect(r?.error, String(r?.error)).toBeUndefined();
  return r as StepResult;
};

// Generous: concurrent tests share the VM's two emulated CPUs, each takes longer alone.
describe.concurrent('IPVS in the real kernel (lab VM)', { timeout: 300_000 }, () => {
  let vm: Vm;

  beforeAll(async () => {
    // Room for a dozen node processes at once (the concurrent tests and the mh directors).
    [vm] = await Promise.all([Vm.boot(undefined, { memoryMb: 1536 }), bundleGuest()]);
  }, 600_000);
  afterAll(async () => {
    await vm?.shutdown();
  });

  it('creates, edits and deletes services and destinations of every kind', async () => {
    const v1: ServiceInput[] = [
      {
        vip: '198.51.100.10',
        port: 80,
        scheduler: 'wrr',
        realservers: [rs('203.0.113.1'), rs('203.0.113.2', { weight: 50, forwarding: 'tunnel' }), rs('203.0.113.3', { port: 8080, forwarding: 'nat' })],
      },
      { vip: '198.51.100.10', port: 53, protocol: 'udp', scheduler: 'rr', onePacket: true, forwarding: 'nat', realservers: [rs('203.0.113.1', { port: 5353 }), rs('203.0.113.2', { port: 5353 })] },
      { vip: '198.51.100.11', port: 9, protocol: 'sctp', scheduler: 'nq', realservers: [rs('203.0.113.1')] },
      { vip: '198.51.100.12', fwmark: 7, scheduler: 'rr', forwarding: 'tunnel', persistence: { timeout: '60s' }, realservers: [rs('203.0.113.4')] },
      { vip: '198.51.100.13', port: 443, scheduler: 'mh', flags: ['mh-fallback', 'mh-port'], realservers: [rs('203.0.113.7'), rs('203.0.113.5'), rs('203.0.113.6')] },
      { vip: '198.51.100.14', port: 80, scheduler: 'sh', flags: ['sh-fallback'], persistence: { timeout: '5m', netmask: 24 }, realservers: [rs('203.0.113.8')] },
    ];
    const v2: ServiceInput[] = [
      {
        vip: '198.51.100.10',
        port: 80,
        scheduler: 'wlc',
        realservers: [rs('203.0.113.1'), rs('203.0.113.2', { weight: 10 }), rs('203.0.113.4', { forwarding: 'nat', port: 8080 })],
      },
      { vip: '198.51.100.10', port: 53, protocol: 'udp', scheduler: 'rr', forwarding: 'nat', realservers: [rs('203.0.113.1', { port: 5353 }), rs('203.0.113.6', { port: 5353 })] },
      { vip: '198.51.100.12', fwmark: 7, scheduler: 'rr', forwarding: 'tunnel', persistence: { timeout: '120s' }, realservers: [rs('203.0.113.4')] },
      { vip: '198.51.100.13', port: 443, scheduler: 'mh', flags: ['mh-fallback'], realservers: [rs('203.0.113.7'), rs('203.0.113.5'), rs('203.0.113.6')] },
      { vip: '198.51.100.14', port: 80, scheduler: 'dh', realservers: [rs('203.0.113.8')] },
    ];
    const [run] = await scenario(vm, [
      [
        { op: 'start', ipvs: { drainTimeout: 0 } },
        { op: 'reconcile', services: v1 },
        SAVE,
        { op: 'reconcile', services: v1 },
        // Realserver 6 of the mh service fails its checks: weight 0, kept in the table.
        { op: 'reconcile', services: v2, weights: [[3, 2, 'down']] },
        SAVE,
        { op: 'reconcile', services: v2, weights: [[3, 2, 'down']] },
        { op: 'reconcile', services: [] },
        SAVE,
      ],
    ]);
    const r = run as StepResult[];
    expect(ok(r[1]).ops).toBe(6 + 11);
    expect(saved(r[2])).toEqual(
      [
        '-A -t 198.51.100.10:80 -s wrr',
        '-a -t 198.51.100.10:80 -r 203.0.113.1:80 -g -w 100',
        '-a -t 198.51.100.10:80 -r 203.0.113.2:80 -i -w 50 --tun-type ipip',
        '-a -t 198.51.100.10:80 -r 203.0.113.3:8080 -m -w 100',
        '-A -u 198.51.100.10:53 -s rr -o',
        '-a -u 198.51.100.10:53 -r 203.0.113.1:5353 -m -w 100',
        '-a -u 198.51.100.10:53 -r 203.0.113.2:5353 -m -w 100',
        '-A --sctp-service 198.51.100.11:9 -s nq',
        '-a --sctp-service 198.51.100.11:9 -r 203.0.113.1:9 -g -w 100',
        '-A -f 7 -s rr -p 60',
        '-a -f 7 -r 203.0.113.4:0 -i -w 100 --tun-type ipip',
        '-A -t 198.51.100.13:443 -s mh -b mh-fallback,mh-port',
        '-a -t 198.51.100.13:443 -r 203.0.113.5:443 -g -w 100',
        '-a -t 198.51.100.13:443 -r 203.0.113.6:443 -g -w 100',
        '-a -t 198.51.100.13:443 -r 203.0.113.7:443 -g -w 100',
        '-A -t 198.51.100.14:80 -s sh -p 300 -M 255.255.255.0 -b sh-fallback',
        '-a -t 198.51.100.14:80 -r 203.0.113.8:80 -g -w 100',
      ].sort(),
    );
    expect(ok(r[3]).ops).toBe(0);
    // 2 weight drops (.2 on :80, also changing its forwarding; .6 on :443), 2 deletions (.3 on
    // :80, .2 on :53), the SCTP service; 5 service edits; 2 additions.
    expect(ok(r[4]).ops).toBe(12);
    expect(saved(r[5])).toEqual(
      [
        '-A -t 198.51.100.10:80 -s wlc',
        '-a -t 198.51.100.10:80 -r 203.0.113.1:80 -g -w 100',
        '-a -t 198.51.100.10:80 -r 203.0.113.2:80 -g -w 10',
        '-a -t 198.51.100.10:80 -r 203.0.113.4:8080 -m -w 100',
        '-A -u 198.51.100.10:53 -s rr',
        '-a -u 198.51.100.10:53 -r 203.0.113.1:5353 -m -w 100',
        '-a -u 198.51.100.10:53 -r 203.0.113.6:5353 -m -w 100',
        '-A -f 7 -s rr -p 120',
        '-a -f 7 -r 203.0.113.4:0 -i -w 100 --tun-type ipip',
        '-A -t 198.51.100.13:443 -s mh -b mh-fallback',
        '-a -t 198.51.100.13:443 -r 203.0.113.5:443 -g -w 100',
        '-a -t 198.51.100.13:443 -r 203.0.113.6:443 -g -w 0',
        '-a -t 198.51.100.13:443 -r 203.0.113.7:443 -g -w 100',
        '-A -t 198.51.100.14:80 -s dh',
        '-a -t 198.51.100.14:80 -r 203.0.113.8:80 -g -w 100',
      ].sort(),
    );
    expect(ok(r[6]).ops).toBe(0);
    expect(ok(r[7]).ops).toBe(5);
    expect(saved(r[8])).toEqual([]);
  });

  it('programs IPv6 services and connection thresholds', async () => {
    const v6 = (upper: number, lower: number, netmask: number): ServiceInput[] => [
      {
        vip: '2001:db8:100::10',
        port: 443,
        scheduler: 'lc',
        persistence: { timeout: '30s', netmask },
        realservers: [rs('2001:db8:203::2', { weight: 3, upperThreshold: upper, lowerThreshold: lower }), rs('2001:db8:203::1', { forwarding: 'nat' })],
      },
      { vip: '2001:db8:100::12', fwmark: 8, scheduler: 'sh', flags: ['sh-port'], realservers: [rs('2001:db8:203::3', { forwarding: 'tunnel' })] },
      { vip: '2001:db8:100::53', port: 53, protocol: 'udp', scheduler: 'mh', flags: ['mh-port'], realservers: [rs('2001:db8:203::5')] },
      { vip: '198.51.100.20', port: 80, realservers: [rs('203.0.113.1', { upperThreshold: 100, lowerThreshold: 80 })] },
    ];
    const [run] = await scenario(vm, [
      [
        { op: 'start' },
        { op: 'reconcile', services: v6(1000, 10, 64) },
        SAVE,
        THRESHOLDS,
        { op: 'reconcile', services: v6(2000, 0, 48) },
        SAVE,
        THRESHOLDS,
        { op: 'reconcile', services: v6(2000, 0, 48) },
      ],
    ]);
    const r = run as StepResult[];
    expect(ok(r[1]).ops).toBe(9);
    expect(saved(r[2])).toEqual(
      [
        '-A -t [2001:db8:100::10]:443 -s lc -p 30 -M 64',
        '-a -t [2001:db8:100::10]:443 -r [2001:db8:203::1]:443 -m -w 100',
        '-a -t [2001:db8:100::10]:443 -r [2001:db8:203::2]:443 -g -w 3',
        '-A -f 8 -6 -s sh -b sh-port',
        '-a -f 8 -6 -r [2001:db8:203::3]:0 -i -w 100 --tun-type ipip',
        '-A -u [2001:db8:100::53]:53 -s mh -b mh-port',
        '-a -u [2001:db8:100::53]:53 -r [2001:db8:203::5]:53 -g -w 100',
        '-A -t 198.51.100.20:80 -s wrr',
        '-a -t 198.51.100.20:80 -r 203.0.113.1:80 -g -w 100',
      ].sort(),
    );
    expect(String(r[3]?.stdout)).toMatch(/-> \[2001:db8:203::2\]:443\s+1000\s+10\s/);
    expect(String(r[3]?.stdout)).toMatch(/-> 203\.0\.113\.1:80\s+100\s+80\s/);
    // Threshold change and netmask change: one -e and one -E.
    expect(ok(r[4]).ops).toBe(2);
    expect(saved(r[5])).toContain('-A -t [2001:db8:100::10]:443 -s lc -p 30 -M 48');
    expect(String(r[6]?.stdout)).toMatch(/-> \[2001:db8:203::2\]:443\s+2000\s+0\s/);
    expect(ok(r[7]).ops).toBe(0);
  });

  it('gives mh the same assignment whatever the config order or history (ECMP consistency)', async () => {
    // 20 realservers; the order they are listed in, and when they were added, must not matter.
    const addrs = [13, 3, 20, 11, 7, 1, 17, 9, 5, 2, 19, 4, 15, 8, 12, 6, 18, 10, 16, 14].map((o) => `203.0.113.${o}`);
    // Weights differ per realserver (they shape mh's table too) and follow the address.
    const weight = (a: string): number => 1 + (Number(a.split('.')[3]) % 3);
    const svc = (list: string[]): ServiceInput[] => [
      {
        vip: '198.51.100.30',
        port: 53,
        protocol: 'udp',
        scheduler: 'mh',
        flags: ['mh-fallback', 'mh-port'],
        realservers: list.map((a) => rs(a, { weight: weight(a) })),
      },
    ];
    const down = (list: string[], a: string): [number, number, 'down'][] => [[0, list.indexOf(a), 'down']];
    // 1,000 flows (one client, mh-port): with 20 realservers a reversed list moves ~1.5 % of them.
    const sports = Array.from({ length: 1000 }, (_, i) => 20000 + i);
    const probe: Step[] = [{ op: 'udp', host: '198.51.100.30', port: 53, sports }, sh('cat /proc/net/ip_vs_conn'), sh('cat /proc/net/ip_vs')];
    const director = async (steps: Step[]): Promise<StepResult[]> => (await scenario(vm, [[...steps, ...probe]], 240_000))[0] as StepResult[];
    const map = (r: StepResult[]): Map<number, string> => assignment(r.at(-2));
    const reversed = [...addrs].reverse();
    const early = (x: string): boolean => x.endsWith('.1') || x.endsWith('.5');

    // Control: the same destinations and weights added by hand in another order (descending,
    // where vipd adds ascending) give another table: the order is what makes the difference.
    const byOctet = (x: string, y: string): number => Number(y.split('.')[3]) - Number(x.split('.')[3]);
    const raw = (w: (a: string) => number): string =>
      `ipvsadm -A -u 198.51.100.30:53 -s mh -b mh-fallback,mh-port && ` +
      [...addrs]
        .sort(byOctet)
        .map((x) => `ipvsadm -a -u 198.51.100.30:53 -r ${x}:53 -g -w ${w(x)}`)
        .join(' && ');
    // Directors run side by side, each in its own namespace (own IPVS table).
    const [a, b, c, d, e, f, g] = await Promise.all([
      director([{ op: 'start' }, { op: 'reconcile', services: svc(addrs) }]),
      director([{ op: 'start' }, { op: 'reconcile', services: svc(reversed) }]),
      // History: starts without .1 and .5 (which sort early), gains them later.
      director([{ op: 'start' }, { op: 'reconcile', services: svc(addrs.filter((x) => !early(x))) }, { op: 'reconcile', services: svc(addrs) }]),
      director([sh(raw(weight))]),
      // A realserver down: a director that saw it serve and one that starts while it is down
      // send its flows to the same places (its table share is kept from its serving weight).
      director([{ op: 'start' }, { op: 'reconcile', services: svc(addrs) }, { op: 'reconcile', services: svc(addrs), weights: down(addrs, '203.0.113.7') }]),
      director([{ op: 'start' }, { op: 'reconcile', services: svc(reversed), weights: down(reversed, '203.0.113.7') }]),
      // Control: added at weight 0 by hand, it gets no share, and its flows land elsewhere.
      director([sh(raw((x) => (x === '203.0.113.7' ? 0 : weight(x))))]),
    ]);

    // Probes lost on a loaded host are tolerated: what counts is that every flow seen by two
    // directors went to the same realserver.
    const same = (x: Map<number, string>, y: Map<number, string>): void => {
      const both = [...x.keys()].filter((k) => y.has(k));
      expect(both.length).toBeGreaterThan(500);
      expect(both.filter((k) => x.get(k) !== y.get(k))).toEqual([]);
    };
    expect(map(a).size).toBeGreaterThan(500);
    expect(new Set(map(a).values()).size).toBe(20);
    same(map(b), map(a));
    same(map(c), map(a));
    // The kernel lists (order and weights of destinations) are identical too; connection
    // counts are left out, since lost probes change them.
    const table = (r: StepResult[]): string[] => String(r.at(-1)?.stdout ?? '').split('\n').map((l: string) => l.trim().split(/\s+/).slice(0, 4).join(' '));
    expect(table(b)).toEqual(table(a));
    expect(table(c)).toEqual(table(a));
    const moved = [...map(d)].filter(([port, dest]) => map(a).get(port) !== dest).length;
    expect(moved).toBeGreaterThan(0);

    // The realserver that is down.
    expect([...map(e).values()]).not.toContain('203.0.113.7:53');
    same(map(f), map(e));
    expect([...map(g)].filter(([port, dest]) => map(e).get(port) !== dest).length).toBeGreaterThan(0);
  }, 600_000);

  it('drains a destination while a TCP connection through the VIP is open, deletes it when it closes', async () => {
    // The realserver is an address of the director itself: the connection runs through IPVS
    // (local client, LOCAL_OUT hook) and is delivered to the local echo server.
    const svc = (list: string[]): ServiceInput[] => [{ vip: '198.51.100.40', port: 80, scheduler: 'wrr', realservers: list.map((a) => rs(a)) }];
    const [run] = await scenario(
      vm,
      [
        [
          sh('ip addr add 198.51.100.40/32 dev d0 && ip addr add 203.0.113.10/32 dev d0 && ip addr add 203.0.113.12/32 dev d0'),
          { op: 'listen', port: 80 },
          { op: 'start', ipvs: { drainTimeout: 300_000 }, drainPollMs: 500 },
          { op: 'reconcile', services: svc(['203.0.113.10']) },
          { op: 'connect', name: 'held', host: '198.51.100.40', port: 80 },
          sh('ipvsadm -Ln --exact'),
          // .10 leaves the config; .11 replaces it.
          { op: 'reconcile', services: svc(['203.0.113.11']) },
          { op: 'untilCounted', timeoutMs: 20_000 },
          sh('ipvsadm -Ln --exact'),
          { op: 'table' },
          { op: 'close', name: 'held' },
          { op: 'untilDrained', timeoutMs: 40_000 },
          SAVE,
          // Drain timeout: a connection still open when it passes does not keep the destination.
          { op: 'start', ipvs: { drainTimeout: 2000 }, drainPollMs: 500 },
          { op: 'reconcile', services: svc(['203.0.113.11', '203.0.113.12']) },
          { op: 'reconcile', services: [{ ...(svc([])[0] as object), scheduler: 'wrr', realservers: [rs('203.0.113.12', { weight: 1 }), rs('203.0.113.11', { weight: 0 })] }] },
          { op: 'connect', name: 'held2', host: '198.51.100.40', port: 80 },
          { op: 'reconcile', services: svc(['203.0.113.11']) },
          { op: 'untilDrained', timeoutMs: 20_000 },
          sh('ipvsadm -Ln --exact'),
        ],
      ],
      240_000,
    );
    const r = run as StepResult[];
    expect(String(r[5]?.stdout)).toMatch(/-> 203\.0\.113\.10:80\s+Route\s+100\s+1\s+0/);
    expect(ok(r[6])).toMatchObject({ ops: 2, draining: 1 });
    // Held open: at weight 0, still there, its connection counted.
    expect(String(r[8]?.stdout)).toMatch(/-> 203\.0\.113\.10:80\s+Route\s+0\s+1\s+0/);
    const dest = ((r[9]?.services as { dests: { id: string; draining?: { active?: number } }[] }[])[0]?.dests ?? []).find((x) => x.id === '203.0.113.10:80');
    expect(dest?.draining?.active).toBe(1);
    // Closed: deleted once the kernel's entry for it expires (CLOSE state, ~10 s).
    expect(r[11]).toMatchObject({ drained: true });
    expect(saved(r[12])).toEqual(['-A -t 198.51.100.40:80 -s wrr', '-a -t 198.51.100.40:80 -r 203.0.113.11:80 -g -w 100']);
    expect(r[16]).toMatchObject({ connected: true });
    expect(r[18]).toMatchObject({ drained: true });
    expect(Number(r[18]?.ms)).toBeLessThan(10_000);
    expect(String(r[19]?.stdout)).not.toContain('203.0.113.12');
  });

  it('deletes a leaving UDP destination at once and flushes its stale conntrack entries', async () => {
    const svc = (list: string[]): ServiceInput[] => [
      { vip: '198.51.100.50', port: 53, protocol: 'udp', scheduler: 'rr', forwarding: 'nat', realservers: list.map((a) => rs(a)) },
    ];
    const ct = sh('conntrack -L -p udp 2>/dev/null | sort');
    const [run] = await scenario(vm, [
      [
        // IPVS registers conntrack hooks in a namespace only for FTP NAT services; one outside
        // vipRanges turns them on here (and must survive untouched).
        sh('ipvsadm -A -t 192.0.2.21:21 -s rr && ipvsadm -a -t 192.0.2.21:21 -r 203.0.113.99:21 -m'),
        { op: 'start', ipvs: { sysctls: { conntrack: 1 }, drainTimeout: 300_000 } },
        { op: 'reconcile', services: svc(['203.0.113.10', '203.0.113.11']) },
        { op: 'udp', host: '198.51.100.50', port: 53, sports: [41000, 41001, 41002, 41003, 41004, 41005] },
        ct,
        { op: 'reconcile', services: svc(['203.0.113.11']) },
        ct,
        SAVE,
      ],
    ]);
    const r = run as StepResult[];
    expect(r[1]?.sysctls).toContainEqual(expect.objectContaining({ name: 'conntrack', after: 1, ok: true }));
    const before = String(r[4]?.stdout);
    expect(before).toMatch(/dst=198\.51\.100\.50 .*src=203\.0\.113\.10 /);
    expect(before).toMatch(/dst=198\.51\.100\.50 .*src=203\.0\.113\.11 /);
    // One deletion and one conntrack flush; no drain for UDP.
    expect(ok(r[5])).toMatchObject({ ops: 2, draining: 0 });
    const after = String(r[6]?.stdout);
    expect(after).not.toMatch(/src=203\.0\.113\.10 /);
    // The other realserver's flows are all still there.
    const flows = (text: string): Set<string> => new Set([...text.matchAll(/sport=(\d+) dport=53 .*src=203\.0\.113\.11 /g)].map((m) => m[1] as string));
    expect(flows(before).size).toBeGreaterThan(0);
    expect(flows(after)).toEqual(flows(before));
    expect(saved(r[7])).toEqual(
      [
        '-A -t 192.0.2.21:21 -s rr',
        '-a -t 192.0.2.21:21 -r 203.0.113.99:21 -m -w 1',
        '-A -u 198.51.100.50:53 -s rr',
        '-a -u 198.51.100.50:53 -r 203.0.113.11:53 -m -w 100',
      ].sort(),
    );
  });

  it('adopts the table after a restart and converges without dropping what is still wanted', async () => {
    const v: ServiceInput[] = [
      { vip: '198.51.100.60', port: 80, scheduler: 'mh', flags: ['mh-port'], realservers: [rs('203.0.113.1', { upperThreshold: 50, lowerThreshold: 5 }), rs('203.0.113.2')] },
      { vip: '2001:db8:100::60', port: 53, protocol: 'udp', scheduler: 'sh', onePacket: true, realservers: [rs('2001:db8:203::1', { forwarding: 'nat', port: 5353 })] },
      { vip: '198.51.100.61', fwmark: 61, scheduler: 'rr', realservers: [rs('203.0.113.3')] },
    ];
    const changed: ServiceInput[] = [{ ...(v[0] as object), realservers: [rs('203.0.113.1', { upperThreshold: 50, lowerThreshold: 5, weight: 70 }), rs('203.0.113.2')] }, v[1] as ServiceInput, v[2] as ServiceInput];
    const phases = await scenario(vm, [
      [{ op: 'start' }, { op: 'reconcile', services: v }, SAVE, THRESHOLDS],
      // A new process: nothing in memory, everything from the kernel.
      [{ op: 'start' }, { op: 'reconcile', services: v }, SAVE, THRESHOLDS, { op: 'reconcile', services: changed }, SAVE],
    ]);
    const [first, second] = phases as [StepResult[], StepResult[]];
    expect(ok(first[1]).ops).toBe(7);
    expect(second[0]?.adopted).toEqual({ services: 3, destinations: 4, owned: 2 });
    expect(ok(second[1])).toMatchObject({ ops: 0, reread: false });
    expect(second[2]?.stdout).toBe(first[2]?.stdout);
    expect(second[3]?.stdout).toBe(first[3]?.stdout);
    expect(ok(second[4]).ops).toBe(1);
    expect(saved(second[5])).toContain('-a -t 198.51.100.60:80 -r 203.0.113.1:80 -g -w 70');
    expect(saved(second[5])).toHaveLength(saved(first[2]).length);
  });

  it('removes orphans inside the VIP ranges and touches nothing outside them', async () => {
    const foreign = [
      '-A -t 192.0.2.80:80 -s rr',
      '-a -t 192.0.2.80:80 -r 203.0.113.1:80 -g -w 1',
      '-A -t [2001:db8:ffff::1]:80 -s wlc',
      '-a -t [2001:db8:ffff::1]:80 -r [2001:db8:203::1]:80 -g -w 5',
      '-A -f 9 -s rr',
      '-a -f 9 -r 203.0.113.1:0 -g -w 1',
    ];
    const orphans = [
      '-A -t 198.51.100.70:80 -s rr',
      '-a -t 198.51.100.70:80 -r 203.0.113.1:80 -g -w 1',
      '-A -u 198.51.100.71:53 -s rr',
      '-a -u 198.51.100.71:53 -r 203.0.113.1:53 -g -w 1',
      '-A -t [2001:db8:100::70]:80 -s rr',
      // Also a wanted service with an unwanted destination.
      '-A -t 198.51.100.72:80 -s wrr',
      '-a -t 198.51.100.72:80 -r 203.0.113.1:80 -g -w 100',
      '-a -t 198.51.100.72:80 -r 203.0.113.9:80 -g -w 100',
    ];
    const [run] = await scenario(vm, [
      [
        sh(`printf '%s\\n' ${[...foreign, ...orphans].map((l) => `'${l}'`).join(' ')} | ipvsadm -R`),
        { op: 'start', ipvs: { drainTimeout: 0 } },
        { op: 'reconcile', services: [{ vip: '198.51.100.72', port: 80, realservers: [rs('203.0.113.1')] }] },
        SAVE,
        { op: 'reconcile', services: [] },
        SAVE,
      ],
    ]);
    const r = run as StepResult[];
    expect(r[1]?.adopted).toEqual({ services: 7, destinations: 7, owned: 4 });
    expect(ok(r[2]).ops).toBe(4);
    expect(saved(r[3])).toEqual([...foreign, '-A -t 198.51.100.72:80 -s wrr', '-a -t 198.51.100.72:80 -r 203.0.113.1:80 -g -w 100'].sort());
    expect(ok(r[4]).ops).toBe(1);
    expect(saved(r[5])).toEqual([...foreign].sort());
  });

  it('applies every batch through one ipvsadm -R; a failed batch or a killed ipvsadm costs only that batch', async () => {
    const two = (weights: [number, number, 'down'][] = []): Step => ({
      op: 'reconcile',
      services: [{ vip: '198.51.100.80', port: 80, scheduler: 'wrr', realservers: [rs('203.0.113.1'), rs('203.0.113.2')] }],
      weights,
    });
    // The driver (the shell's parent) runs the manager: its ipvsadm child is the restore process.
    const restorer = sh('pgrep -P $PPID -x ipvsadm');
    const [run] = await scenario(vm, [
      [
        { op: 'start', ipvs: { drainTimeout: 0 } },
        two(),
        restorer,
        two([[0, 1, 'down']]),
        restorer,
        // Behind vipd's back: the next batch's edit fails in the kernel.
        sh('ipvsadm -D -t 198.51.100.80:80'),
        two(),
        two(),
        SAVE,
        sh('kill -9 $(pgrep -P $PPID -x ipvsadm)'),
        two([[0, 0, 'down']]),
        SAVE,
      ],
    ]);
    const r = run as StepResult[];
    expect(ok(r[1]).ops).toBe(3);
    const pid = String(r[2]?.stdout).trim();
    expect(pid).toMatch(/^\d+$/);
    expect(ok(r[3]).ops).toBe(1);
    expect(String(r[4]?.stdout).trim()).toBe(pid);
    // Only the failing batch reports the kernel's error; the next one re-reads and converges.
    expect(r[6]?.error).toMatch(/Service not defined|No such/);
    expect(ok(r[7]).ops).toBe(3);
    expect(saved(r[8])).toEqual(['-A -t 198.51.100.80:80 -s wrr', '-a -t 198.51.100.80:80 -r 203.0.113.1:80 -g -w 100', '-a -t 198.51.100.80:80 -r 203.0.113.2:80 -g -w 100']);
    // A killed restore process: the next batch starts another and applies in full.
    expect(ok(r[10]).ops).toBe(1);
    expect(saved(r[11])).toEqual(['-A -t 198.51.100.80:80 -s wrr', '-a -t 198.51.100.80:80 -r 203.0.113.1:80 -g -w 0', '-a -t 198.51.100.80:80 -r 203.0.113.2:80 -g -w 100']);
  });

  it('applies and reports net.ipv4.vs settings', async () => {
    const [run] = await scenario(vm, [
      [
        { op: 'start', ipvs: { sysctls: { conn_reuse_mode: 2, sloppy_tcp: 0, am_droprate: 20 } } },
        sh('cd /proc/sys/net/ipv4/vs && for f in conn_reuse_mode sloppy_tcp am_droprate expire_nodest_conn expire_quiescent_template schedule_icmp conntrack; do echo "$f=$(cat $f)"; done'),
      ],
    ]);
    const r = run as StepResult[];
    expect(String(r[1]?.stdout).trim().split('\n')).toEqual([
      'conn_reuse_mode=2',
      'sloppy_tcp=0',
      'am_droprate=20',
      'expire_nodest_conn=1',
      'expire_quiescent_template=1',
      'schedule_icmp=1',
      'conntrack=0',
    ]);
    const report = r[0]?.sysctls as { name: string; ok: boolean; before?: number; after?: number }[];
    expect(report.every((s) => s.ok)).toBe(true);
    expect(report.find((s) => s.name === 'expire_nodest_conn')).toMatchObject({ before: 0, after: 1 });
    expect(r[0]?.modules).toContainEqual({ name: 'ip_vs', state: 'present' });
  });
});
