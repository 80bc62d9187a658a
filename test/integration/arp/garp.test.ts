/**
 * One director and a neighbour on a bridge: addresses, gratuitous ARP as seen on the wire,
 * cadence and concurrency, IPv6 neighbour advertisements, carrier loss, busybox arping.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../../lab/netns.js';
import { alpineBusybox, ArpLab, driverEvents, sleep, until, VIP, VIP6, VIP_RANGES, type WireEvent } from './arplab.js';
import type { DriverConfig } from './driver.js';

const base = (over: Partial<DriverConfig>): DriverConfig => ({
  vips: [{ address: VIP, mode: 'arp', interface: 'eth0' }],
  vipRanges: VIP_RANGES,
  peers: [],
  intervalMs: 1000,
  concurrency: 4,
  ...over,
});

describe('gratuitous ARP on a bridge (namespaces, real veths)', () => {
  let lab: ArpLab;
  let running: Daemon | undefined;

  beforeAll(async () => {
    lab = await ArpLab.create(1);
  });
  afterAll(async () => {
    await lab?.cleanup();
  });
  // A failed test must not leave its director running into the next one.
  afterEach(async () => {
    await running?.stop('SIGKILL');
    running = undefined;
  });

  /** Stops the director's ARP side in order and checks it released its VIPs. */
  async function stop(): Promise<void> {
    const d = running;
    running = undefined;
    if (!d) return;
    await d.stop('SIGTERM');
    const vipsLeft = (await lab.addresses(lab.director(0).ns, 'eth0')).filter((a) => /^(198\.51\.100\.\d+\/32|2001:db8:100:.*\/128)$/.test(a));
    expect(vipsLeft).toEqual([]);
  }

  it('adds the VIP, leaves other addresses alone, and the neighbour learns its MAC from the gratuitous ARP', async () => {
    const d1 = lab.director(0);
    // Left by an earlier run (inside the ranges: removed) and foreign addresses (never touched).
    await lab.lab.ip(d1.ns, ['addr', 'add', '198.51.100.77/32', 'dev', 'eth0']);
    await lab.lab.ip(d1.ns, ['addr', 'add', '203.0.113.9/32', 'dev', 'eth0']);
    await lab.lab.ip(d1.ns, ['addr', 'add', '198.51.100.200/24', 'dev', 'eth0']);
    const cap = await lab.capture();
    running = await lab.start(d1, base({ vips: [{ address: VIP, mode: 'arp', interface: 'eth0' }, { address: '198.51.100.50', mode: 'bgp' }] }));
    const owner = await until('owner event', () => driverEvents(running as Daemon).find((e) => e.event === 'owner' && e.owner === true), 5000);
    expect(owner).toMatchObject({ vip: VIP, device: 'eth0', reason: 'elected' });

    const garp = await until('GARP on the wire', () => cap.events().find((e) => e.kind === 'garp' && e.ip === VIP), 3000);
    expect(garp.src).toBe(d1.mac);
    expect(garp.t - owner.t).toBeLessThan(200);
    expect(await until('neighbour entry', () => lab.neighbour(VIP), 3000)).toBe(d1.mac);

    const addrs = await lab.addresses(d1.ns, 'eth0');
    expect(addrs).toContain(`${VIP}/32`);
    expect(addrs).not.toContain('198.51.100.77/32');
    expect(addrs).toEqual(expect.arrayContaining(['203.0.113.9/32', '198.51.100.200/24', '192.0.2.11/24']));

    // The BGP-mode VIP lives on lo (no dummy driver here) and is never answered for by ARP.
    const ready = driverEvents(running).find((e) => e.event === 'ready');
    expect(ready?.bgpDevice).toBe('lo');
    expect(await lab.addresses(d1.ns, 'lo')).toContain('198.51.100.50/32');
    const probe = await lab.lab.exec(lab.n, 'arping', ['-c', '2', '-w', '3', '-I', 'eth0', '198.51.100.50']);
    expect(probe.stdout).not.toMatch(/reply from/i);

    // The kernel settings that keep it so were applied and reported.
    const sysctl = driverEvents(running).find((e) => e.event === 'sysctl');
    expect(JSON.stringify(sysctl)).toContain('net/ipv4/conf/all/arp_ignore');
    const ignore = await lab.lab.exec(d1.ns, 'sysctl', ['-n', 'net.ipv4.conf.all.arp_ignore']);
    expect(ignore.stdout.trim()).toBe('1');
    await cap.daemon.stop();
    await stop();
    await lab.lab.ip(d1.ns, ['addr', 'del', '203.0.113.9/32', 'dev', 'eth0']);
    await lab.lab.ip(d1.ns, ['addr', 'del', '198.51.100.200/24', 'dev', 'eth0']);
  });

  /** Runs `count` VIPs at `concurrency` for `ms`; returns the GARPs of each complete round. */
  async function rounds(concurrency: number, count: number, ms = 4300): Promise<WireEvent[][]> {
    const vips = Array.from({ length: count }, (_, i) => ({ address: `198.51.100.${101 + i}`, mode: 'arp' as const, interface: 'eth0' }));
    const cap = await lab.capture('arp');
    running = await lab.start(lab.director(0), base({ vips, intervalMs: 1000, concurrency }));
    await sleep(ms);
    const garps = cap.events().filter((e) => e.kind === 'garp');
    const reports = driverEvents(running as Daemon).filter((e) => e.event === 'round');
    await cap.daemon.stop();
    await stop();
    // The GARPs of each round, by the round's start and duration as the director reports them.
    return reports
      .map((r) => garps.filter((g) => g.t >= (r.startedAt as number) - 5 && g.t <= (r.startedAt as number) + (r.durationMs as number) + 20))
      .filter((b) => b.length === count);
  }

  const spread = (r: WireEvent[]): number => (r.at(-1)?.t ?? 0) - (r[0]?.t ?? 0);
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

  it('announces every VIP at a fixed cadence, a round concurrently within the bound (measured on the wire)', async () => {
    const count = 24;
    const bounded = await rounds(4, count);
    // One at a time, a round may overrun the interval on a loaded host: sample longer.
    const serial = await rounds(1, count, 8300);
    expect(bounded.length).toBeGreaterThanOrEqual(3);
    expect(serial.length).toBeGreaterThanOrEqual(2);
    for (const r of bounded) expect(new Set(r.map((g) => g.ip)).size).toBe(count);
    // One at a time, each iputils arping lives >= 20 ms (it is interrupted after 20 ms).
    expect(median(serial.map(spread))).toBeGreaterThanOrEqual((count - 1) * 20);
    // Four at a time: about four times faster than one at a time, and clearly not all at once
    // (24 at once would be more than ten times faster). Relative, so machine load cancels out.
    const ratio = median(serial.map(spread)) / median(bounded.map(spread));
    expect(ratio).toBeGreaterThan(2);
    expect(ratio).toBeLessThan(8);
    // Fixed cadence: rounds start one interval apart, and each VIP is announced once per interval.
    const starts = bounded.map((r) => r[0]?.t ?? 0);
    for (let i = 1; i < starts.length; i++) expect(Math.abs((starts[i] ?? 0) - (starts[i - 1] ?? 0) - 1000)).toBeLessThan(200);
    const one = bounded.map((r) => r.find((g) => g.ip === '198.51.100.101')?.t ?? 0);
    for (let i = 1; i < one.length; i++) expect(Math.abs((one[i] ?? 0) - (one[i - 1] ?? 0) - 1000)).toBeLessThan(250);
    console.log(`round of ${count}: ${Math.round(median(bounded.map(spread)))} ms at 4 at once, ${Math.round(median(serial.map(spread)))} ms one at a time`);
  });

  it('gives an IPv6 VIP an unsolicited neighbour advertisement when it comes up', async () => {
    const d1 = lab.director(0);
    const cap = await lab.capture('icmp6');
    running = await lab.start(d1, base({ vips: [{ address: VIP6, mode: 'arp', interface: 'eth0' }] }));
    const na = await until('unsolicited NA', () => cap.events().find((e) => e.kind === 'na' && e.ip === VIP6), 3000);
    const owner = driverEvents(running).find((e) => e.event === 'owner' && e.owner === true);
    expect(na.src).toBe(d1.mac);
    expect(na.t - (owner?.t ?? 0)).toBeLessThan(300);
    expect(await until('IPv6 neighbour entry', () => lab.neighbour(VIP6), 3000)).toBe(d1.mac);
    const ping = await lab.lab.exec(lab.n, 'ping', ['-6', '-c', '1', '-W', '2', VIP6]);
    expect(ping.code).toBe(0);
    await cap.daemon.stop();
    await stop();
  });

  it('reports the VIP down and stops announcing while its link has no carrier, and takes it back after', async () => {
    const d1 = lab.director(0);
    const cap = await lab.capture('arp');
    running = await lab.start(d1, base({ intervalMs: 300 }));
    await until('owner', () => driverEvents(running as Daemon).some((e) => e.event === 'owner' && e.owner === true), 5000);
    const cut = Date.now();
    await lab.lab.ip(lab.sw, ['link', 'set', 'p1', 'down']);
    const link = await until('link down event', () => driverEvents(running as Daemon).find((e) => e.event === 'link' && e.up === false), 2000);
    expect(link).toMatchObject({ device: 'eth0', reason: 'no-carrier', vips: [VIP] });
    expect(link.t - cut).toBeLessThan(500);
    const released = await until('release', () => driverEvents(running as Daemon).find((e) => e.event === 'owner' && e.owner === false), 2000);
    expect(released).toMatchObject({ vip: VIP, reason: 'ineligible' });
    expect(await lab.addresses(d1.ns, 'eth0')).not.toContain(`${VIP}/32`);
    await sleep(1000);
    const restored = Date.now();
    await lab.lab.ip(lab.sw, ['link', 'set', 'p1', 'up']);
    const back = await until('taken back', () => driverEvents(running as Daemon).find((e) => e.event === 'owner' && e.owner === true && e.t >= restored), 3000);
    await until('GARP after the link returns', () => cap.events().find((e) => e.kind === 'garp' && e.t >= back.t), 2000);
    // Nothing was announced from the moment the VIP was released until the link returned.
    const during = cap.events().filter((e) => e.kind === 'garp' && e.t > released.t && e.t < restored);
    expect(during).toEqual([]);
    await cap.daemon.stop();
    await stop();
  });

  it('drives busybox arping (Alpine) with the same wrapper, detected from its output', async (ctx) => {
    const dir = mkdtempSync(join(tmpdir(), 'vipd-busybox-'));
    try {
      const cmd = alpineBusybox(dir);
      if (!cmd) return ctx.skip();
      const d1 = lab.director(0);
      const cap = await lab.capture('arp');
      running = await lab.start(d1, base({ arping: 'auto', arpingCommand: cmd, intervalMs: 500 }));
      await until('two GARPs from busybox', () => cap.events().filter((e) => e.kind === 'garp' && e.src === d1.mac).length >= 2 || undefined, 3000);
      const results = driverEvents(running).filter((e) => e.event === 'arp');
      expect(results.some((r) => r.status === 'sent')).toBe(true);
      expect(results.filter((r) => r.status !== 'sent' && r.status !== 'unique')).toEqual([]);
      await cap.daemon.stop();
      await stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
