/**
 * Desired state (pure): config × health × node weights/agents × operator overrides →
 * each destination's effective weight and each VIP's state. Everything the coordinator
 * hands to IPVS, BGP and ARP is derived here, so it is unit-tested without any I/O.
 */
import type { Config, RealserverConfig, ServiceConfig, VipConfig } from '../config/schema.js';
import { canonicalAddress } from '../util/ip.js';

/** What the health subsystem knows of one check target. `known` is false until the first result. */
export interface TargetHealth {
  up: boolean;
  known: boolean;
  reason: string;
}

/** What a node's weight agent reported last. */
export interface AgentReport {
  /** 0..100; undefined when the agent has not answered with a weight. */
  weightPercent?: number;
  drain?: boolean;
  down?: boolean;
}

export interface Overrides {
  /** Realserver addresses (any port) or `address:port`. */
  drainedRealservers: ReadonlySet<string>;
  drainedNodes: ReadonlySet<string>;
  disabledVips: ReadonlySet<string>;
}

export const NO_OVERRIDES: Overrides = { drainedRealservers: new Set(), drainedNodes: new Set(), disabledVips: new Set() };

export type VipState = 'up' | 'softfail' | 'down' | 'pending' | 'disabled';

export interface DesiredInputs {
  config: Config;
  health: ReadonlyMap<string, TargetHealth>;
  agents: ReadonlyMap<string, AgentReport>;
  overrides: Overrides;
  /** VIPs whose L2 link is down (ARP mode). */
  linkDown: ReadonlySet<string>;
  /** States decided last time, for hysteresis. */
  previous: ReadonlyMap<string, VipState>;
}

export interface DesiredDestination {
  address: string;
  port: number;
  forwarding: 'dr' | 'tunnel' | 'nat';
  upperThreshold?: number;
  lowerThreshold?: number;
  healthy: boolean;
  /** Drained by an operator, a node weight of 0 or its agent: kept at weight 0, not deleted. */
  drained: boolean;
  reason: string;
  configuredWeight: number;
  /** Node weight in percent (100 without a node). */
  nodeWeight: number;
  /** Agent factor in percent (100 without an agent report). */
  agentWeight: number;
  /** What the kernel gets; 0 drains. */
  weight: number;
}

/** What a VIP's state needs to know of one of its services. */
export interface ServiceHealth {
  /** Stable identity: `tcp:198.51.100.10:80` or `fwm:7:4`. */
  id: string;
  config: ServiceConfig;
  healthy: number;
  /** Realservers, healthy or not. */
  total: number;
  /** Some checked realserver has no verdict yet. */
  unknown: boolean;
}

export interface DesiredService extends ServiceHealth {
  destinations: DesiredDestination[];
}

export interface DesiredVip {
  config: VipConfig;
  state: VipState;
  reason: string;
  /** Lowest healthy fraction over the VIP's services, for soft-fail and status. */
  capacity: number;
}

export interface DesiredState {
  services: DesiredService[];
  vips: Map<string, DesiredVip>;
}

export function serviceId(s: ServiceConfig): string {
  const fam = s.vip.includes(':') ? 6 : 4;
  return s.fwmark !== undefined ? `fwm:${s.fwmark}:${fam}` : `${s.protocol}:${canonicalAddress(s.vip)}:${s.port ?? 0}`;
}

export function realserverPort(s: ServiceConfig, r: RealserverConfig): number {
  return r.port ?? s.port ?? 0;
}

/** Health target id of one realserver of one service (`sid`: serviceId(s), if the caller has it). */
export function targetId(s: ServiceConfig, r: RealserverConfig, sid = serviceId(s)): string {
  // One flat string: a template literal keeps a tree of concatenation nodes, several times the
  // size, and 200,000 ids are held as map keys.
  return [sid, '/', canonicalAddress(r.address), ':', realserverPort(s, r)].join('');
}

/** Health, agents, overrides and node weights: what a service's destinations depend on. */
export type ServiceInputs = Pick<DesiredInputs, 'config' | 'health' | 'agents' | 'overrides'>;

const NO_CHECK: TargetHealth = { up: true, known: true, reason: 'no check' };

/** `addr` and `port` are r's canonical address and port; `h` its health (NO_CHECK in an unchecked service). */
function destination(inp: ServiceInputs, s: ServiceConfig, r: RealserverConfig, addr: string, port: number, h: TargetHealth | undefined): DesiredDestination {
  const node = r.node ? inp.config.nodes.find((n) => n.name === r.node) : undefined;
  const agent = r.node ? inp.agents.get(r.node) : undefined;
  const nodeWeight = node?.weight ?? 100;
  const agentWeight = agent?.down || agent?.drain ? 0 : (agent?.weightPercent ?? 100);
  let healthy = h?.up ?? false;
  let reason = h?.reason ?? 'no result yet';
  if (agent?.down) {
    healthy = false;
    reason = 'agent: down';
  }
  const drains = inp.overrides.drainedRealservers;
  // Looked up only when there are drains: a full derivation visits every realserver.
  const operatorDrain = (drains.size > 0 && (drains.has(addr) || drains.has(`${addr}:${port}`))) || (r.node !== undefined && inp.overrides.drainedNodes.has(r.node));
  if (operatorDrain) reason = `drained by operator${healthy ? '' : `; ${reason}`}`;
  else if (agent?.drain) reason = 'agent: drain';
  const product = (r.weight * nodeWeight * agentWeight) / 10_000;
  const drained = operatorDrain || (healthy && product === 0 && r.weight > 0);
  // A positive product never rounds to 0: 0 means drain, and only a 0 factor should drain.
  const weight = !healthy || operatorDrain || product === 0 ? 0 : Math.max(1, Math.round(product));
  const d: DesiredDestination = {
    address: addr,
    port,
    forwarding: r.forwarding ?? s.forwarding,
    healthy: healthy && !operatorDrain,
    drained,
    reason,
    configuredWeight: r.weight,
    nodeWeight,
    agentWeight,
    weight,
  };
  // Set only when configured (no spread of a temporary object for each of 200,000 realservers).
  if (r.upperThreshold !== undefined) d.upperThreshold = r.upperThreshold;
  if (r.lowerThreshold !== undefined) d.lowerThreshold = r.lowerThreshold;
  return d;
}

/** Healthy realservers a service needs for its VIP to be up. */
export function required(minHealthy: number | string, total: number): number {
  if (typeof minHealthy === 'number') return minHealthy;
  const f = Number.parseFloat(minHealthy) / 100;
  return f === 0 ? 0 : Math.max(1, Math.ceil(f * total));
}

/** One service's destinations and health. */
export function desiredService(inp: ServiceInputs, s: ServiceConfig): DesiredService {
  const id = serviceId(s);
  let healthy = 0;
  let unknown = false;
  const destinations = s.realservers.map((r) => {
    const addr = canonicalAddress(r.address);
    const port = realserverPort(s, r);
    // The key is targetId(s, r), without working out the service id again.
    const h = s.check ? inp.health.get(`${id}/${addr}:${port}`) : NO_CHECK;
    if (!h?.known) unknown = true;
    const d = destination(inp, s, r, addr, port, h);
    if (d.healthy) healthy++;
    return d;
  });
  return { id, config: s, destinations, healthy, total: destinations.length, unknown };
}

/** `addr` is vip's canonical address; `mine`: the services of this VIP. */
export function vipState(inp: Pick<DesiredInputs, 'overrides' | 'linkDown' | 'previous'>, vip: VipConfig, addr: string, mine: readonly ServiceHealth[]): DesiredVip {
  const prev = inp.previous.get(addr);
  const capacity = mine.length ? Math.min(...mine.map((s) => (s.total ? s.healthy / s.total : 0))) : 0;
  const out = (state: VipState, reason: string): DesiredVip => ({ config: vip, state, reason, capacity });

  if (inp.overrides.disabledVips.has(addr)) return out('disabled', 'disabled by operator');
  if (inp.linkDown.has(addr)) return out('down', `link ${vip.interface ?? ''} down`.replace('  ', ' '));
  if (!mine.length) return out('down', 'no services');
  const wasUp = prev === 'up' || prev === 'softfail';
  // Never announce before the first health results are in.
  if (!wasUp && mine.some((s) => s.unknown)) return out('pending', 'waiting for first health results');

  const verdicts = mine.map((s) => {
    const need = required(vip.minHealthy, s.total) + (wasUp ? 0 : vip.hysteresis);
    return { s, need, ok: s.healthy >= need };
  });
  const ok = vip.require === 'all' ? verdicts.every((v) => v.ok) : verdicts.some((v) => v.ok);
  if (!ok) {
    const worst = verdicts.find((v) => !v.ok) ?? verdicts[0];
    // Down now: say what it takes to come back (with hysteresis), the same in every pass.
    const back = worst ? worst.need + (wasUp ? vip.hysteresis : 0) : 0;
    return out('down', worst ? `${worst.s.id}: ${worst.s.healthy}/${worst.s.total} healthy, needs ${back}` : 'down');
  }
  if (vip.softFail && capacity < vip.softFail.below && capacity > 0) {
    return out('softfail', `capacity ${Math.round(capacity * 100)}% below ${Math.round(vip.softFail.below * 100)}%`);
  }
  return out('up', `${mine.map((s) => `${s.healthy}/${s.total}`).join(', ')} healthy`);
}

export function desiredState(inp: DesiredInputs): DesiredState {
  // Grouped by VIP in one go: thousands of services behind hundreds of VIPs stay linear.
  const byVip = new Map<string, DesiredService[]>();
  const services = inp.config.services.map((s): DesiredService => {
    const svc = desiredService(inp, s);
    const vip = canonicalAddress(s.vip);
    const list = byVip.get(vip);
    if (list) list.push(svc);
    else byVip.set(vip, [svc]);
    return svc;
  });
  const vips = new Map<string, DesiredVip>();
  for (const v of inp.config.vips) {
    const addr = canonicalAddress(v.address);
    vips.set(addr, vipState(inp, v, addr, byVip.get(addr) ?? []));
  }
  return { services, vips };
}
