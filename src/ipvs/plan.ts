/**
 * The planner (pure): kernel table × desired table × drain state → the ordered operations
 * that make the kernel equal to what vipd wants, inside the ranges vipd owns only.
 *
 * Order of the batch (one `ipvsadm -R` per reconcile):
 *   1. removals and weight drops: capacity leaves before anything else changes;
 *   2. edits: service attributes, weight raises, forwarding and threshold changes;
 *   3. additions: new services, then their destinations in canonical order;
 *   4. conntrack flushes for removed UDP destinations (run after the kernel batch, so no
 *      packet can recreate a stale entry pointing at a destination that still exists).
 *
 * Draining: a TCP/SCTP/fwmark destination that leaves the desired table goes to weight 0 and is
 * deleted once counts read after the drain began show no active and no inactive connections,
 * or once drainTimeoutMs has passed. A UDP destination is deleted at once (a weight-0 UDP
 * destination keeps its flows for as long as clients send). In mh and sh services a draining
 * destination keeps its hash slots: new flows landing there go to the next live destination
 * with the fallback flag, and are dropped by the kernel without it, until the drain ends.
 *
 * Canonical order for order-sensitive schedulers (model.ts ORDER_SENSITIVE): the kernel's list
 * must end up in canonical order, as on a director that started from scratch. The kernel puts
 * each added destination at the head of the list, so a destination that sorts before ones
 * already present cannot simply be added: the destinations from it to the end of the canonical
 * order are deleted and re-added in order, each deletion immediately followed by its re-add.
 * A re-added destination keeps its connections (the kernel revives it from its trash with the
 * connections still bound to it). Nothing is re-added when the new destination sorts last.
 * Health rarely reorders: a failing TCP destination stays in the table at weight 0 (see
 * desired.ts Effective); only UDP services and mh/sh services without the fallback flag drop
 * failing destinations and re-add them when they recover.
 *
 * A weight-0 destination added to an mh service is added at its serving weight, then set to 0
 * (see model.ts Dest.nominal), so that it holds the same lookup-table slots as on a director
 * that saw it serving.
 */
import {
  ORDER_SENSITIVE,
  sameDest,
  sameSpec,
  type DesiredTable,
  type Dest,
  type KernelService,
  type KernelTable,
  type Service,
  type ServiceKey,
  type ServiceSpec,
} from './model.js';

export type Op =
  | { readonly kind: 'add-service' | 'edit-service' | 'del-service'; readonly svc: ServiceSpec }
  | { readonly kind: 'add-dest' | 'edit-dest' | 'del-dest'; readonly svc: ServiceSpec; readonly dest: Dest }
  /** Delete conntrack entries of a removed UDP destination (`dest`) or of a whole removed UDP service. */
  | { readonly kind: 'flush-conntrack'; readonly svc: ServiceSpec; readonly dest?: Dest };

/** Connection counts of one destination, and when they were read. */
export interface Counts {
  readonly active: number;
  readonly inactive: number;
  /** Clock time of the read. */
  readonly at: number;
}

/** Destinations being drained: service id → destination id → clock time the drain began. */
export type Drains = ReadonlyMap<string, ReadonlyMap<string, number>>;
/** Last counts read for draining destinations: service id → destination id → counts. */
export type CountsTable = ReadonlyMap<string, ReadonlyMap<string, Counts>>;

export interface PlanInput {
  current: ReadonlyMap<string, KernelService>;
  desired: DesiredTable;
  /** Whether vipd may touch this service (inside its VIP ranges). */
  owns: (key: ServiceKey) => boolean;
  drains: Drains;
  counts: CountsTable;
  now: number;
  drainTimeoutMs: number;
  /** Emit flush-conntrack ops (only useful with net.ipv4.vs.conntrack=1). */
  flushConntrack: boolean;
  /**
   * When given, only these services (and those draining) can differ from the kernel: the rest
   * of `desired` was converged by the last plan applied and the services absent from it were
   * already dealt with (see desired.ts changedSince). Without it every service is looked at.
   */
  only?: ReadonlySet<string>;
}

export interface Plan {
  ops: Op[];
  /** Drain state once the ops are applied. */
  drains: Map<string, ReadonlyMap<string, number>>;
  /** Desired services the kernel will equal once the ops are applied (nothing left draining). */
  converged: Service[];
  /** Desired services outside the owned ranges: never programmed. */
  refused: string[];
}

const isUdp = (key: ServiceKey): boolean => key.kind === 'addr' && key.protocol === 'udp';

export function plan(input: PlanInput): Plan {
  const { current, desired, owns, now } = input;
  const drop: Op[] = [];
  const edit: Op[] = [];
  const add: Op[] = [];
  const flush: Op[] = [];
  const drains = new Map(input.drains);
  const converged: Service[] = [];
  const refused: string[] = [];

  /**
   * Decides for one present destination that is no longer wanted. Returns true when it can
   * be deleted now; otherwise records it as draining and brings its weight to 0.
   */
  /** Adds a destination; see Dest.nominal for why a weight-0 mh destination is added at its serving weight first. */
  const addDest = (svc: ServiceSpec, d: Dest): void => {
    if (d.weight === 0 && d.nominal) {
      add.push({ kind: 'add-dest', svc, dest: { ...d, weight: d.nominal } });
      add.push({ kind: 'edit-dest', svc, dest: d });
    } else {
      add.push({ kind: 'add-dest', svc, dest: d });
    }
  };

  const retire = (svc: ServiceSpec, d: Dest, waiting: Map<string, number>): boolean => {
    const since = input.drains.get(svc.id)?.get(d.id) ?? now;
    const c = input.counts.get(svc.id)?.get(d.id);
    const idle = c !== undefined && c.at > since && c.active + c.inactive === 0;
    if (idle || now - since >= input.drainTimeoutMs) return true;
    waiting.set(d.id, since);
    if (d.weight !== 0) drop.push({ kind: 'edit-dest', svc, dest: { ...d, weight: 0 } });
    return false;
  };

  const visitDesired = (id: string, want: Service, cur: KernelService | undefined): void => {
    if (!owns(want.key)) {
      refused.push(id);
      return;
    }
    if (!cur) {
      add.push({ kind: 'add-service', svc: want });
      for (const d of want.dests.values()) addDest(want, d);
      drains.delete(id);
      converged.push(want);
      return;
    }
    if (!sameSpec(cur.spec, want)) edit.push({ kind: 'edit-service', svc: want });

    const wanted = [...want.dests.values()];
    const from = ORDER_SENSITIVE.has(want.scheduler) ? reorderFrom(cur.dests, wanted) : wanted.length;
    wanted.forEach((d, i) => {
      const have = cur.dests.get(d.id);
      if (i >= from) {
        if (have) add.push({ kind: 'del-dest', svc: want, dest: have });
        addDest(want, d);
      } else if (!have) {
        addDest(want, d);
      } else if (!sameDest(have, d)) {
        (d.weight < have.weight ? drop : edit).push({ kind: 'edit-dest', svc: want, dest: d });
      }
    });

    const waiting = new Map<string, number>();
    for (const d of cur.dests.values()) {
      if (want.dests.has(d.id)) continue;
      if (isUdp(want.key)) {
        drop.push({ kind: 'del-dest', svc: want, dest: d });
        if (input.flushConntrack && d.fwd === 'nat') flush.push({ kind: 'flush-conntrack', svc: want, dest: d });
      } else if (retire(want, d, waiting)) {
        drop.push({ kind: 'del-dest', svc: want, dest: d });
      }
    }
    if (waiting.size > 0) {
      drains.set(id, waiting);
    } else {
      drains.delete(id);
      converged.push(want);
    }
  };

  // A service inside the owned ranges that nobody wants any more.
  const visitOrphan = (id: string, cur: KernelService): void => {
    if (!owns(cur.spec.key)) return;
    const svc = cur.spec;
    if (isUdp(svc.key)) {
      drop.push({ kind: 'del-service', svc });
      if (input.flushConntrack) flush.push({ kind: 'flush-conntrack', svc });
      drains.delete(id);
      return;
    }
    const waiting = new Map<string, number>();
    const done = [...cur.dests.values()].filter((d) => retire(svc, d, waiting));
    if (waiting.size === 0) {
      drop.push({ kind: 'del-service', svc });
      drains.delete(id);
    } else {
      for (const d of done) drop.push({ kind: 'del-dest', svc, dest: d });
      drains.set(id, waiting);
    }
  };

  if (input.only) {
    for (const id of new Set([...input.only, ...input.drains.keys()])) {
      const want = desired.get(id);
      const cur = current.get(id);
      if (want) visitDesired(id, want, cur);
      else if (cur) visitOrphan(id, cur);
    }
  } else {
    // Kernel services that are also desired; when that is all of them there are no orphans to look for.
    let matched = 0;
    for (const [id, want] of desired) {
      const cur = current.get(id);
      if (cur) matched++;
      if (cur?.converged !== want || input.drains.has(id)) visitDesired(id, want, cur);
    }
    for (const [id, cur] of matched < current.size ? current : []) if (!desired.has(id)) visitOrphan(id, cur);
  }

  return { ops: [...drop, ...edit, ...add, ...flush], drains, converged, refused };
}

/**
 * Index into `wanted` (canonical order) from which destinations must be (re)added so that the
 * kernel's list ends up in canonical order; wanted.length when the present ones already are.
 * The longest prefix of `wanted` that is present in the kernel, in the same relative order,
 * stays untouched: everything added later lands after it.
 */
export function reorderFrom(present: ReadonlyMap<string, Dest>, wanted: readonly Dest[]): number {
  // Common case first, without allocating: the wanted destinations that are present appear in
  // canonical order and form a prefix of it (others, being drained, may sit in between).
  const ids = new Set<string>();
  let j = 0;
  let inOrder = true;
  for (const id of present.keys()) {
    if (j < wanted.length && (wanted[j] as Dest).id === id) {
      j++;
      continue;
    }
    if (ids.size === 0) for (const d of wanted) ids.add(d.id);
    if (ids.has(id)) {
      inOrder = false;
      break;
    }
  }
  if (inOrder) return j;
  const pos = new Map<string, number>();
  let n = 0;
  for (const id of present.keys()) pos.set(id, n++);
  let last = -1;
  for (let i = 0; i < wanted.length; i++) {
    const p = pos.get((wanted[i] as Dest).id);
    if (p === undefined || p < last) return i;
    last = p;
  }
  return wanted.length;
}

/**
 * Applies ops to the in-memory model of the kernel exactly as the kernel applies them
 * (additions append in add order, edits keep their place), then marks the converged services.
 * A converged service takes the desired service's objects when its destinations are in the
 * same order, so the model shares them instead of keeping copies.
 */
export function applyOps(table: KernelTable, ops: readonly Op[], converged: readonly Service[] = []): void {
  const writable = (id: string): Map<string, Dest> | undefined => {
    const t = table.get(id);
    if (!t) return undefined;
    // Copy on the first change: the map may be a desired Service's.
    if (t.converged) {
      delete t.converged;
      t.dests = new Map(t.dests);
    }
    return t.dests as Map<string, Dest>;
  };
  for (const op of ops) {
    const id = op.svc.id;
    switch (op.kind) {
      case 'add-service':
        table.set(id, { spec: op.svc, dests: new Map() });
        break;
      case 'edit-service': {
        writable(id);
        const t = table.get(id);
        if (t) t.spec = op.svc;
        break;
      }
      case 'del-service':
        table.delete(id);
        break;
      case 'add-dest':
      case 'edit-dest':
        writable(id)?.set(op.dest.id, op.dest);
        break;
      case 'del-dest':
        writable(id)?.delete(op.dest.id);
        break;
      case 'flush-conntrack':
        break;
    }
  }
  for (const s of converged) {
    const t = table.get(s.id);
    if (!t) continue;
    t.converged = s;
    if (sameOrder(t.dests, s.dests)) {
      t.dests = s.dests;
      t.spec = s;
    }
  }
}

function sameOrder(a: ReadonlyMap<string, Dest>, b: ReadonlyMap<string, Dest>): boolean {
  if (a.size !== b.size) return false;
  const ib = b.keys();
  for (const k of a.keys()) if (ib.next().value !== k) return false;
  return true;
}
