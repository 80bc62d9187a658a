/** Health targets from config (pure): one per realserver of a checked service, one per node agent. */
import type { Config } from '../config/schema.js';
import type { TargetSpec } from '../health/index.js';
import { realserverPort, targetId } from './desired.js';

export function healthTargets(config: Config): TargetSpec[] {
  const out: TargetSpec[] = [];
  const seen = new Set<string>();
  const nodeAddress = new Map<string, string>();
  for (const s of config.services) {
    for (const r of s.realservers) {
      if (r.node && !nodeAddress.has(r.node)) nodeAddress.set(r.node, r.address);
      if (!s.check) continue;
      const id = targetId(s, r);
      if (seen.has(id)) continue;
      seen.add(id);
      out.push({ id, address: r.address, port: realserverPort(s, r), check: s.check });
    }
  }
  for (const n of config.nodes) {
    const address = n.agent?.address ?? nodeAddress.get(n.name);
    // An agent needs an address: its own, or that of one of the node's realservers.
    if (n.agent && address) out.push({ id: n.name, address, agent: n.agent });
  }
  return out;
}
