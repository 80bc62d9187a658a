/** Health targets from config (pure): one per realserver of a checked service, one per node agent. */
import type { Config } from '../config/schema.js';
import type { TargetSpec } from '../health/index.js';
import { realserverPort, serviceId, targetId } from './desired.js';

export function healthTargets(config: Config): TargetSpec[] {
  const out: TargetSpec[] = [];
  const nodeAddress = new Map<string, string>();
  for (const s of config.services) {
    const sid = serviceId(s);
    for (const r of s.realservers) {
      if (r.node && !nodeAddress.has(r.node)) nodeAddress.set(r.node, r.address);
      if (!s.check) continue;
      // Unique without a check: a valid config has no duplicate service or realserver (refine.ts).
      out.push({ id: targetId(s, r, sid), address: r.address, port: realserverPort(s, r), check: s.check });
    }
  }
  for (const n of config.nodes) {
    const address = n.agent?.address ?? nodeAddress.get(n.name);
    // An agent needs an address: its own, or that of one of the node's realservers.
    if (n.agent && address) out.push({ id: n.name, address, agent: n.agent });
  }
  return out;
}
