import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../../src/config/load.js';
import type { Config } from '../../../src/config/schema.js';
import {
  desiredState,
  NO_OVERRIDES,
  targetId,
  type AgentReport,
  type DesiredInputs,
  type TargetHealth,
  type VipState,
} from '../../../src/coordinator/desired.js';

function config(vip: Record<string, unknown> = {}, nodes: unknown[] = [{ name: 'n1', weight: 50 }]): Config {
  const r = validateConfig({
    vipRanges: ['198.51.100.0/24'],
    bgp: { asn: 64513, routerId: '192.0.2.10' },
    nodes,
    vips: [{ address: '198.51.100.10', ...vip }],
    services: [
      {
        vip: '198.51.100.10',
        port: 80,
        check: { type: 'tcp' },
        realservers: [{ address: '203.0.113.1', weight: 100, node: 'n1' }, { address: '203.0.113.2', weight: 30 }, { address: '203.0.113.3', weight: 1, node: 'n1' }],
      },
    ],
  });
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.config;
}

function inputs(cfg: Config, up: boolean[], extra: Partial<DesiredInputs> = {}): DesiredInputs {
  const s = cfg.services[0]!;
  const health = new Map<string, TargetHealth>(s.realservers.map((r, i) => [targetId(s, r), { up: up[i] ?? false, known: up[i] !== undefined, reason: up[i] ? 'ok' : 'connect ECONNREFUSED' }]));
  return { config: cfg, health, agents: new Map(), overrides: NO_OVERRIDES, linkDown: new Set(), previous: new Map(), ...extra };
}

const vipOf = (d: ReturnType<typeof desiredState>) => d.vips.get('198.51.100.10')!;

describe('desired state: weights', () => {
  it('is configured weight × node weight × agent factor, 0 when unhealthy', () => {
    const cfg = config();
    const agents = new Map<string, AgentReport>([['n1', { weightPercent: 50 }]]);
    const d = desiredState(inputs(cfg, [true, true, false], { agents }));
    const dest = d.services[0]!.destinations;
    expect(dest.map((x) => x.weight)).toEqual([25, 30, 0]);
    expect(dest[0]).toMatchObject({ configuredWeight: 100, nodeWeight: 50, agentWeight: 50, healthy: true });
    expect(dest[2]!.reason).toBe('connect ECONNREFUSED');
  });

  it('never rounds a positive weight down to 0 (0 means drain)', () => {
    const d = desiredState(inputs(config(), [true, true, true]));
    expect(d.services[0]!.destinations[2]!.weight).toBe(1);
  });

  it('drains realservers, nodes and agent-drained nodes', () => {
    const cfg = config();
    const byAddr = desiredState(inputs(cfg, [true, true, true], { overrides: { ...NO_OVERRIDES, drainedRealservers: new Set(['203.0.113.2']) } }));
    expect(byAddr.services[0]!.destinations.map((x) => x.weight)).toEqual([50, 0, 1]);
    expect(byAddr.services[0]!.destinations[1]!.reason).toBe('drained by operator');
    const byNode = desiredState(inputs(cfg, [true, true, true], { overrides: { ...NO_OVERRIDES, drainedNodes: new Set(['n1']) } }));
    expect(byNode.services[0]!.destinations.map((x) => x.weight)).toEqual([0, 30, 0]);
    const byAgent = desiredState(inputs(cfg, [true, true, true], { agents: new Map([['n1', { drain: true }]]) }));
    expect(byAgent.services[0]!.destinations.map((x) => x.weight)).toEqual([0, 30, 0]);
    expect(byAgent.services[0]!.destinations[0]!.healthy).toBe(true);
    const nodeZero = desiredState(inputs(config({}, [{ name: 'n1', weight: 0 }]), [true, true, true]));
    expect(nodeZero.services[0]!.destinations.map((x) => x.weight)).toEqual([0, 30, 0]);
  });

  it('treats an agent reporting down as unhealthy', () => {
    const d = desiredState(inputs(config(), [true, true, true], { agents: new Map([['n1', { down: true }]]) }));
    expect(d.services[0]!.healthy).toBe(1);
    expect(d.services[0]!.destinations[0]!.reason).toBe('agent: down');
  });
});

describe('desired state: VIP up/down', () => {
  it('is pending until the first health results are in, never announced before', () => {
    expect(vipOf(desiredState(inputs(config(), [true, true]))).state).toBe('pending');
    expect(vipOf(desiredState(inputs(config(), [true, true, false]))).state).toBe('up');
  });

  it('goes down when fewer than minHealthy are healthy', () => {
    const cfg = config({ minHealthy: 2 });
    expect(vipOf(desiredState(inputs(cfg, [true, true, false]))).state).toBe('up');
    const down = vipOf(desiredState(inputs(cfg, [true, false, false])));
    expect(down.state).toBe('down');
    expect(down.reason).toBe('tcp:198.51.100.10:80: 1/3 healthy, needs 2');
  });

  it('takes a percentage of the realservers', () => {
    const cfg = config({ minHealthy: '50%' });
    expect(vipOf(desiredState(inputs(cfg, [true, true, false]))).state).toBe('up');
    expect(vipOf(desiredState(inputs(cfg, [true, false, false]))).state).toBe('down');
  });

  it('needs hysteresis extra realservers to come back, not to stay up', () => {
    const cfg = config({ minHealthy: 1, hysteresis: 1 });
    const prevDown = new Map<string, VipState>([['198.51.100.10', 'down']]);
    const prevUp = new Map<string, VipState>([['198.51.100.10', 'up']]);
    expect(vipOf(desiredState(inputs(cfg, [true, false, false], { previous: prevDown }))).state).toBe('down');
    expect(vipOf(desiredState(inputs(cfg, [true, true, false], { previous: prevDown }))).state).toBe('up');
    expect(vipOf(desiredState(inputs(cfg, [true, false, false], { previous: prevUp }))).state).toBe('up');
    // Going down and staying down give the same reason: what it takes to come back.
    const going = vipOf(desiredState(inputs(cfg, [false, false, false], { previous: prevUp })));
    const staying = vipOf(desiredState(inputs(cfg, [false, false, false], { previous: prevDown })));
    expect(going.reason).toBe('tcp:198.51.100.10:80: 0/3 healthy, needs 2');
    expect(staying.reason).toBe(going.reason);
  });

  it('soft-fails below the configured capacity instead of going down', () => {
    const cfg = config({ softFail: { below: '75%', med: 500 } });
    const d = vipOf(desiredState(inputs(cfg, [true, true, false])));
    expect(d.state).toBe('softfail');
    expect(d.capacity).toBeCloseTo(2 / 3);
    expect(vipOf(desiredState(inputs(cfg, [true, true, true]))).state).toBe('up');
    expect(vipOf(desiredState(inputs(cfg, [false, false, false]))).state).toBe('down');
  });

  it('honours disable overrides and link state', () => {
    const disabled = desiredState(inputs(config(), [true, true, true], { overrides: { ...NO_OVERRIDES, disabledVips: new Set(['198.51.100.10']) } }));
    expect(vipOf(disabled).state).toBe('disabled');
    expect(vipOf(desiredState(inputs(config(), [true, true, true], { linkDown: new Set(['198.51.100.10']) }))).state).toBe('down');
  });

  it('with require: any, one service meeting the minimum is enough', () => {
    const base = config();
    const two: Config = {
      ...base,
      services: [...base.services, { ...base.services[0]!, port: 443, realservers: [{ address: '203.0.113.9', weight: 1 }] }],
    };
    const s2 = two.services[1]!;
    const mk = (require: 'all' | 'any') => {
      const cfg: Config = { ...two, vips: [{ ...two.vips[0]!, require }] };
      const inp = inputs(cfg, [true, false, false]);
      (inp.health as Map<string, TargetHealth>).set(targetId(s2, s2.realservers[0]!), { up: false, known: true, reason: 'timeout after 1000 ms' });
      return vipOf(desiredState(inp)).state;
    };
    expect(mk('all')).toBe('down');
    expect(mk('any')).toBe('up');
  });
});
