/**
 * The incremental derivation against a full one: random sequences of health verdicts, agent
 * reports, link changes and operator overrides, applied as the coordinator applies them (one
 * pass after one or a few events; some events refreshed ahead of the pass, as a health change
 * that may take a VIP down is; overrides derive everything again). After every pass the state
 * kept from pass to pass must equal a full derivation from the same inputs and the previous
 * VIP states, and its IPVS table the full one, service by service.
 */
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../../src/config/load.js';
import type { Config } from '../../../src/config/schema.js';
import { deriveAll, deriveChanges, refresh, targetVip, type Derivation } from '../../../src/coordinator/derivation.js';
import { targetId, type AgentReport, type Overrides, type TargetHealth, type VipState } from '../../../src/coordinator/desired.js';
import type { Service } from '../../../src/ipvs/model.js';
import { rng } from './fakes.js';

function config(): Config {
  const rs = (n: number, extra: Record<string, unknown>[] = []) =>
    Array.from({ length: n }, (_, i) => ({ address: `203.0.113.${i + 1}`, weight: 10 * (i + 1), ...(extra[i] ?? {}) }));
  const nodes = [{ node: 'n1' }, { node: 'n2' }, {}, { node: 'n1' }, { node: 'n3' }];
  const r = validateConfig({
    vipRanges: ['198.51.100.0/24'],
    bgp: { asn: 64513, routerId: '192.0.2.10' },
    nodes: [{ name: 'n1', weight: 50 }, { name: 'n2' }, { name: 'n3', weight: 0 }],
    vips: [
      { address: '198.51.100.10', minHealthy: 2, hysteresis: 1, softFail: { below: 0.7 } },
      { address: '198.51.100.11', minHealthy: '50%', require: 'any' },
      { address: '198.51.100.12', minHealthy: 1, hysteresis: 2 },
      { address: '198.51.100.13', minHealthy: 1 },
    ],
    services: [
      { vip: '198.51.100.10', port: 80, check: { type: 'tcp' }, realservers: rs(5, nodes) },
      { vip: '198.51.100.10', port: 53, protocol: 'udp', check: { type: 'tcp', port: 53 }, realservers: rs(3, nodes) },
      { vip: '198.51.100.11', port: 443, scheduler: 'mh', flags: ['mh-port'], check: { type: 'tcp' }, realservers: rs(4, nodes) },
      { vip: '198.51.100.11', port: 8080, realservers: rs(2) },
      { vip: '198.51.100.12', port: 80, scheduler: 'mh', flags: ['mh-fallback'], check: { type: 'tcp' }, realservers: rs(5, nodes) },
      { vip: '198.51.100.12', fwmark: 7, check: { type: 'tcp', port: 80 }, realservers: rs(3, nodes) },
      { vip: '198.51.100.12', port: 25, check: { type: 'tcp' }, realservers: rs(2) },
    ],
  });
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.config;
}

const serviceJson = (s: Service | undefined): unknown => s && { ...s, dests: [...s.dests.values()] };

const states = (d: Derivation): Map<string, VipState> => new Map([...d.vips].map(([a, v]) => [a, v.state]));

/** What must agree: VIPs, services' health, the IPVS table service by service (in order), and what moved. */
function comparable(d: Derivation): unknown {
  return { vips: [...d.vips], services: d.services, table: [...d.table], moved: [...d.moved].sort() };
}

function run(seed: number, steps: number): void {
  const cfg = config();
  const pick = rng(seed);
  const targets = cfg.services.flatMap((s) => (s.check ? s.realservers.map((r) => targetId(s, r)) : []));
  const addresses = [...new Set(cfg.services.flatMap((s) => s.realservers.map((r) => r.address)))];
  const vips = cfg.vips.map((v) => v.address);
  const health = new Map<string, TargetHealth>();
  const agents = new Map<string, AgentReport>();
  const linkDown = new Set<string>();
  const drained = new Set<string>();
  const drainedNodes = new Set<string>();
  const disabled = new Set<string>();
  const overrides = (): Overrides => ({ drainedRealservers: new Set(drained), drainedNodes: new Set(drainedNodes), disabledVips: new Set(disabled) });
  const inputs = () => ({ config: cfg, health, agents, overrides: overrides(), linkDown });

  // Start: most targets known up, some unknown (as before the first results are in).
  for (const t of targets) if (pick(5) > 0) health.set(t, { up: true, known: true, reason: 'ok' });
  let inc = deriveAll({ ...inputs(), previous: new Map() });
  let full = inc;
  const log: string[] = [];

  for (let step = 0; step < steps; step++) {
    const before = inc;
    const changes = { targets: new Set<string>(), nodes: new Set<string>(), vips: new Set<string>() };
    let everything = false;
    let refreshed = false;
    const events = 1 + (pick(4) === 0 ? pick(4) : 0);
    for (let e = 0; e < events; e++) {
      const kind = pick(20);
      if (kind < 11) {
        const t = targets[pick(targets.length)] as string;
        const up = pick(3) > 0;
        const known = pick(12) > 0;
        health.set(t, { up, known, reason: up ? 'ok' : ['connect ECONNREFUSED', 'timeout'][pick(2)] as string });
        changes.targets.add(t);
        log.push(`health ${t} ${up} ${known}`);
        // A change that may take a VIP down is derived ahead of the pass (vipTakenDown).
        if (!up && pick(2) === 0) {
          inc = refresh(inc, inputs(), changes);
          targetVip(inc, inputs(), t);
          changes.targets.clear();
          refreshed = true;
          log.push('refresh');
        }
      } else if (kind < 14) {
        const node = ['n1', 'n2', 'n3'][pick(3)] as string;
        const report: AgentReport = [{}, { weightPercent: pick(101) }, { drain: true }, { down: true }, { weightPercent: 0 }][pick(5)] as AgentReport;
        agents.set(node, report);
        changes.nodes.add(node);
        log.push(`agent ${node} ${JSON.stringify(report)}`);
      } else if (kind < 16) {
        const v = vips[pick(vips.length)] as string;
        if (linkDown.has(v)) linkDown.delete(v);
        else linkDown.add(v);
        changes.vips.add(v);
        log.push(`link ${v}`);
      } else if (kind < 19) {
        const which = pick(4);
        const toggle = (set: Set<string>, x: string): void => void (set.has(x) ? set.delete(x) : set.add(x));
        if (which === 0) toggle(drained, addresses[pick(addresses.length)] as string);
        else if (which === 1) toggle(drained, `${addresses[pick(addresses.length)]}:${[80, 53, 443][pick(3)]}`);
        else if (which === 2) toggle(drainedNodes, ['n1', 'n2', 'n3'][pick(3)] as string);
        else toggle(disabled, vips[pick(vips.length)] as string);
        everything = true;
        log.push('override');
      } else {
        log.push('pass with nothing new');
      }
    }
    inc = everything ? deriveAll({ ...inputs(), previous: states(inc) }) : deriveChanges(inc, inputs(), changes);
    full = deriveAll({ ...inputs(), previous: states(full) });
    expect(inc.stale.size, `seed ${seed} step ${step}`).toBe(0);
    // An unchanged service stays the same object, so IPVS is handed only what changed (a
    // service refreshed ahead of the pass and changed back since is a new, equal object).
    if (!everything && !refreshed) {
      for (const [id, s] of inc.table) {
        const b = before.table.get(id);
        if (b !== s) expect(serviceJson(s), `seed ${seed} step ${step}: ${id} replaced by an equal service\n${log.slice(-6).join("\n")}`).not.toEqual(serviceJson(b));
      }
    }
    if (JSON.stringify(comparable(inc)) !== JSON.stringify(comparable(full))) {
      expect(comparable(inc), `seed ${seed} step ${step}:\n${log.slice(-12).join('\n')}`).toEqual(comparable(full));
    }
  }
}

describe('incremental derivation', () => {
  it('equals a full derivation after every pass of random health, agent, link and override events', () => {
    for (let seed = 1; seed <= 40; seed++) run(seed, 300);
  });

  it('keeps unchanged services as the same objects and hands IPVS a table derived from the last one', () => {
    const cfg = config();
    const health = new Map<string, TargetHealth>();
    for (const s of cfg.services) for (const r of s.realservers) health.set(targetId(s, r), { up: true, known: true, reason: 'ok' });
    const inp = { config: cfg, health, agents: new Map(), overrides: { drainedRealservers: new Set<string>(), drainedNodes: new Set<string>(), disabledVips: new Set<string>() }, linkDown: new Set<string>() };
    const d0 = deriveAll({ ...inp, previous: new Map() });
    const web = cfg.services[0]!;
    const t = targetId(web, web.realservers[2]!);
    health.set(t, { up: false, known: true, reason: 'timeout' });
    const d1 = deriveChanges(d0, inp, { targets: [t], nodes: [], vips: [] });
    const changed = [...d1.table].filter(([id, s]) => d0.table.get(id) !== s).map(([id]) => id);
    expect(changed).toEqual(['tcp 198.51.100.10:80']);
    // 30 failing (0); 10 and 40 on n1 at 50 %; 50 on n3, at 0 %.
    expect([...d1.table.get('tcp 198.51.100.10:80')!.dests.values()].map((x) => x.weight)).toEqual([5, 20, 0, 20, 0]);
    // A verdict that changes nothing replaces nothing.
    health.set(t, { up: false, known: true, reason: 'connect ECONNREFUSED' });
    expect(deriveChanges(d1, inp, { targets: [t], nodes: [], vips: [] }).table).toBe(d1.table);
  });
});
