/**
 * What status, vipctl and metrics show: the coordinator's desired state joined with the
 * kernel's IPVS counters, BGP peer state and host facts. Kernel counters are read at most
 * every COUNTER_TTL_MS, in the background, so a scrape or a status call never waits on ipvsadm.
 */
import { loadavg } from 'node:os';
import si from 'systeminformation';
import type { BgpSpeaker } from '../bgp/speaker.js';
import type { HealthMonitor } from '../health/index.js';
import { serviceKeyOf } from '../ipvs/desired.js';
import type { ServiceCounters } from '../ipvs/kernel.js';
import type { IpvsManager } from '../ipvs/manager.js';
import { destId, serviceId } from '../ipvs/model.js';
import { canonicalAddress } from '../util/ip.js';
import type { HostFacts, PeerView, RealserverView, ServiceView, VipView } from './api.js';
import type { Coordinator } from './coordinator.js';

const COUNTER_TTL_MS = 2000;
const HOST_TTL_MS = 5000;

interface Sample {
  at: number;
  counters: Map<string, ServiceCounters>;
}

let hostCache: { at: number; facts: HostFacts } | undefined;

export class StatusView {
  private sample?: Sample;
  private previous?: Sample;
  private reading = false;

  constructor(
    private readonly coordinator: Coordinator,
    private readonly health: HealthMonitor,
    private readonly ipvs: IpvsManager | undefined,
    private bgp: BgpSpeaker | undefined,
  ) {}

  /** A BGP speaker started by a reload. */
  attachBgp(bgp: BgpSpeaker): void {
    this.bgp = bgp;
  }

  static async hostFacts(): Promise<HostFacts | null> {
    if (hostCache && Date.now() - hostCache.at < HOST_TTL_MS) return hostCache.facts;
    try {
      const [mem, nics] = await Promise.all([si.mem(), si.networkInterfaces()]);
      const list = Array.isArray(nics) ? nics : [nics];
      const facts: HostFacts = {
        load1: loadavg()[0] ?? 0,
        memUsedPct: mem.total ? (100 * (mem.total - mem.available)) / mem.total : 0,
        nics: list
          .filter((n) => !n.internal)
          .map((n) => ({ iface: n.iface, up: n.operstate === 'up', speedMbps: n.speed ?? null, addresses: [n.ip4, n.ip6].filter(Boolean) })),
      };
      hostCache = { at: Date.now(), facts };
      return facts;
    } catch {
      return null;
    }
  }

  private refreshCounters(): void {
    if (!this.ipvs || this.reading || (this.sample && Date.now() - this.sample.at < COUNTER_TTL_MS)) return;
    this.reading = true;
    this.ipvs
      .counters()
      .then((counters) => {
        this.previous = this.sample;
        this.sample = { at: Date.now(), counters };
      })
      .catch(() => undefined)
      .finally(() => {
        this.reading = false;
      });
  }

  vips(): VipView[] {
    const st = this.coordinator.state();
    if (!st) return [];
    return [...st.vips.entries()].map(([address, v]) => ({
      address,
      mode: v.config.mode,
      state: v.state,
      reason: v.reason,
      capacityPct: Math.round(v.capacity * 100),
      announced: this.coordinator.isAnnounced(address),
    }));
  }

  services(vip?: string): ServiceView[] {
    this.refreshCounters();
    const st = this.coordinator.state();
    if (!st) return [];
    const want = vip ? canonicalAddress(vip) : undefined;
    const s = this.sample;
    const p = this.previous;
    const dt = s && p ? (s.at - p.at) / 1000 : 0;
    return st.services
      .filter((svc) => !want || canonicalAddress(svc.config.vip) === want)
      .map((svc) => {
        const sid = serviceId(serviceKeyOf(svc.config));
        const now = s?.counters.get(sid);
        const before = p?.counters.get(sid);
        const realservers = svc.destinations.map((d): RealserverView => {
          const did = destId(d.address, d.port);
          const c = now?.dests.get(did);
          const b = before?.dests.get(did);
          const per = (k: 'inPkts' | 'outPkts' | 'inBytes' | 'outBytes'): number =>
            dt > 0 && c?.stats && b?.stats ? Math.max(0, (c.stats[k] - b.stats[k]) / dt) : 0;
          const h = this.health.status(`${svc.id}/${d.address}:${d.port}`);
          return {
            address: d.address,
            port: d.port,
            forwarding: d.forwarding,
            healthy: d.healthy,
            reason: h && !d.reason.startsWith('drained') && !d.reason.startsWith('agent') ? h.reason : d.reason,
            configuredWeight: d.configuredWeight,
            nodeWeight: d.nodeWeight,
            agentWeight: d.agentWeight,
            weight: d.weight,
            activeConns: c?.active ?? 0,
            inactiveConns: c?.inactive ?? 0,
            inPps: per('inPkts'),
            outPps: per('outPkts'),
            inBps: per('inBytes'),
            outBps: per('outBytes'),
          };
        });
        return {
          id: svc.id,
          vip: canonicalAddress(svc.config.vip),
          scheduler: svc.config.scheduler,
          flags: svc.config.flags,
          healthy: svc.healthy,
          total: svc.destinations.length,
          realservers,
        };
      });
  }

  /**
   * Fresh BGP prefix counters (events carry only session states), waiting at most maxWaitMs:
   * a stuck gobgpd leaves them as last seen rather than holding a status call or a scrape.
   */
  async refreshPeers(maxWaitMs = 1000): Promise<void> {
    if (!this.bgp) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.bgp.refreshPeers().catch(() => undefined),
      new Promise((resolve) => {
        timer = setTimeout(resolve, maxWaitMs);
      }),
    ]);
    clearTimeout(timer);
  }

  peers(): PeerView[] {
    return (this.bgp?.peers() ?? []).map((p) => ({
      address: p.address,
      asn: p.asn,
      state: p.state,
      uptimeS: p.uptimeSeconds ?? null,
      lastError: p.lastError ?? '',
      advertised: p.advertised,
      received: p.received,
    }));
  }
}
