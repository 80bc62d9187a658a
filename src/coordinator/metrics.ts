/**
 * Prometheus metrics (prom-client) on a configurable listener, loopback by default.
 * Gauges that mirror state are filled at scrape time from the status source, so the
 * hot paths only bump counters and histograms.
 */
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Logger } from '../log/logger.js';
import type { PeerView, ServiceView, VipView } from './api.js';

export interface MetricsSource {
  vips(): VipView[];
  services(): ServiceView[];
  peers(): PeerView[];
  /** Brings what peers() reports up to date before a scrape (bounded by the source). */
  refreshPeers?(): Promise<void>;
}

const VIP_STATES = ['up', 'softfail', 'down', 'pending', 'disabled'] as const;

export class Metrics {
  readonly registry = new Registry();
  readonly reconciles: Counter<'subsystem'>;
  readonly reconcileErrors: Counter<'subsystem'>;
  readonly reconcileSeconds: Histogram<'subsystem'>;
  readonly checkSeconds: Histogram<'type' | 'outcome'>;
  readonly gobgpdRestarts: Counter;
  readonly arpSends: Counter<'outcome'>;
  readonly reloads: Counter<'result'>;
  private server?: Server;

  constructor(private readonly source: MetricsSource) {
    const r = this.registry;
    collectDefaultMetrics({ register: r, prefix: 'vipd_' });
    this.reconciles = new Counter({ name: 'vipd_reconciles_total', help: 'Reconcile passes applied, by subsystem', labelNames: ['subsystem'], registers: [r] });
    this.reconcileErrors = new Counter({ name: 'vipd_reconcile_errors_total', help: 'Reconcile passes that failed, by subsystem', labelNames: ['subsystem'], registers: [r] });
    this.reconcileSeconds = new Histogram({
      name: 'vipd_reconcile_duration_seconds',
      help: 'Time to apply one reconcile pass, by subsystem',
      labelNames: ['subsystem'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [r],
    });
    this.checkSeconds = new Histogram({
      name: 'vipd_health_check_duration_seconds',
      help: 'Health check duration by check type and outcome',
      labelNames: ['type', 'outcome'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5],
      registers: [r],
    });
    this.gobgpdRestarts = new Counter({ name: 'vipd_gobgpd_restarts_total', help: 'Times gobgpd was restarted after dying', registers: [r] });
    this.arpSends = new Counter({ name: 'vipd_arp_sends_total', help: 'Gratuitous ARP / unsolicited NA sends by outcome', labelNames: ['outcome'], registers: [r] });
    this.reloads = new Counter({ name: 'vipd_config_reloads_total', help: 'Config reloads by result', labelNames: ['result'], registers: [r] });

    new Gauge({
      name: 'vipd_vip_state',
      help: 'VIP state: 1 for the current state label, 0 for the others',
      labelNames: ['vip', 'state'],
      registers: [r],
      collect() {
        this.reset();
        for (const v of source.vips()) for (const s of VIP_STATES) this.set({ vip: v.address, state: s }, v.state === s ? 1 : 0);
      },
    });
    new Gauge({
      name: 'vipd_vip_announced',
      help: '1 while the VIP is announced over BGP or owned for ARP',
      labelNames: ['vip'],
      registers: [r],
      collect() {
        this.reset();
        for (const v of source.vips()) this.set({ vip: v.address }, v.announced ? 1 : 0);
      },
    });
    const perRs = (name: string, help: string, pick: (rs: ServiceView['realservers'][number]) => number): void => {
      new Gauge({
        name,
        help,
        labelNames: ['service', 'realserver'],
        registers: [r],
        collect() {
          this.reset();
          for (const s of source.services()) for (const rs of s.realservers) this.set({ service: s.id, realserver: `${rs.address}:${rs.port}` }, pick(rs));
        },
      });
    };
    perRs('vipd_realserver_healthy', '1 while the realserver passes its health check', (rs) => (rs.healthy ? 1 : 0));
    perRs('vipd_realserver_weight', 'Effective IPVS weight', (rs) => rs.weight);
    perRs('vipd_realserver_active_connections', 'Active connections from the kernel', (rs) => rs.activeConns);
    perRs('vipd_realserver_inactive_connections', 'Inactive connections from the kernel', (rs) => rs.inactiveConns);
    perRs('vipd_realserver_in_packets_per_second', 'Inbound packet rate from the kernel estimator', (rs) => rs.inPps);
    perRs('vipd_realserver_out_packets_per_second', 'Outbound packet rate from the kernel estimator', (rs) => rs.outPps);
    perRs('vipd_realserver_in_bytes_per_second', 'Inbound byte rate from the kernel estimator', (rs) => rs.inBps);
    perRs('vipd_realserver_out_bytes_per_second', 'Outbound byte rate from the kernel estimator', (rs) => rs.outBps);
    new Gauge({
      name: 'vipd_bgp_peer_established',
      help: '1 while the BGP session is Established',
      labelNames: ['peer'],
      registers: [r],
      collect() {
        this.reset();
        for (const p of source.peers()) this.set({ peer: p.address }, p.state === 'ESTABLISHED' ? 1 : 0);
      },
    });
    new Gauge({
      name: 'vipd_bgp_peer_prefixes',
      help: 'Prefixes advertised to / received from the peer',
      labelNames: ['peer', 'direction'],
      registers: [r],
      collect() {
        this.reset();
        for (const p of source.peers()) {
          this.set({ peer: p.address, direction: 'advertised' }, p.advertised);
          this.set({ peer: p.address, direction: 'received' }, p.received);
        }
      },
    });
  }

  /** Serves /metrics on `listen` (ADDRESS:PORT). */
  async listen(listen: string, log: Logger): Promise<void> {
    const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(listen);
    if (!m) throw new Error(`metrics.listen: not ADDRESS:PORT: ${listen}`);
    const host = m[1] ?? m[2] ?? '127.0.0.1';
    const server = createServer((req, res) => {
      if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      Promise.resolve(this.source.refreshPeers?.())
        .then(() => this.registry.metrics())
        .then(
          (body) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(body),
          (e: unknown) => res.writeHead(500).end(String(e)),
        );
    });
    server.headersTimeout = 5000;
    server.requestTimeout = 10_000;
    server.maxConnections = 64;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port: Number(m[3]) }, () => resolve());
    });
    server.on('error', (e) => log.warn('metrics listener error', { error: e.message }));
    this.server = server;
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (s) {
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }
  }
}
