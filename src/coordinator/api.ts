/**
 * The status API's documented shapes, shared by the daemon and vipctl. `vipctl --json` prints
 * exactly these objects; fields are only ever added, never renamed.
 */
import type { JournalEvent } from './journal.js';
import type { VipState } from './desired.js';

export interface ReloadReport {
  at: string;
  ok: boolean;
  version?: string;
  problems: string[];
  /** Changed settings that vipd reads only at start: they take effect at the next restart. */
  atRestart?: string[];
}

export interface HostFacts {
  load1: number;
  memUsedPct: number;
  nics: { iface: string; up: boolean; speedMbps: number | null; addresses: string[] }[];
}

export interface PeerView {
  address: string;
  asn: number;
  state: string;
  uptimeS: number | null;
  lastError: string;
  advertised: number;
  received: number;
}

export interface VipView {
  address: string;
  mode: 'bgp' | 'arp';
  state: VipState;
  reason: string;
  capacityPct: number;
  announced: boolean;
}

export interface RealserverView {
  address: string;
  port: number;
  forwarding: string;
  healthy: boolean;
  reason: string;
  configuredWeight: number;
  nodeWeight: number;
  agentWeight: number;
  weight: number;
  activeConns: number;
  inactiveConns: number;
  inPps: number;
  outPps: number;
  inBps: number;
  outBps: number;
}

export interface ServiceView {
  id: string;
  vip: string;
  scheduler: string;
  flags: string[];
  healthy: number;
  total: number;
  realservers: RealserverView[];
}

export interface StatusReport {
  node: string;
  version: string;
  uptimeS: number;
  host: HostFacts | null;
  config: { file: string; version: string; lastReload: ReloadReport };
  serving: boolean;
  peers: PeerView[];
  vips: VipView[];
  services: { id: string; vip: string; healthy: number; total: number }[];
  overrides: OverridesView;
  problems: string[];
}

export interface OverridesView {
  drained: string[];
  disabled: string[];
}

export interface PlanReport {
  ok: boolean;
  problems: string[];
  ipvs: string[];
  routes: { announce: string[]; withdraw: string[]; change: string[] };
  checks: { added: string[]; removed: string[] };
  peers: { added: string[]; removed: string[]; changed: string[] };
  /** Changed settings that take effect only at the next restart. */
  atRestart: string[];
}

export type EventsReport = JournalEvent[];
