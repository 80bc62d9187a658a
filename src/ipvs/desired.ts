/**
 * Config + what the coordinator decided about each realserver → the IPVS table vipd wants
 * (pure). Destinations come out in canonical order whatever the config's order, so every
 * director given the same config programs the same list (see model.ts ORDER_SENSITIVE).
 */
import type { RealserverConfig, ServiceConfig } from '../config/schema.js';
import { canonicalAddress } from '../util/ip.js';
import {
  FLAG_1,
  addressKey,
  destId,
  flagBit,
  fullMask,
  maskToPrefix,
  prefixToMask,
  serviceId,
  sortDests,
  type DesiredTable,
  type Dest,
  type Persistence,
  type Service,
  type ServiceKey,
} from './model.js';

/**
 * What the coordinator decided for one realserver of one service:
 * - a number: serve at this effective weight (health, node percentage and agent applied);
 *   0 keeps the destination in the table without new connections;
 * - `down`: failing its checks. Kept in the table at weight 0, so the set of destinations
 *   (and thus the hash schedulers' tables) does not change when a server flaps and its
 *   established connections may finish. Removed at once instead:
 *   - in UDP services: IPVS keeps a UDP flow on its destination for as long as the client
 *     sends (weight 0 does not move it); only a deleted destination makes the next packet
 *     pick a live one;
 *   - in mh and sh services without the fallback flag: a weight-0 destination keeps its hash
 *     slots and the kernel drops new flows that land on them ("no destination available");
 *     with mh-fallback/sh-fallback they are sent to the next live destination instead;
 * - `drain`: leaving (operator drain, node at 0 %): removed like a realserver deleted from
 *   the config: weight 0, deleted once idle or after ipvs.drainTimeout (UDP: at once).
 * Realservers without an entry serve at their configured weight.
 */
export type Effective = number | 'down' | 'drain';

/** Keyed by realserverKey(). */
export type EffectiveWeights = ReadonlyMap<string, Effective>;

const NO_WEIGHTS: EffectiveWeights = new Map();
/** Effective weights of a service none of whose realservers has one (reads undefined at every index). */
const NO_EFFS: readonly (Effective | undefined)[] = [];

export function serviceKeyOf(svc: ServiceConfig): ServiceKey {
  if (svc.fwmark !== undefined) return { kind: 'fwmark', family: svc.vip.includes(':') ? 6 : 4, fwmark: svc.fwmark };
  return addressKey(svc.protocol, svc.vip, svc.port ?? 0);
}

/** The key of one realserver of one service in EffectiveWeights: `<service id> <destination id>`. */
export function realserverKey(svc: ServiceConfig, rs: RealserverConfig): string {
  const i = svc.realservers.indexOf(rs);
  // The prepared key, so the coordinator's weights map and desiredService share one string.
  if (i >= 0) return prepared(svc).keys[i] as string;
  const key = serviceKeyOf(svc);
  return `${serviceId(key)} ${destIdOf(svc, rs, key)}`;
}

function destIdOf(svc: ServiceConfig, rs: RealserverConfig, key: ServiceKey): string {
  return destId(canonical(rs.address, key.family), rs.port ?? svc.port ?? 0);
}

function canonical(address: string, family: 4 | 6): string {
  return family === 6 ? canonicalAddress(address) : address;
}

function persistenceOf(svc: ServiceConfig, family: 4 | 6): Persistence | undefined {
  const p = svc.persistence;
  if (!p) return undefined;
  // The kernel keeps whole seconds; config is in milliseconds (at least 1000).
  const timeout = Math.max(1, Math.round(p.timeout / 1000));
  let netmask = fullMask(family);
  if (p.netmask !== undefined) {
    if (family === 4) netmask = typeof p.netmask === 'number' ? prefixToMask(p.netmask) : p.netmask;
    else netmask = String(typeof p.netmask === 'number' ? p.netmask : maskToPrefix(p.netmask));
  }
  return { timeout, netmask };
}

/** What a service's config alone determines, worked out once per config object. */
interface Prepared {
  readonly key: ServiceKey;
  readonly id: string;
  readonly flags: number;
  /** Realservers that fail their checks leave the table (see Effective). */
  readonly removeWhenDown: boolean;
  readonly persistence: Persistence | undefined;
  /** realserverKey of each realserver, in config order. */
  readonly keys: readonly string[];
  /** The last service built from this config, and the effective weights it was built with. */
  last?: { readonly effs: readonly (Effective | undefined)[]; readonly service: Service };
}

/**
 * Config objects are immutable values (a reload parses a new one), so what is derived from one
 * is kept with it: the coordinator rebuilds the whole desired table on every pass, and an
 * unchanged service then costs one weights lookup per realserver and comes back as the same
 * object, which the planner skips without comparing (model.ts DesiredTable).
 */
const preparedOf = new WeakMap<ServiceConfig, Prepared>();

function prepared(svc: ServiceConfig): Prepared {
  let p = preparedOf.get(svc);
  if (p) return p;
  const key = serviceKeyOf(svc);
  const id = serviceId(key);
  let flags = 0;
  for (const f of svc.flags) flags |= flagBit(f) ?? 0;
  const hashed = svc.scheduler === 'mh' || svc.scheduler === 'sh';
  p = {
    key,
    id,
    flags,
    removeWhenDown: (key.kind === 'addr' && key.protocol === 'udp') || (hashed && (flags & FLAG_1) === 0),
    persistence: persistenceOf(svc, key.family),
    // join builds flat strings (a template literal keeps a concatenation node per key too).
    keys: svc.realservers.map((rs) => [id, destIdOf(svc, rs, key)].join(' ')),
  };
  preparedOf.set(svc, p);
  return p;
}

/**
 * One desired service from its config; destinations in canonical order. The same config with
 * the same effective weights gives back the same Service object. `shared` lets the services of
 * one table share equal destination objects (they are immutable): the same realservers usually
 * stand behind many VIPs and ports, and 200,000 destinations then cost a few thousand objects.
 */
export function desiredService(svc: ServiceConfig, weights: EffectiveWeights = NO_WEIGHTS, shared?: Map<string, Dest>): Service {
  const p = prepared(svc);
  const { keys, last } = p;
  const none = weights.size === 0;
  if (last) {
    // The common case on a coordinator pass, so no allocation until something differs.
    let i = 0;
    while (i < keys.length && (none ? undefined : weights.get(keys[i] as string)) === last.effs[i]) i++;
    if (i === keys.length) return last.service;
  }
  const effs = none || keys.every((k) => !weights.has(k)) ? NO_EFFS : keys.map((k) => weights.get(k));
  const list: Dest[] = [];
  svc.realservers.forEach((rs, i) => {
    const eff = effs[i];
    if (eff === 'drain' || (eff === 'down' && p.removeWhenDown)) return;
    let weight = rs.weight;
    if (eff === 'down') weight = 0;
    else if (typeof eff === 'number') weight = Math.min(65535, Math.max(0, Math.round(eff)));
    const address = canonical(rs.address, p.key.family);
    const port = rs.port ?? svc.port ?? 0;
    const did = destId(address, port);
    const fwd = rs.forwarding ?? svc.forwarding;
    const upper = rs.upperThreshold ?? 0;
    const lower = rs.lowerThreshold ?? 0;
    const nominal = weight === 0 && rs.weight > 0 && svc.scheduler === 'mh' ? rs.weight : 0;
    let d = shared?.get(did) ?? last?.service.dests.get(did);
    if (!d || d.fwd !== fwd || d.weight !== weight || d.upper !== upper || d.lower !== lower || (d.nominal ?? 0) !== nominal) {
      d = nominal ? { id: did, address, port, fwd, weight, upper, lower, nominal } : { id: did, address, port, fwd, weight, upper, lower };
    }
    shared?.set(did, d);
    list.push(d);
  });
  const dests = new Map<string, Dest>();
  for (const d of sortDests(list)) dests.set(d.id, d);
  const base = { id: p.id, key: p.key, scheduler: svc.scheduler, flags: p.flags, onePacket: svc.onePacket, dests };
  const service: Service = p.persistence ? { ...base, persistence: p.persistence } : base;
  p.last = { effs, service };
  return service;
}

/** The whole desired table, in config order. */
export function desiredTable(services: readonly ServiceConfig[], weights: EffectiveWeights = NO_WEIGHTS): DesiredTable {
  const table = new Map<string, Service>();
  const shared = new Map<string, Dest>();
  for (const svc of services) {
    const s = desiredService(svc, weights, shared);
    table.set(s.id, s);
  }
  return table;
}

/**
 * A table that is another one with some services replaced or added, without copying it.
 * Derived from a derived table, it keeps the same base and a copy of the (few) changes; past
 * MAX_CHANGES it becomes a plain table again. The planner uses the lineage to visit only the
 * services that changed (changedSince), which keeps one weight change in a 10,000-service
 * table as cheap as in a one-service table.
 */
class DerivedTable implements ReadonlyMap<string, Service> {
  readonly size: number;

  constructor(
    readonly base: DesiredTable,
    readonly changes: ReadonlyMap<string, Service>,
  ) {
    let added = 0;
    for (const id of changes.keys()) if (!base.has(id)) added++;
    this.size = base.size + added;
  }

  get(id: string): Service | undefined {
    return this.changes.get(id) ?? this.base.get(id);
  }

  has(id: string): boolean {
    return this.changes.has(id) || this.base.has(id);
  }

  *entries(): MapIterator<[string, Service]> {
    for (const [id, s] of this.base) yield [id, this.changes.get(id) ?? s];
    for (const [id, s] of this.changes) if (!this.base.has(id)) yield [id, s];
  }

  *keys(): MapIterator<string> {
    for (const [id] of this.entries()) yield id;
  }

  *values(): MapIterator<Service> {
    for (const [, s] of this.entries()) yield s;
  }

  [Symbol.iterator](): MapIterator<[string, Service]> {
    return this.entries();
  }

  forEach(fn: (value: Service, key: string, map: ReadonlyMap<string, Service>) => void): void {
    for (const [id, s] of this.entries()) fn(s, id, this);
  }
}

const MAX_CHANGES = 64;

/**
 * A new table with one service replaced (or added): what the coordinator does when one
 * realserver's weight or health changes. The given table is left as it was.
 */
export function withService(table: DesiredTable, svc: Service): DesiredTable {
  const base = table instanceof DerivedTable ? table.base : table;
  const changes = new Map(table instanceof DerivedTable ? table.changes : []);
  changes.set(svc.id, svc);
  if (changes.size <= MAX_CHANGES) return new DerivedTable(base, changes);
  const flat = new Map<string, Service>();
  for (const [id, s] of new DerivedTable(base, changes)) flat.set(id, s);
  return flat;
}

/**
 * Ids of the services that may differ between `from` and `to`, when `to` was derived from
 * `from` (or both from one table) by withService; undefined when the tables are unrelated.
 */
export function changedSince(from: DesiredTable, to: DesiredTable): ReadonlySet<string> | undefined {
  if (from === to) return new Set();
  const baseOf = (t: DesiredTable): DesiredTable => (t instanceof DerivedTable ? t.base : t);
  if (baseOf(from) !== baseOf(to)) return undefined;
  const ids = new Set<string>();
  for (const t of [from, to]) if (t instanceof DerivedTable) for (const id of t.changes.keys()) ids.add(id);
  return ids;
}
