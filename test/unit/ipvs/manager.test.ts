import { describe, expect, it } from 'vitest';
import { serviceSchema, type ServiceConfig } from '../../../src/config/schema.js';
import { desiredService, desiredTable, realserverKey, withServices, type Effective } from '../../../src/ipvs/desired.js';
import { IpvsError, IpvsManager, type IpvsConfig } from '../../../src/ipvs/manager.js';
import { nullLogger, type Fields, type Logger } from '../../../src/log/logger.js';
import { FakeKernel } from './fake-kernel.js';

const svc = (s: Record<string, unknown>): ServiceConfig => serviceSchema.parse(s);
const cfg = (more: Partial<IpvsConfig> = {}): IpvsConfig => ({
  ipvsadm: 'ipvsadm',
  sysctls: {},
  drainTimeout: 300_000,
  modules: [],
  vipRanges: ['198.51.100.0/24', '2001:db8:100::/64'],
  ...more,
});

function recorder(): Logger & { events: { level: string; msg: string; fields?: Fields }[] } {
  const events: { level: string; msg: string; fields?: Fields }[] = [];
  const at = (level: string) => (msg: string, fields?: Fields) => void events.push({ level, msg, fields });
  const l = { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug'), child: () => l, events };
  return l;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(5);
  }
}

const web = svc({
  vip: '198.51.100.10',
  port: 80,
  scheduler: 'mh',
  flags: ['mh-fallback', 'mh-port'],
  realservers: [{ address: '203.0.113.2', upperThreshold: 1000, lowerThreshold: 10 }, { address: '203.0.113.1', weight: 50 }],
});
const dns6 = svc({
  vip: '2001:db8:100::53',
  port: 53,
  protocol: 'udp',
  scheduler: 'sh',
  flags: ['sh-port'],
  onePacket: true,
  persistence: { timeout: '30s', netmask: 64 },
  realservers: [{ address: '2001:db8:203::1', forwarding: 'nat', port: 5353 }, { address: '2001:db8:203::2', forwarding: 'nat', port: 5353 }],
});
const mark = svc({ vip: '198.51.100.10', fwmark: 7, scheduler: 'rr', realservers: [{ address: '203.0.113.3', forwarding: 'tunnel' }] });

describe('IpvsManager (simulated kernel)', () => {
  it('starts: loads modules, applies and reports settings, adopts the table', async () => {
    const k = new FakeKernel();
    k.add('-A -t 192.0.2.80:80 -s rr');
    k.add('-a -t 192.0.2.80:80 -r 203.0.113.1:80 -g -w 1');
    const m = new IpvsManager(cfg({ sysctls: { conn_reuse_mode: 2 }, modules: ['ip_vs_ftp'] }), nullLogger, { runner: k });
    const r = await m.start({ schedulers: ['mh', 'wrr'] });
    expect(r.modules).toEqual([
      { name: 'ip_vs', state: 'present' },
      { name: 'ip_vs_mh', state: 'loaded' },
      { name: 'ip_vs_wrr', state: 'present' },
      { name: 'ip_vs_ftp', state: 'loaded' },
    ]);
    expect(r.sysctls.find((s) => s.name === 'conn_reuse_mode')).toEqual({ name: 'conn_reuse_mode', wanted: 2, before: 1, after: 2, ok: true });
    expect(r.sysctls.find((s) => s.name === 'expire_nodest_conn')).toMatchObject({ wanted: 1, before: 0, after: 1, ok: true });
    expect(k.sysctls).toMatchObject({ conntrack: 0, conn_reuse_mode: 2, expire_nodest_conn: 1, expire_quiescent_template: 1, sloppy_tcp: 1, schedule_icmp: 1 });
    expect(r.adopted).toEqual({ services: 1, destinations: 1, owned: 0 });
  });

  it('programs every kind of service in one batch and issues nothing the second time', async () => {
    const k = new FakeKernel();
    const m = new IpvsManager(cfg(), nullLogger, { runner: k });
    await m.start();
    const desired = desiredTable([web, dns6, mark]);
    const first = await m.reconcile(desired);
    expect(first.ops).toBe(8);
    // One batch (the start's probe is an empty one).
    expect(k.calls.filter((c) => c.args[0] === '-R' && c.input)).toHaveLength(1);
    const spawns = k.spawns();
    expect(await m.reconcile(desired)).toMatchObject({ ops: 0, draining: 0 });
    expect(await m.reconcile(desiredTable([web, dns6, mark]))).toMatchObject({ ops: 0 });
    expect(k.spawns()).toBe(spawns);

    // A restarted vipd adopts the same table: nothing to do either (thresholds included).
    const again = new IpvsManager(cfg(), nullLogger, { runner: k });
    await again.start();
    expect(await again.reconcile(desiredTable([web, dns6, mark]))).toMatchObject({ ops: 0 });
    const view = again.table();
    expect(view.known).toBe(true);
    expect(view.services.find((s) => s.id === 'tcp 198.51.100.10:80')).toMatchObject({
      owned: true,
      scheduler: 'mh',
      flags: ['mh-fallback', 'mh-port'],
      dests: [
        { id: '203.0.113.1:80', fwd: 'dr', weight: 50, upper: 0, lower: 0 },
        { id: '203.0.113.2:80', fwd: 'dr', weight: 100, upper: 1000, lower: 10 },
      ],
    });
    expect(view.services.find((s) => s.id === 'udp [2001:db8:100::53]:53')).toMatchObject({ onePacket: true, persistence: { timeout: 30, netmask: '64' } });
  });

  it('applies one weight change as exactly one operation', async () => {
    const k = new FakeKernel();
    const m = new IpvsManager(cfg(), nullLogger, { runner: k });
    await m.start();
    const weights = new Map<string, Effective>();
    let desired = desiredTable([web, dns6, mark], weights);
    await m.reconcile(desired);
    weights.set(realserverKey(web, web.realservers[1]!), 20);
    desired = withServices(desired, [desiredService(web, web.realservers.map((rs) => weights.get(realserverKey(web, rs))))]);
    const r = await m.reconcile(desired);
    expect(r.ops).toBe(1);
    expect(k.calls.at(-1)).toEqual({ file: 'ipvsadm', args: ['-R'], input: '-e -t 198.51.100.10:80 -r 203.0.113.1:80 -g -w 20\n' });
    expect(k.dest('tcp 198.51.100.10:80', '203.0.113.1:80')?.weight).toBe(20);
  });

  it('keeps single changes single through long chains of derived tables', async () => {
    const k = new FakeKernel();
    const m = new IpvsManager(cfg(), nullLogger, { runner: k });
    await m.start();
    const weights = new Map<string, Effective>();
    let desired = desiredTable([web, dns6, mark], weights);
    await m.reconcile(desired);
    for (let i = 0; i < 150; i++) {
      weights.set(realserverKey(web, web.realservers[i % 2]!), 10 + i);
      desired = withServices(desired, [desiredService(web, web.realservers.map((rs) => weights.get(realserverKey(web, rs))))]);
      expect((await m.reconcile(desired)).ops).toBe(1);
    }
    expect(k.dest('tcp 198.51.100.10:80', '203.0.113.2:80')?.weight).toBe(158);
    expect((await m.reconcile(desiredTable([web, dns6, mark], weights))).ops).toBe(0);
  });

  it('removes orphans inside the ranges and leaves everything outside alone', async () => {
    const k = new FakeKernel();
    k.add('-A -t 192.0.2.80:80 -s rr');
    k.add('-a -t 192.0.2.80:80 -r 203.0.113.1:80 -g -w 1');
    k.add('-A -u 198.51.100.99:53 -s rr');
    k.add('-a -u 198.51.100.99:53 -r 203.0.113.1:53 -g -w 1');
    k.add('-A -f 9 -s rr');
    const log = recorder();
    const m = new IpvsManager(cfg(), log, { runner: k });
    await m.start();
    const r = await m.reconcile(desiredTable([web, svc({ vip: '192.0.2.81', port: 80 })]));
    expect(r.refused).toEqual(['tcp 192.0.2.81:80']);
    expect(k.services.map((s) => k.sid(s)).sort()).toEqual(['fwm 9', 'tcp 192.0.2.80:80', 'tcp 198.51.100.10:80']);
    expect(log.events.filter((e) => e.level === 'warn').map((e) => e.fields?.service)).toEqual(['tcp 192.0.2.81:80']);
  });

  it('follows vipRanges changed by a reload: a new range is owned (its orphans removed, its services programmed)', async () => {
    const k = new FakeKernel();
    k.add('-A -t 192.0.2.80:80 -s rr');
    const m = new IpvsManager(cfg(), nullLogger, { runner: k });
    await m.start();
    const wanted = desiredTable([web, svc({ vip: '192.0.2.81', port: 80 })]);
    expect((await m.reconcile(wanted)).refused).toEqual(['tcp 192.0.2.81:80']);
    m.setVipRanges(['198.51.100.0/24', '192.0.2.0/25']);
    const r = await m.reconcile(wanted);
    expect(r.refused).toEqual([]);
    expect(k.services.map((s) => k.sid(s)).sort()).toEqual(['tcp 192.0.2.81:80', 'tcp 198.51.100.10:80']);
  });

  it('repairs drift made behind its back only after resync(): it plans against memory until then', async () => {
    const k = new FakeKernel();
    const m = new IpvsManager(cfg(), nullLogger, { runner: k });
    await m.start();
    const wanted = desiredTable([web]);
    await m.reconcile(wanted);
    k.add('-d -t 198.51.100.10:80 -r 203.0.113.1:80');
    k.add('-e -t 198.51.100.10:80 -r 203.0.113.2:80 -g -w 7 -x 1000 -y 10');
    expect((await m.reconcile(wanted)).ops).toBe(0);
    m.resync();
    const r = await m.reconcile(wanted);
    // .1 comes back, and .2 is added again after it: mh's slots follow the destination order.
    expect(r).toMatchObject({ ops: 3, reread: true });
    expect(k.dest('tcp 198.51.100.10:80', '203.0.113.1:80')?.weight).toBe(50);
    expect(k.dest('tcp 198.51.100.10:80', '203.0.113.2:80')?.weight).toBe(100);
    expect((await m.reconcile(wanted)).ops).toBe(0);
  });

  it('reports the operation that failed, keeps the rest, and retries on the next reconcile', async () => {
    const k = new FakeKernel();
    const m = new IpvsManager(cfg(), nullLogger, { runner: k });
    await m.start();
    k.failLine = (l) => (l.includes('203.0.113.2') ? 'Memory allocation problem' : undefined);
    const err = await m.reconcile(desiredTable([web])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IpvsError);
    expect((err as IpvsError).op).toBe('-a -t 198.51.100.10:80 -r 203.0.113.2:80 -g -w 100 -x 1000 -y 10');
    expect((err as IpvsError).failed).toHaveLength(1);
    expect((err as Error).message).toMatch(/1 of 3 operations failed.*Memory allocation problem/);
    expect(m.table().known).toBe(true); // re-read right away
    expect(k.dest('tcp 198.51.100.10:80', '203.0.113.1:80')).toBeDefined();
    k.failLine = () => undefined;
    const r = await m.reconcile(desiredTable([web]));
    expect(r.ops).toBe(1);
    expect(k.calls.at(-1)?.input).toBe('-a -t 198.51.100.10:80 -r 203.0.113.2:80 -g -w 100 -x 1000 -y 10\n');
    expect((await m.reconcile(desiredTable([web]))).ops).toBe(0);
  });

  it('fails start with the command named when ipvsadm cannot run', async () => {
    const k = new FakeKernel();
    k.missing.add('ipvsadm');
    const m = new IpvsManager(cfg(), nullLogger, { runner: k });
    await expect(m.start()).rejects.toThrow(/read the IPVS table: .*ENOENT/);
    expect(m.table().known).toBe(false);
  });

  it('drains a leaving TCP destination until its connections end', async () => {
    const k = new FakeKernel();
    const m = new IpvsManager(cfg(), nullLogger, { runner: k, drainPollMs: 5 });
    await m.start();
    await m.reconcile(desiredTable([web]));
    k.dest('tcp 198.51.100.10:80', '203.0.113.1:80')!.active = 1;
    const r = await m.reconcile(desiredTable([svc({ ...web, realservers: [web.realservers[0]] })]));
    expect(r).toMatchObject({ ops: 1, draining: 1 });
    expect(k.dest('tcp 198.51.100.10:80', '203.0.113.1:80')?.weight).toBe(0);
    await sleep(50);
    // Polled several times meanwhile: still there, counts visible for status.
    expect(k.dest('tcp 198.51.100.10:80', '203.0.113.1:80')).toBeDefined();
    expect(m.table().services[0]?.dests.find((d) => d.id === '203.0.113.1:80')?.draining).toMatchObject({ active: 1, inactive: 0 });
    const polls = k.calls.filter((c) => c.args.includes('-t') && c.args[0] === '-Ln').length;
    expect(polls).toBeGreaterThan(1);
    k.dest('tcp 198.51.100.10:80', '203.0.113.1:80')!.active = 0;
    await until(() => m.table().draining === 0);
    expect(k.dest('tcp 198.51.100.10:80', '203.0.113.1:80')).toBeUndefined();
    await m.stop();
  });

  it('deletes a leaving UDP destination at once and flushes its conntrack entries', async () => {
    const k = new FakeKernel();
    const m = new IpvsManager(cfg({ sysctls: { conntrack: 1 } }), nullLogger, { runner: k });
    await m.start();
    await m.reconcile(desiredTable([dns6]));
    k.flows.push(
      { v6: true, origDst: '2001:db8:100::53', origPort: 53, replySrc: '2001:db8:203::1', replyPort: 5353 },
      { v6: true, origDst: '2001:db8:100::53', origPort: 53, replySrc: '2001:db8:203::2', replyPort: 5353 },
    );
    const r = await m.reconcile(desiredTable([svc({ ...dns6, realservers: [dns6.realservers[1]] })]));
    expect(r).toMatchObject({ ops: 2, draining: 0 });
    expect(k.find('udp [2001:db8:100::53]:53')?.dests).toHaveLength(1);
    expect(k.flows.map((f) => f.replySrc)).toEqual(['2001:db8:203::2']);
  });

  it('retries a failed conntrack flush on the next reconcile', async () => {
    const k = new FakeKernel();
    const m = new IpvsManager(cfg({ sysctls: { conntrack: 1 } }), nullLogger, { runner: k });
    await m.start();
    await m.reconcile(desiredTable([dns6]));
    k.missing.add('conntrack');
    const err = await m.reconcile(new Map()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IpvsError);
    expect((err as IpvsError).op).toMatch(/^conntrack -D -f ipv6 -p udp --orig-dst 2001:db8:100::53/);
    expect(k.find('udp [2001:db8:100::53]:53')).toBeUndefined();
    k.missing.delete('conntrack');
    expect(await m.reconcile(new Map())).toMatchObject({ ops: 1 });
    expect(await m.reconcile(new Map())).toMatchObject({ ops: 0 });
  });

  it('skips the conntrack flush when IPVS does not use conntrack', async () => {
    const k = new FakeKernel();
    const m = new IpvsManager(cfg(), nullLogger, { runner: k });
    await m.start();
    await m.reconcile(desiredTable([dns6]));
    expect(await m.reconcile(new Map())).toMatchObject({ ops: 1 });
    expect(k.spawns('conntrack')).toBe(0);
  });

  it('reads the whole of /proc/net/ip_vs when many services drain at once', async () => {
    const k = new FakeKernel();
    const services = [1, 2, 3, 4, 5, 6].map((i) => svc({ vip: `198.51.100.${i}`, port: 80, realservers: [{ address: '203.0.113.1' }] }));
    const m = new IpvsManager(cfg(), nullLogger, { runner: k, drainPollMs: 5 });
    await m.start();
    await m.reconcile(desiredTable(services));
    expect(await m.reconcile(new Map())).toMatchObject({ draining: 6 });
    await until(() => m.table().services.length === 0);
    expect(k.services).toEqual([]);
    expect(k.calls.filter((c) => c.args[0] === '-Ln' && c.args.includes('-t'))).toEqual([]);
    await m.stop();
  });
});

describe('IpvsManager.preview', () => {
  it('lists what a reconcile would do without doing it', async () => {
    const k = new FakeKernel();
    const m = new IpvsManager(cfg({ sysctls: { conntrack: 1 } }), nullLogger, { runner: k });
    expect(m.preview(desiredTable([web]))).toEqual([]);
    await m.start();
    await m.reconcile(desiredTable([web, dns6, mark]));
    const spawns = k.spawns();
    expect(m.preview(desiredTable([web, mark]))).toEqual([
      '-D -u [2001:db8:100::53]:53',
      'conntrack -D -f ipv6 -p udp --orig-dst 2001:db8:100::53 --orig-port-dst 53',
    ]);
    expect(m.preview(desiredTable([web, dns6, mark]))).toEqual([]);
    expect(k.spawns()).toBe(spawns);
    expect(k.find('udp [2001:db8:100::53]:53')).toBeDefined();
  });
});
