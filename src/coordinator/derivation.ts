/**
 * The desired state the coordinator keeps from pass to pass (pure). A health or agent change
 * re-derives only what it touches: the destinations and IPVS service of each service it
 * changes, and the state of their VIPs; IPVS then gets a table derived from the last one with
 * only those services replaced, so one change costs about the same in a 10,000-service config
 * as in a one-service config (beyond what it changes, a pass copies one reference per service
 * and one entry per VIP). Config, overrides and retiring VIPs are not followed: a change to any
 * of them derives everything again (deriveAll). Both ways give the same state
 * (test/unit/coordinator/derivation.test.ts).
 */
import type { Config, VipConfig } from '../config/schema.js';
import { desiredService as ipvsService, tableId, withServices, type ServiceWeights } from '../ipvs/desired.js';
import type { DesiredTable, Dest, Service } from '../ipvs/model.js';
import { canonicalAddress } from '../util/ip.js';
import { desiredService, serviceId, vipState, type DesiredInputs, type DesiredService, type DesiredVip, type ServiceHealth, type VipState } from './desired.js';

/** Which services each input can change, worked out once per config. */
interface ConfigIndex {
  /** serviceId() → index in config.services (service ids are unique in a valid config). */
  readonly byId: ReadonlyMap<string, number>;
  /** Node name → the services with a realserver on it. */
  readonly byNode: ReadonlyMap<string, readonly number[]>;
  /** Canonical VIP address → its config and its services. */
  readonly byVip: ReadonlyMap<string, { readonly config: VipConfig; readonly services: readonly number[] }>;
  /** Each service's canonical VIP address. */
  readonly vipOf: readonly string[];
}

export interface Derivation {
  readonly config: Config;
  readonly index: ConfigIndex;
  /** Health of each service of config.services, in config order (their destinations are not kept). */
  readonly services: readonly ServiceHealth[];
  /** Each VIP of config, by canonical address. */
  readonly vips: ReadonlyMap<string, DesiredVip>;
  /**
   * VIPs whose state changed in this derivation: the next one evaluates them again even with
   * no change of their own, since hysteresis makes a state depend on the one before.
   */
  readonly moved: ReadonlySet<string>;
  /** VIPs whose services or link changed since their state was evaluated (refresh, then evaluate). */
  readonly stale: ReadonlySet<string>;
  /** IPVS: config's services, then the `kept` ones given to deriveAll. */
  readonly table: DesiredTable;
}

/** What changed since a derivation. */
export interface Changes {
  /** Health targets (targetId) with a new result. */
  readonly targets: Iterable<string>;
  /** Nodes with a new agent report. */
  readonly nodes: Iterable<string>;
  /** VIPs whose link went down or up (any address form). */
  readonly vips: Iterable<string>;
}

/** Inputs besides the previous VIP states, which a derivation carries itself. */
export type ChangeInputs = Omit<DesiredInputs, 'previous'>;

function indexOf(config: Config): ConfigIndex {
  const byId = new Map<string, number>();
  const byNode = new Map<string, number[]>();
  const byVip = new Map<string, { config: VipConfig; services: number[] }>();
  for (const v of config.vips) byVip.set(canonicalAddress(v.address), { config: v, services: [] });
  const vipOf = config.services.map((s, i) => {
    byId.set(serviceId(s), i);
    const vip = canonicalAddress(s.vip);
    byVip.get(vip)?.services.push(i);
    for (const node of new Set(s.realservers.flatMap((r) => (r.node ? [r.node] : [])))) {
      const list = byNode.get(node);
      if (list) list.push(i);
      else byNode.set(node, [i]);
    }
    return vip;
  });
  return { byId, byNode, byVip, vipOf };
}

/** What IPVS gets for each realserver: its weight, or `down` when failing (see ipvs/desired.ts Effective). */
function effective(s: DesiredService): ServiceWeights {
  return s.destinations.map((d) => (d.healthy || d.drained ? d.weight : 'down'));
}

/** A service's health without its destinations: what the derivation keeps of it. */
function healthOf(s: DesiredService): ServiceHealth {
  return { id: s.id, config: s.config, healthy: s.healthy, total: s.total, unknown: s.unknown };
}

/** The state of the VIP at `addr` from its services' health. */
function stateOf(inp: Pick<DesiredInputs, 'overrides' | 'linkDown' | 'previous'>, index: ConfigIndex, services: readonly ServiceHealth[], addr: string): DesiredVip | undefined {
  const v = index.byVip.get(addr);
  return v && vipState(inp, v.config, addr, v.services.map((i) => services[i] as ServiceHealth));
}

/**
 * Everything from the inputs. `kept`: IPVS services to keep in the table though config no
 * longer has them (VIPs being retired); config's own service wins on a shared id.
 */
export function deriveAll(inp: DesiredInputs, kept: readonly Service[] = []): Derivation {
  const index = indexOf(inp.config);
  const shared = new Map<string, Dest>();
  const table = new Map<string, Service>();
  const services = inp.config.services.map((s) => {
    const d = desiredService(inp, s);
    const svc = ipvsService(s, effective(d), shared);
    table.set(svc.id, svc);
    return healthOf(d);
  });
  for (const s of kept) if (!table.has(s.id)) table.set(s.id, s);
  const vips = new Map<string, DesiredVip>();
  const moved = new Set<string>();
  for (const addr of index.byVip.keys()) {
    const v = stateOf(inp, index, services, addr) as DesiredVip;
    vips.set(addr, v);
    if (v.state !== inp.previous.get(addr)) moved.add(addr);
  }
  return { config: inp.config, index, services, vips, moved, stale: new Set(), table };
}

function serviceOfTarget(index: ConfigIndex, target: string): number | undefined {
  const cut = target.indexOf('/');
  return cut < 0 ? undefined : index.byId.get(target.slice(0, cut));
}

/** Whether b has a's destinations, as the same objects in the same order. */
function sameDests(a: Service, b: Service): boolean {
  if (a.dests.size !== b.dests.size) return false;
  const ib = b.dests.values();
  for (const d of a.dests.values()) if (ib.next().value !== d) return false;
  return true;
}

/**
 * `prev` with the services `changes` touch derived again (their health and IPVS services),
 * inp.config being prev.config. VIP states are left to evaluate(): the VIPs concerned are
 * marked stale.
 */
export function refresh(prev: Derivation, inp: ChangeInputs, changes: Changes): Derivation {
  const { index } = prev;
  const dirty = new Set<number>();
  for (const t of changes.targets) {
    const i = serviceOfTarget(index, t);
    if (i !== undefined) dirty.add(i);
  }
  for (const n of changes.nodes) for (const i of index.byNode.get(n) ?? []) dirty.add(i);
  const stale = new Set(prev.stale);
  for (const v of changes.vips) stale.add(canonicalAddress(v));
  if (dirty.size === 0) return { ...prev, stale };

  const services = [...prev.services];
  const replaced: Service[] = [];
  for (const i of dirty) {
    const cfg = inp.config.services[i];
    if (!cfg) continue;
    const d = desiredService(inp, cfg);
    services[i] = healthOf(d);
    stale.add(index.vipOf[i] as string);
    const before = prev.table.get(tableId(cfg));
    // Unchanged destinations come back as the same objects, so an unchanged service is seen as such.
    const svc = ipvsService(cfg, effective(d), new Map(before?.dests));
    if (!before || !sameDests(before, svc)) replaced.push(svc);
  }
  return { ...prev, services, stale, table: replaced.length ? withServices(prev.table, replaced) : prev.table };
}

/** The states of the stale VIPs, and of those that moved last time, evaluated again. */
function evaluate(prev: Derivation, inp: Pick<DesiredInputs, 'overrides' | 'linkDown'>): Derivation {
  const again = new Set([...prev.stale, ...prev.moved]);
  const previous = new Map<string, VipState>();
  for (const addr of again) {
    const state = prev.vips.get(addr)?.state;
    if (state) previous.set(addr, state);
  }
  const vips = new Map(prev.vips);
  const moved = new Set<string>();
  for (const addr of again) {
    const v = stateOf({ ...inp, previous }, prev.index, prev.services, addr);
    if (!v) continue;
    vips.set(addr, v);
    if (v.state !== previous.get(addr)) moved.add(addr);
  }
  return { ...prev, vips, moved, stale: new Set() };
}

/**
 * `prev` brought up to date after `changes`, inp.config being prev.config: what deriveAll
 * would give with prev's VIP states as the previous ones, at the cost of what changed.
 */
export function deriveChanges(prev: Derivation, inp: ChangeInputs, changes: Changes): Derivation {
  return evaluate(refresh(prev, inp, changes), inp);
}

/**
 * The VIP of `target`: its state in `d` and the one evaluate() would give it now (from d's
 * services: refresh d first); undefined for a target of no configured service.
 */
export function targetVip(d: Derivation, inp: Pick<DesiredInputs, 'overrides' | 'linkDown'>, target: string): { was: DesiredVip; now: DesiredVip } | undefined {
  const i = serviceOfTarget(d.index, target);
  const addr = i === undefined ? undefined : d.index.vipOf[i];
  const was = addr === undefined ? undefined : d.vips.get(addr);
  const now = addr === undefined || !was ? undefined : stateOf({ ...inp, previous: new Map([[addr, was.state]]) }, d.index, d.services, addr);
  return was && now ? { was, now } : undefined;
}

/** Whether every checked realserver has a verdict. */
export function settled(d: Derivation): boolean {
  return d.services.every((s) => !s.unknown);
}
