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

export function serviceKeyOf(svc: ServiceConfig): ServiceKey {
  if (svc.fwmark !== undefined) return { kind: 'fwmark', family: svc.vip.includes(':') ? 6 : 4, fwmark: svc.fwmark };
  return addressKey(svc.protocol, svc.vip, svc.port ?? 0);
}

/** The key of one realserver of one service in EffectiveWeights: `<service id> <destination id>`. */
export function realserverKey(svc: ServiceConfig, rs: RealserverConfig): string {
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

/** One desired service from its config; destinations in canonical order. */
export function desiredService(svc: ServiceConfig, weights: EffectiveWeights = NO_WEIGHTS): Service {
  const key = serviceKeyOf(svc);
  const id = serviceId(key);
  let flags = 0;
  for (const f of svc.flags) flags |= flagBit(f) ?? 0;
  const hashed = svc.scheduler === 'mh' || svc.scheduler === 'sh';
  const removeWhenDown = (key.kind === 'addr' && key.protocol === 'udp') || (hashed && (flags & FLAG_1) === 0);
  const list: Dest[] = [];
  for (const rs of svc.realservers) {
    const address = canonical(rs.address, key.family);
    const port = rs.port ?? svc.port ?? 0;
    const did = destId(address, port);
    const eff = weights.size === 0 ? undefined : weights.get(`${id} ${did}`);
    let weight = rs.weight;
    if (eff === 'drain' || (eff === 'down' && removeWhenDown)) continue;
    if (eff === 'down') weight = 0;
    else if (typeof eff === 'number') weight = Math.min(65535, Math.max(0, Math.round(eff)));
    const d: Dest = { id: did, address, port, fwd: rs.forwarding ?? svc.forwarding, weight, upper: rs.upperThreshold ?? 0, lower: rs.lowerThreshold ?? 0 };
    list.push(weight === 0 && rs.weight > 0 && svc.scheduler === 'mh' ? { ...d, nominal: rs.weight } : d);
  }
  const dests = new Map<string, Dest>();
  for (const d of sortDests(list)) dests.set(d.id, d);
  const persistence = persistenceOf(svc, key.family);
  const base = { id, key, scheduler: svc.scheduler, flags, onePacket: svc.onePacket, dests };
  return persistence ? { ...base, persistence } : base;
}

/** The whole desired table, in config order. */
export function desiredTable(services: readonly ServiceConfig[], weights: EffectiveWeights = NO_WEIGHTS): DesiredTable {
  const table = new Map<string, Service>();
  for (const svc of services) {
    const s = desiredService(svc, weights);
    table.set(s.id, s);
  }
  return table;
}

/**
 * A new table with one service replaced (or added): what the coordinator does when one
 * realserver's weight or health changes. The other services keep their objects, so the
 * planner skips them without comparing their destinations.
 */
export function withService(table: DesiredTable, svc: Service): DesiredTable {
  const next = new Map(table);
  next.set(svc.id, svc);
  return next;
}
