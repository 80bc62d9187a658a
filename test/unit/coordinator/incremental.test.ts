/**
 * The coordinator's passes re-derive only what changed (derivation.ts): driven through its
 * seams (health verdicts and agent reports, link events, operator overrides) in random order,
 * after every event the table IPVS was last handed and the VIP states must equal a full
 * derivation from scratch, stepped once per pass the coordinator ran, from the same inputs.
 */
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { ArpManager } from '../../../src/arp/manager.js';
import { validateConfig } from '../../../src/config/load.js';
import type { Config } from '../../../src/config/schema.js';
import { Coordinator } from '../../../src/coordinator/coordinator.js';
import { deriveAll } from '../../../src/coordinator/derivation.js';
import { targetId, type AgentReport, type DesiredVip, type TargetHealth, type VipState } from '../../../src/coordinator/desired.js';
import { Journal } from '../../../src/coordinator/journal.js';
import { OverrideStore } from '../../../src/coordinator/overrides.js';
import type { HealthMonitor } from '../../../src/health/index.js';
import type { IpvsManager, ReconcileResult } from '../../../src/ipvs/manager.js';
import type { DesiredTable } from '../../../src/ipvs/model.js';
import { nullLogger } from '../../../src/log/logger.js';
import { FakeHealth, noPresence, rng } from './fakes.js';

function config(): Config {
  const rs = (n: number, nodes: (string | undefined)[] = []) =>
    Array.from({ length: n }, (_, i) => ({ address: `203.0.113.${i + 1}`, weight: 10 * (i + 1), ...(nodes[i] ? { node: nodes[i] } : {}) }));
  const nodes = ['n1', 'n2', undefined, 'n1'];
  const r = validateConfig({
    vipRanges: ['198.51.100.0/24'],
    bgp: { asn: 64513, routerId: '192.0.2.10', withdrawDelay: '10ms' },
    coordinator: { batchDelay: 0, presencePorts: [], resyncInterval: 0 },
    nodes: [{ name: 'n1', weight: 50 }, { name: 'n2' }],
    vips: [
      { address: '198.51.100.10', minHealthy: 2, hysteresis: 1, softFail: { below: 0.7 } },
      { address: '198.51.100.11', minHealthy: '50%', require: 'any', mode: 'arp', interface: 'eth0' },
      { address: '198.51.100.12', minHealthy: 1, hysteresis: 2 },
    ],
    services: [
      { vip: '198.51.100.10', port: 80, check: { type: 'tcp' }, realservers: rs(4, nodes) },
      { vip: '198.51.100.10', port: 53, protocol: 'udp', check: { type: 'tcp', port: 53 }, realservers: rs(3, nodes) },
      { vip: '198.51.100.11', port: 443, scheduler: 'mh', flags: ['mh-port'], check: { type: 'tcp' }, realservers: rs(4, nodes) },
      { vip: '198.51.100.11', port: 8080, realservers: rs(2) },
      { vip: '198.51.100.12', port: 80, scheduler: 'mh', flags: ['mh-fallback'], check: { type: 'tcp' }, realservers: rs(4, nodes) },
    ],
  });
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.config;
}

class FakeIpvs {
  last?: DesiredTable;
  async reconcile(t: DesiredTable): Promise<ReconcileResult> {
    this.last = t;
    return { ops: 0, durationMs: 0, draining: 0, reread: false, refused: [] };
  }
  preview(): string[] {
    return [];
  }
  setVipRanges(): void {}
  resync(): void {}
  stop(): void {}
}

class FakeArp extends EventEmitter {
  setVips(): void {}
  async stop(): Promise<void> {}
}

const vipsOf = (m: ReadonlyMap<string, DesiredVip>): unknown => [...m].map(([a, v]) => [a, v.state, v.reason, v.capacity]);
const tableOf = (t: DesiredTable | undefined): unknown => [...(t ?? [])].map(([id, s]) => [id, { ...s, dests: [...s.dests.values()] }]);

async function run(seed: number, events: number): Promise<void> {
  const cfg = config();
  const pick = rng(seed);
  const health = new FakeHealth();
  const ipvs = new FakeIpvs();
  const arp = new FakeArp();
  const overrides = new OverrideStore();
  const c = new Coordinator(cfg, {
    log: nullLogger,
    journal: new Journal({ capacity: 1000, maxFileBytes: 1 << 20 }),
    health: health as unknown as HealthMonitor,
    ipvs: ipvs as unknown as IpvsManager,
    arp: arp as unknown as ArpManager,
    overrides,
    presence: noPresence,
  });
  // The inputs as the coordinator should have them, kept by the test from what it sends.
  const verdicts = new Map<string, TargetHealth>();
  const agents = new Map<string, AgentReport>();
  const linkDown = new Set<string>();
  const nodeNames = new Set(cfg.nodes.map((n) => n.name));
  const inputs = () => ({ config: cfg, health: verdicts, agents, overrides: overrides.overrides(nodeNames), linkDown });
  const verdict = (id: string, up: boolean, first = false, pending = false): void => {
    verdicts.set(id, { up, known: !(first && pending), reason: up ? 'ok' : 'timeout' });
    health.emit('transition', { id, up, first, pending, reason: up ? 'ok' : 'timeout', at: Date.now() });
  };

  const targets = cfg.services.flatMap((s) => (s.check ? s.realservers.map((r) => targetId(s, r)) : []));
  const addresses = [...new Set(cfg.services.flatMap((s) => s.realservers.map((r) => r.address)))];
  const vipAddrs = cfg.vips.map((v) => v.address);
  let compared = 0;
  try {
    c.start();
    for (const t of targets) verdict(t, pick(4) > 0, true);
    for (let i = 0; i < 200 && !c.serving; i++) await new Promise((r) => setTimeout(r, 5));
    expect(c.serving).toBe(true);
    await c.settle();
    let states = new Map<string, VipState>([...(c.state()?.vips ?? [])].map(([a, v]) => [a, v.state]));

    for (let e = 0; e < events; e++) {
      const passes = c.passes;
      const kind = pick(10);
      let what: string;
      if (kind < 5) {
        const t = targets[pick(targets.length)] as string;
        const up = pick(3) > 0;
        verdict(t, up);
        what = `verdict ${t} ${up}`;
      } else if (kind < 7) {
        const node = ['n1', 'n2'][pick(2)] as string;
        const report = [{ weightPercent: pick(101) }, { drain: true }, { down: true }, {}][pick(4)] as AgentReport;
        agents.set(node, { down: report.down ?? false, drain: report.drain ?? false, ...(report.weightPercent !== undefined ? { weightPercent: report.weightPercent } : {}) });
        health.emit('agent', { id: node, answered: true, down: report.down ?? false, drain: report.drain ?? false, ...(report.weightPercent !== undefined ? { weightPercent: report.weightPercent } : {}), reason: 'reply', at: Date.now() });
        what = `agent ${node} ${JSON.stringify(report)}`;
      } else if (kind < 8) {
        const v = vipAddrs[pick(vipAddrs.length)] as string;
        const up = linkDown.has(v);
        if (up) linkDown.delete(v);
        else linkDown.add(v);
        arp.emit('link', { device: 'eth0', up, vips: [v] });
        what = `link ${v} ${up ? 'up' : 'down'}`;
      } else {
        const [k, target] = [
          ['drain', addresses[pick(addresses.length)]],
          ['undrain', addresses[pick(addresses.length)]],
          ['drain', 'n1'],
          ['undrain', 'n1'],
          ['disable', vipAddrs[pick(vipAddrs.length)]],
          ['enable', vipAddrs[pick(vipAddrs.length)]],
        ][pick(6)] as ['drain' | 'undrain' | 'disable' | 'enable', string];
        // As the daemon does on `vipctl drain|disable ...`.
        if (overrides.set(k, target)) c.schedule(true);
        what = `${k} ${target}`;
      }
      await c.settle();
      // A full derivation per pass the coordinator ran (each saw the same inputs).
      let full;
      for (let p = passes; p < c.passes; p++) {
        full = deriveAll({ ...inputs(), previous: states });
        states = new Map([...full.vips].map(([a, v]) => [a, v.state]));
      }
      if (!full) continue;
      const label = `seed ${seed} event ${e}: ${what}`;
      expect(vipsOf(c.state()!.vips), label).toEqual(vipsOf(full.vips));
      expect(tableOf(ipvs.last), label).toEqual(tableOf(full.table));
      compared++;
    }
    expect(compared).toBeGreaterThan(events / 2);
  } finally {
    await c.stop();
  }
}

describe('coordinator passes, incremental', () => {
  it('hand IPVS the table and reach the VIP states a full derivation gives, event after event', async () => {
    for (let seed = 1; seed <= 8; seed++) await run(seed, 80);
  });

  it('go quiet with an ARP-mode VIP up, and once a VIP that was up is removed by a reload', async () => {
    const cfg = config();
    const health = new FakeHealth();
    const ipvs = new FakeIpvs();
    const c = new Coordinator(cfg, {
      log: nullLogger,
      journal: new Journal({ capacity: 1000, maxFileBytes: 1 << 20 }),
      health: health as unknown as HealthMonitor,
      ipvs: ipvs as unknown as IpvsManager,
      overrides: new OverrideStore(),
      presence: noPresence,
    });
    try {
      c.start();
      for (const s of cfg.services) for (const r of s.realservers) health.emit('transition', { id: targetId(s, r), up: true, first: true, pending: false, reason: 'ok', at: 0 });
      for (let i = 0; i < 200 && !c.isAnnounced('198.51.100.12'); i++) await new Promise((r) => setTimeout(r, 5));
      expect(c.isAnnounced('198.51.100.12')).toBe(true);
      const quiet = async (): Promise<void> => {
        await c.settle();
        const passes = c.passes;
        await new Promise((r) => setTimeout(r, 300));
        expect(c.passes - passes).toBe(0);
      };
      // 198.51.100.11 is ARP-mode and up: it has no route to wait for.
      await quiet();
      await c.reconfigure({ ...cfg, vips: cfg.vips.filter((v) => v.address !== '198.51.100.12'), services: cfg.services.filter((s) => s.vip !== '198.51.100.12') });
      for (let i = 0; i < 200 && ipvs.last?.has('tcp 198.51.100.12:80'); i++) await new Promise((r) => setTimeout(r, 5));
      expect(ipvs.last?.has('tcp 198.51.100.12:80')).toBe(false);
      await quiet();
    } finally {
      await c.stop();
    }
  });
});
