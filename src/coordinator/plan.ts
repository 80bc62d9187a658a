/**
 * `vipctl plan FILE`: what a reload with FILE would change, computed with the same planners
 * the reload uses and the current health, without applying anything.
 */
import { diffPeers } from '../bgp/peers.js';
import { diffRoutes, planRoutes } from '../bgp/routes.js';
import { formatProblem } from '../config/errors.js';
import type { LoadResult } from '../config/load.js';
import type { PlanReport } from './api.js';
import type { Coordinator } from './coordinator.js';
import { restartOnly, type Running } from './restart-only.js';
import { healthTargets } from './targets.js';

const empty = (): Omit<PlanReport, 'ok' | 'problems'> => ({
  ipvs: [],
  routes: { announce: [], withdraw: [], change: [] },
  checks: { added: [], removed: [] },
  peers: { added: [], removed: [], changed: [] },
  atRestart: [],
});

export function planReload(coordinator: Coordinator | undefined, loaded: LoadResult, running: Running): PlanReport {
  if (!loaded.ok) return { ok: false, problems: loaded.problems.map((p) => formatProblem(loaded.file, p)), ...empty() };
  const next = loaded.config;
  const report: PlanReport = { ok: true, problems: [], ...empty() };
  if (!coordinator) return report;
  const cur = coordinator.running;
  report.atRestart = restartOnly(cur, next, running);

  const def = (t: ReturnType<typeof healthTargets>[number]): string => JSON.stringify(t);
  const before = new Map(healthTargets(cur).map((t) => [t.id, def(t)]));
  const after = new Map(healthTargets(next).map((t) => [t.id, def(t)]));
  for (const [id, d] of after) if (before.get(id) !== d) report.checks.added.push(id);
  for (const [id, d] of before) if (after.get(id) !== d) report.checks.removed.push(id);

  if (next.bgp) {
    const p = diffPeers(cur.bgp, next.bgp);
    report.peers.added = p.add.map((x) => x.address);
    report.peers.changed = p.update.map((x) => x.address);
    report.peers.removed = p.remove;
  } else if (cur.bgp) {
    report.peers.removed = cur.bgp.peers.map((x) => x.address);
  }

  const derived = coordinator.derive(next);
  const have = cur.bgp ? planRoutes(coordinator.currentIntents(), cur.bgp).routes : new Map();
  const want = next.bgp ? planRoutes(derived.intents, next.bgp).routes : new Map();
  const r = diffRoutes(have, want);
  report.routes = { announce: r.announce.map((x) => x.key), withdraw: r.withdraw.map((x) => x.key), change: r.update.map((x) => x.key) };
  report.ipvs = coordinator.previewIpvs(derived.table);
  return report;
}
