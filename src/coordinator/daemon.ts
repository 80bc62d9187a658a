/**
 * The vipd process: builds the subsystems from config, runs the coordinator, serves the
 * status API and metrics, reloads on SIGHUP (refusing an invalid config while the running one
 * keeps serving) and stops in order on SIGTERM. A config that is invalid at start leaves vipd
 * up with the status API only, showing why, so an appliance never loops silently.
 */
import { join } from 'node:path';
import { VipAddresses } from '../addr/addresses.js';
import { ArpManager } from '../arp/manager.js';
import { BgpSpeaker } from '../bgp/speaker.js';
import { formatProblem } from '../config/errors.js';
import { loadConfig, type LoadOptions, type LoadResult } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { HealthMonitor } from '../health/index.js';
import { IpvsManager } from '../ipvs/manager.js';
import { configureLogging, logger, type Logger } from '../log/logger.js';
import { VERSION } from '../version.js';
import type { ReloadReport } from './api.js';
import { Coordinator } from './coordinator.js';
import { Journal } from './journal.js';
import { Metrics } from './metrics.js';
import { OverrideStore, overrideProblem } from './overrides.js';
import { planReload } from './plan.js';
import { PresencePorts } from './presence.js';
import { restartOnly } from './restart-only.js';
import { StatusServer } from './status-server.js';
import { StatusView } from './status-view.js';

export interface DaemonOptions {
  load: LoadOptions;
  /** Command prefix for gobgpd (tests run it in a namespace); empty in production. */
  gobgpdWrap?: readonly string[];
}

const DEFAULT_RUN_DIR = '/run/vipd';

export function statusSocket(config: Config | undefined): string {
  return config?.status.socket ?? join(config?.node.runDir ?? DEFAULT_RUN_DIR, 'vipd.sock');
}

export class Daemon {
  private readonly log: Logger;
  private config?: Config;
  private version = '';
  private lastReload: ReloadReport;
  private coordinator?: Coordinator;
  private journal?: Journal;
  private overrides?: OverrideStore;
  private metrics?: Metrics;
  private status?: StatusServer;
  private view?: StatusView;
  private stopping?: Promise<void>;
  private addresses?: VipAddresses;
  private arp?: ArpManager;
  private bgp?: BgpSpeaker;
  /** The reload running now (chain tail) and the one queued behind it, which later requests share. */
  private reloadTail: Promise<unknown> = Promise.resolve();
  private reloadQueued?: Promise<ReloadReport>;
  private readonly started = Date.now();
  private readonly problems: string[] = [];
  private readonly keepAlive: NodeJS.Timeout;

  private constructor(
    private readonly opts: DaemonOptions,
    private readonly file: string,
  ) {
    this.log = logger('daemon');
    this.lastReload = { at: new Date().toISOString(), ok: false, problems: [] };
    // Stay alive until a signal stops us, even while unconfigured.
    this.keepAlive = setInterval(() => undefined, 1 << 30);
  }

  static async start(opts: DaemonOptions): Promise<Daemon> {
    const r = loadConfig(opts.load);
    if (r.ok) configureLogging(r.config.log.level, r.config.log.format);
    const d = new Daemon(opts, r.file ?? '');
    process.on('SIGHUP', () => void d.reload().catch(() => undefined));
    process.once('SIGTERM', () => void d.stop('SIGTERM').then(() => process.exit(0)));
    process.once('SIGINT', () => void d.stop('SIGINT').then(() => process.exit(0)));
    if (r.ok) {
      d.lastReload = { at: new Date().toISOString(), ok: true, version: r.version, problems: [] };
      await d.configure(r.config, r.version);
    } else {
      d.refused(r);
      d.log.error('config invalid: not serving; fix it and send SIGHUP (vipctl reload)', { file: r.file, problems: d.lastReload.problems });
      await d.serveStatus(undefined);
    }
    return d;
  }

  private refused(r: Extract<LoadResult, { ok: false }>): void {
    this.lastReload = { at: new Date().toISOString(), ok: false, problems: r.problems.map((p) => formatProblem(r.file, p)) };
  }

  /** Builds and starts every subsystem for a first valid config. */
  private async configure(config: Config, version: string): Promise<void> {
    this.config = config;
    this.version = version;
    const log = this.log;
    log.info('vipd starting', { version: VERSION, config: version, node: config.node.name, vips: config.vips.length, services: config.services.length });
    this.journal = new Journal({ capacity: config.journal.capacity, file: join(config.node.stateDir, 'journal.jsonl'), maxFileBytes: config.journal.maxFileBytes });
    this.overrides = new OverrideStore(join(config.node.stateDir, 'overrides.json'));
    this.journal.append('daemon', 'vipd started', { version: VERSION, config: version });

    const health = new HealthMonitor(config.health, log.child('health'));
    const ipvs = new IpvsManager({ ...config.ipvs, vipRanges: config.vipRanges }, log.child('ipvs'));
    const hasArp = config.vips.some((v) => v.mode === 'arp');
    // Addresses are only removed once every source has spoken; ARP speaks only when it runs.
    const addresses = new VipAddresses({ vipRanges: config.vipRanges, sources: hasArp ? ['bgp', 'arp'] : ['bgp'] }, log.child('addr'));
    let bgpDevice = 'lo';
    try {
      bgpDevice = (await addresses.prepare()).bgpDevice;
      // The global ARP settings matter for BGP-mode VIPs too (never answer ARP for them).
      for (const r of await addresses.tune([])) this.journal.append('daemon', `sysctl ${r.path}=${r.value}`, { changed: r.changed, ...(r.error ? { error: r.error } : {}) });
    } catch (e) {
      this.problem(`VIP addresses: ${(e as Error).message}`);
    }
    try {
      const rep = await ipvs.start({ schedulers: config.services.map((s) => s.scheduler) });
      this.journal.append('ipvs', 'adopted kernel table', { ...rep.adopted, sysctls: rep.sysctls.length });
    } catch (e) {
      this.problem(`IPVS: ${(e as Error).message}`);
    }
    this.addresses = addresses;
    const arp = hasArp ? await this.startArp(config, addresses) : undefined;
    const bgp = config.bgp ? await this.startBgp(config, config.bgp) : undefined;
    const presence = new PresencePorts('::', log.child('presence'));
    // The coordinator counts into the metrics, whose gauges read the view built on it.
    this.metrics = config.metrics.enabled
      ? new Metrics({
          vips: () => this.view?.vips() ?? [],
          services: () => this.view?.services() ?? [],
          peers: () => this.view?.peers() ?? [],
          refreshPeers: async () => this.view?.refreshPeers(),
        })
      : undefined;
    this.coordinator = new Coordinator(config, {
      log,
      journal: this.journal,
      ...(this.metrics ? { metrics: this.metrics } : {}),
      health,
      ipvs,
      ...(bgp ? { bgp } : {}),
      ...(arp ? { arp } : {}),
      addresses,
      bgpDevice,
      overrides: this.overrides,
      presence,
    });
    this.view = new StatusView(this.coordinator, health, ipvs, bgp);
    if (this.metrics) {
      try {
        await this.metrics.listen(config.metrics.listen, log);
      } catch (e) {
        this.problem(`metrics on ${config.metrics.listen}: ${(e as Error).message}`);
      }
    }
    await this.serveStatus(config);
    this.coordinator.start();
  }

  private async startArp(config: Config, addresses: VipAddresses): Promise<ArpManager> {
    const a = config.arp;
    const arp = new ArpManager(
      {
        addresses,
        intervalMs: a.interval,
        concurrency: a.concurrency,
        arping: a.arping,
        peers: a.peers,
        port: a.port,
        advertMs: a.advertInterval,
        holdMs: a.holdTime,
        ...(a.secret ? { secret: a.secret } : {}),
        ...(a.self ? { self: a.self } : {}),
      },
      this.log.child('arp'),
    );
    try {
      await arp.start();
    } catch (e) {
      this.problem(`ARP: ${(e as Error).message}`);
    }
    this.arp = arp;
    return arp;
  }

  private async startBgp(config: Config, bgpConfig: NonNullable<Config['bgp']>): Promise<BgpSpeaker> {
    const bgp = new BgpSpeaker(bgpConfig, this.log, { runDir: config.node.runDir, ...(this.opts.gobgpdWrap ? { wrap: this.opts.gobgpdWrap } : {}) });
    // Only a gobgpd that cannot be spawned fails here; a slow or failing one is retried by its supervisor.
    await bgp.start().catch((e: unknown) => this.problem(`BGP: ${(e as Error).message}`));
    this.bgp = bgp;
    return bgp;
  }

  /**
   * A reload may need a subsystem the running vipd did not: its first ARP-mode VIP starts ARP,
   * a first `bgp` section starts BGP (instead of accepting VIPs that nothing would serve).
   */
  private async startMissing(next: Config): Promise<void> {
    const c = this.coordinator;
    if (!c) return;
    if (!this.arp && this.addresses && next.vips.some((v) => v.mode === 'arp')) {
      c.attachArp(await this.startArp(next, this.addresses));
      this.journal?.append('daemon', 'ARP started: the config has its first ARP-mode VIP');
    }
    if (!this.bgp && next.bgp) {
      const bgp = await this.startBgp(next, next.bgp);
      c.attachBgp(bgp);
      this.view?.attachBgp(bgp);
      this.journal?.append('daemon', 'BGP started: the config has its first bgp section');
    }
  }

  private problem(p: string): void {
    this.problems.push(p);
    this.log.error(p);
    this.journal?.append('daemon', p);
  }

  private async serveStatus(config: Config | undefined): Promise<void> {
    const socket = statusSocket(config);
    this.status = new StatusServer({ socket, ...(config?.status.group ? { group: config.status.group } : {}) }, this.methods(), this.log.child('status'));
    try {
      await this.status.start();
    } catch (e) {
      this.problems.push(`status socket ${socket}: ${(e as Error).message}`);
      this.log.error('status socket could not open', { socket, error: (e as Error).message });
    }
  }

  private methods(): ConstructorParameters<typeof StatusServer>[1] {
    const override = (kind: 'drain' | 'undrain' | 'disable' | 'enable') => (p: Record<string, unknown>) => {
      const target = typeof p.target === 'string' ? p.target : '';
      if (!target || target.length > 200) throw new Error('target must be a realserver address, ADDRESS:PORT, node name or VIP');
      if (!this.overrides || !this.coordinator) throw new Error('vipd is not configured');
      const problem = overrideProblem(this.coordinator.running, this.overrides.view(), kind, target);
      if (problem) throw new Error(`${kind}: ${problem}`);
      if (this.overrides.set(kind, target)) {
        this.journal?.append('override', `${kind} ${target}`);
        this.coordinator.schedule(true);
      }
      return { value: { overrides: this.overrides.view() } };
    };
    return {
      status: async () => ({ value: await this.statusReport() }),
      services: (p) => ({ value: this.view?.services(typeof p.vip === 'string' ? p.vip : undefined) ?? [] }),
      peers: async () => {
        await this.view?.refreshPeers();
        return { value: this.view?.peers() ?? [] };
      },
      events: (p) => {
        const since = typeof p.since === 'number' ? p.since : 0;
        const limit = typeof p.limit === 'number' ? Math.min(10_000, p.limit) : 1000;
        const j = this.journal;
        if (p.follow === true && j) {
          return {
            stream: (send) => {
              for (const e of j.list(since, limit)) send(e);
              const on = (e: unknown): void => send(e);
              j.on('event', on);
              return () => j.off('event', on);
            },
          };
        }
        return { value: j?.list(since, limit) ?? [] };
      },
      drain: override('drain'),
      undrain: override('undrain'),
      disable: override('disable'),
      enable: override('enable'),
      reload: async () => ({ value: await this.reload() }),
      plan: (p) => {
        if (typeof p.file !== 'string') throw new Error('plan needs a "file"');
        return { value: planReload(this.coordinator, loadConfig({ ...this.opts.load, file: p.file }), { arp: !!this.arp, bgp: !!this.bgp }) };
      },
    };
  }

  private async statusReport(): Promise<import('./api.js').StatusReport> {
    const c = this.config;
    await this.view?.refreshPeers();
    const extra = [this.journal?.writeError, this.overrides?.writeError].filter((x): x is string => !!x).map((x) => `state directory: ${x}`);
    return {
      node: c?.node.name ?? '-',
      version: VERSION,
      uptimeS: Math.round((Date.now() - this.started) / 1000),
      host: await StatusView.hostFacts(),
      config: { file: this.file, version: this.version || '-', lastReload: this.lastReload },
      serving: this.coordinator?.serving ?? false,
      peers: this.view?.peers() ?? [],
      vips: this.view?.vips() ?? [],
      services: (this.view?.services() ?? []).map((s) => ({ id: s.id, vip: s.vip, healthy: s.healthy, total: s.total })),
      overrides: this.overrides?.view() ?? { drained: [], disabled: [] },
      problems: [...(c ? [] : ['no valid config: not serving']), ...this.problems, ...extra],
    };
  }

  /**
   * Validates the config file in full; applies only the difference when valid. Reloads run one
   * at a time (overlapping ones would interleave reconfiguration); requests arriving while one
   * runs share the next, which reads the newest file, so a storm of SIGHUPs costs two passes.
   */
  reload(): Promise<ReloadReport> {
    if (this.reloadQueued) return this.reloadQueued;
    const next = this.reloadTail.then(() => {
      this.reloadQueued = undefined;
      return this.reloadNow();
    });
    this.reloadQueued = next;
    this.reloadTail = next.catch((e: unknown) => this.problem(`reload failed: ${(e as Error).message}`));
    return next;
  }

  private async reloadNow(): Promise<ReloadReport> {
    const r = loadConfig(this.opts.load);
    if (!r.ok) {
      this.refused(r);
      this.metrics?.reloads.inc({ result: 'refused' });
      this.journal?.append('reload', 'refused: config invalid', { problems: this.lastReload.problems.slice(0, 20) });
      this.log.error('reload refused: config invalid, keeping the running one', { file: r.file, problems: this.lastReload.problems, running: this.version });
      return this.lastReload;
    }
    this.lastReload = { at: new Date().toISOString(), ok: true, version: r.version, problems: [] };
    this.metrics?.reloads.inc({ result: 'ok' });
    if (!this.coordinator) {
      await this.status?.stop();
      configureLogging(r.config.log.level, r.config.log.format);
      await this.configure(r.config, r.version);
      return this.lastReload;
    }
    if (r.version === this.version) {
      this.log.info('config unchanged', { version: r.version });
      return this.lastReload;
    }
    const atRestart = this.config ? restartOnly(this.config, r.config, { arp: !!this.arp, bgp: !!this.bgp }) : [];
    if (atRestart.length) this.lastReload.atRestart = atRestart;
    this.journal?.append('reload', `config ${this.version} -> ${r.version}`, atRestart.length ? { atRestart } : undefined);
    this.log.info('config reloaded', { from: this.version, to: r.version });
    if (atRestart.length) this.log.warn('changed settings that take effect at the next restart', { settings: atRestart });
    configureLogging(r.config.log.level, r.config.log.format);
    this.config = r.config;
    this.version = r.version;
    await this.startMissing(r.config);
    await this.coordinator.reconfigure(r.config);
    return this.lastReload;
  }

  /** Deliberate stop: presence closed, routes withdrawn and propagated, then the rest. IPVS stays. */
  stop(reason: string): Promise<void> {
    this.stopping ??= (async () => {
      this.log.info('vipd stopping', { reason });
      this.journal?.append('daemon', 'vipd stopping', { reason });
      process.removeAllListeners('SIGHUP');
      await this.coordinator?.stop();
      await this.metrics?.close();
      await this.status?.stop();
      clearInterval(this.keepAlive);
    })();
    return this.stopping;
  }
}
