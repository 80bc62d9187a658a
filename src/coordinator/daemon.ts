/**
 * The vipd process: owns the running config, reloads it on SIGHUP (refusing an invalid one
 * while the running one keeps serving) and shuts down in order on SIGTERM/SIGINT.
 */
import { formatProblem } from '../config/errors.js';
import { loadConfig, type LoadOptions } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { configureLogging, logger, type Logger } from '../log/logger.js';

export interface ReloadResult {
  at: string;
  ok: boolean;
  version?: string;
  problems: string[];
}

export class Daemon {
  private config: Config;
  private version: string;
  private lastReload: ReloadResult;
  private readonly log: Logger;
  private stopping?: Promise<void>;
  private readonly keepAlive: NodeJS.Timeout;

  private constructor(
    private readonly load: LoadOptions,
    config: Config,
    version: string,
  ) {
    this.config = config;
    this.version = version;
    this.log = logger('daemon');
    this.lastReload = { at: new Date().toISOString(), ok: true, version, problems: [] };
    // The event loop must stay alive until a signal stops us, even with no subsystem running yet.
    this.keepAlive = setInterval(() => undefined, 1 << 30);
  }

  static start(load: LoadOptions, config: Config, version: string): Daemon {
    configureLogging(config.log.level, config.log.format);
    const d = new Daemon(load, config, version);
    d.log.info('vipd started', { node: config.node.name, version, vips: config.vips.length, services: config.services.length });
    process.on('SIGHUP', () => d.reload());
    process.once('SIGTERM', () => void d.stop('SIGTERM'));
    process.once('SIGINT', () => void d.stop('SIGINT'));
    return d;
  }

  get running(): { config: Config; version: string; lastReload: ReloadResult } {
    return { config: this.config, version: this.version, lastReload: this.lastReload };
  }

  /** Validates the config file in full; applies it only when valid. */
  reload(): ReloadResult {
    const r = loadConfig(this.load);
    if (!r.ok) {
      const problems = r.problems.map((p) => formatProblem(r.file, p));
      this.lastReload = { at: new Date().toISOString(), ok: false, problems };
      this.log.error('reload refused: config invalid, keeping the running one', { file: r.file, problems, running: this.version });
      return this.lastReload;
    }
    this.lastReload = { at: new Date().toISOString(), ok: true, version: r.version, problems: [] };
    if (r.version !== this.version) {
      this.log.info('config reloaded', { from: this.version, to: r.version });
      this.config = r.config;
      this.version = r.version;
      configureLogging(r.config.log.level, r.config.log.format);
    } else {
      this.log.info('config unchanged', { version: r.version });
    }
    return this.lastReload;
  }

  stop(reason: string): Promise<void> {
    this.stopping ??= (async () => {
      this.log.info('vipd stopping', { reason });
      clearInterval(this.keepAlive);
      process.removeAllListeners('SIGHUP');
    })();
    return this.stopping;
  }
}
