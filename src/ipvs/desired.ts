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

/** The effective weight of each realserver of one service, in config order (undefined: its configured weight). */
export type ServiceWeights = readonly (Effective | undefined)[];

export function serviceKeyOf(svc: ServiceConfig): ServiceKey {
  if (svc.fwmark !== undefined) return { kind: 'fwmark', family: svc.vip.includes(':') ? 6 : 4, fwmark: svc.fwmark };
  return addressKey(svc.protocol, svc.vip, svc.port ?? 0);
}

/** The id of a service's config in the desired table. */
export function tableId(svc: ServiceConfig): string {
  return serviceId(serviceKeyOf(svc));
}

/** The key of one realserver of one service in EffectiveWeights: `<service id> <destination id>`. */
export function realserverKey(svc: ServiceConfig, rs: RealserverConfig): string {
  const key = serviceKeyOf(svc);
  return `${serviceId(key)} ${destId(canonical(rs.address, key.family), rs.port ?? svc.port ?? 0)}`;
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

/**
 * One desired service from its config and its realservers' effective weights; destinations in
 * canonical order. `shared` hands out equal destination objects (they are immutable) and
 * collects new ones: the same realservers usually stand behind many VIPs and ports, so the
 * services of one table sharing them hold 200,000 destinations in a few thousand objects.
 */
export function desiredService(svc: ServiceConfig, weights: ServiceWeights = [], shared?: Map<string, Dest>): Service {
  const key = serviceKeyOf(svc);
  let flags = 0;
  for (const f of svc.flags) flags |= flagBit(f) ?? 0;
  // Realservers that fail their checks leave the table (see Effective).
  const removeWhenDown = (key.kind === 'addr' && key.protocol === 'udp') || ((svc.scheduler === 'mh' || svc.scheduler === 'sh') && (flags & FLAG_1) === 0);
  const list: Dest[] = [];
  svc.realservers.forEach((rs, i) => {
    const eff = weights[i];
    if (eff === 'drain' || (eff === 'down' && removeWhenDown)) return;
    let weight = rs.weight;
    if (eff === 'down') weight = 0;
    else if (typeof eff === 'number') weight = Math.min(65535, Math.max(0, Math.round(eff)));
    const address = canonical(rs.address, key.family);
    const port = rs.port ?? svc.port ?? 0;
    const did = destId(address, port);
    const fwd = rs.forwarding ?? svc.forwarding;
    const upper = rs.upperThreshold ?? 0;
    const lower = rs.lowerThreshold ?? 0;
    const nominal = weight === 0 && rs.weight > 0 && svc.scheduler === 'mh' ? rs.weight : 0;
    let d = shared?.get(did);
    if (!d || d.fwd !== fwd || d.weight !== weight || d.upper !== upper || d.lower !== lower || (d.nominal ?? 0) !== nominal) {
      d = nominal ? { id: did, address, port, fwd, weight, upper, lower, nominal } : { id: did, address, port, fwd, weight, upper, lower };
    }
    shared?.set(did, d);
    list.push(d);
  });
  const dests = new Map<string, Dest>();
  for (const d of sortDests(list)) dests.set(d.id, d);
  const base = { id: serviceId(key), key, scheduler: svc.scheduler, flags, onePacket: svc.onePacket, dests };
  const persistence = persistenceOf(svc, key.family);
  return persistence ? { ...base, persistence } : base;
}

/** The whole desired table, in config order, from effective weights by realserverKey. */
export function desiredTable(services: readonly ServiceConfig[], weights: EffectiveWeights = new Map()): DesiredTable {
  const table = new Map<string, Service>();
  const shared = new Map<string, Dest>();
  for (const svc of services) {
    const s = desiredService(svc, weights.size ? svc.realservers.map((rs) => weights.get(realserverKey(svc, rs))) : [], shared);
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
 * A new table with these services replaced (or added): what the coordinator does when one
 * realserver's weight or health changes. The given table is left as it was.
 */
export function withServices(table: DesiredTable, services: Iterable<Service>): DesiredTable {
  const base = table instanceof DerivedTable ? table.base : table;
  const changes = new Map(table instanceof DerivedTable ? table.changes : []);
  for (const s of services) changes.set(s.id, s);
  if (changes.size <= MAX_CHANGES) return new DerivedTable(base, changes);
  const flat = new Map<string, Service>();
  for (const [id, s] of new DerivedTable(base, changes)) flat.set(id, s);
  return flat;
}

/**
 * Ids of the services that may differ between `from` and `to`, when `to` was derived from
 * `from` (or both from one table) by withServices; undefined when the tables are unrelated.
 */
export function changedSince(from: DesiredTable, to: DesiredTable): ReadonlySet<string> | undefined {
  if (from === to) return new Set();
  const baseOf = (t: DesiredTable): DesiredTable => (t instanceof DerivedTable ? t.base : t);
  if (baseOf(from) !== baseOf(to)) return undefined;
  const ids = new Set<string>();
  for (const t of [from, to]) if (t instanceof DerivedTable) for (const id of t.changes.keys()) ids.add(id);
  return ids;
}
