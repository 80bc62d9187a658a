/**
 * The health subsystem's face to the coordinator: targets in (`update`), verdicts out
 * (`transition` and `agent` events, `status`). It ties each target's checker to its state
 * machine and hands the timing to the scheduler; it knows nothing of VIPs or services.
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { AgentConfig, CheckConfig, Config } from '../config/schema.js';
import type { Logger } from '../log/logger.js';
import { canonicalAddress } from '../util/ip.js';
import { AgentChecker, createChecker } from './checks/index.js';
import { Scheduler, type Job } from './scheduler.js';
import { AgentState, CheckState } from './state.js';
import type { Checker, CheckOutcome, CheckResult, Target } from './types.js';

export type HealthConfig = Config['health'];

/** A realserver check. The check's `port`, when set, overrides `port`. */
export interface CheckTargetSpec {
  id: string;
  address: string;
  port: number;
  check: CheckConfig;
}

/** A node's weight agent; `agent.address`, when set, overrides `address`. */
export interface AgentTargetSpec {
  id: string;
  address: string;
  agent: AgentConfig;
}

export type TargetSpec = CheckTargetSpec | AgentTargetSpec;

/**
 * A check target's first result (`first`), a change between up and down, or, when the first
 * result was `pending`, the result that ends that change without one (the first settled verdict).
 */
export interface TransitionEvent {
  id: string;
  up: boolean;
  first: boolean;
  reason: string;
  /** A change is under way (results disagree with `up` but not yet rise/fall of them). */
  pending: boolean;
  /** ms since the epoch */
  at: number;
}

/** What an agent reports, on its first result and whenever that changes. */
export interface AgentEvent {
  id: string;
  /** Whether the last poll was answered; when not, the fields below are the last answer's. */
  answered: boolean;
  down: boolean;
  drain: boolean;
  weightPercent?: number;
  reason: string;
  at: number;
}

/** Every result of every target, for metrics and tests. */
export interface ResultEvent {
  id: string;
  type: TargetStatus['type'];
  up: boolean;
  result: CheckResult;
}

export interface HealthEvents {
  transition: [TransitionEvent];
  agent: [AgentEvent];
  result: [ResultEvent];
}

export interface TargetStatus {
  id: string;
  type: CheckConfig['type'] | 'agent';
  address: string;
  port: number;
  up: boolean;
  /** False until the first result. */
  known: boolean;
  reason: string;
  /** When `up` last changed (ms since the epoch); agents: undefined. */
  since?: number;
  checks: number;
  /** Oldest first, at most `health.history`. */
  history: CheckResult[];
  agent?: Omit<AgentEvent, 'id' | 'reason' | 'at'>;
}

/** What `update` did, by target id. */
export interface UpdateSummary {
  added: string[];
  changed: string[];
  removed: string[];
  kept: number;
}

export interface HealthStats {
  targets: number;
  running: number;
  /** Due checks waiting for the concurrency limit. */
  waiting: number;
  /** Checks completed since the last reset. */
  checks: number;
  /** Of those, the ones that failed. */
  failed: number;
  /** How late checks started against their schedule since the last reset. */
  latenessP50Ms: number;
  latenessP99Ms: number;
  latenessMaxMs: number;
}

/** One target: what to check, its state, and the scheduler's handle on it. */
class Entry implements Job {
  retired = false;

  constructor(
    readonly id: string,
    /** Digest of the definition; equal digests mean an unchanged target on update. */
    readonly key: string,
    readonly type: TargetStatus['type'],
    readonly target: Target,
    readonly checker: Checker,
    readonly state: CheckState | AgentState,
    readonly timeoutMs: number,
    private readonly interval: number,
    private readonly runner: (e: Entry, signal: AbortSignal) => Promise<void>,
  ) {}

  run(signal: AbortSignal): Promise<void> {
    return this.runner(this, signal);
  }

  nextDelay(): number {
    return this.state instanceof CheckState ? this.state.nextInterval() : this.interval;
  }
}

const agentChecker = new AgentChecker();

/** Key order must not make an unchanged definition look changed (addresses are canonical already). */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const rec = v as Record<string, unknown>;
    const keys = Object.keys(rec)
      .filter((k) => rec[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(rec[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

function resolve(spec: TargetSpec): Target {
  return 'agent' in spec
    ? { address: canonicalAddress(spec.agent.address ?? spec.address), port: spec.agent.port }
    : { address: canonicalAddress(spec.address), port: spec.check.port ?? spec.port };
}

/**
 * Transitions are logged this much later (those due together in one go): a verdict that takes a
 * VIP down has just handed gobgpd its withdrawal, and a log line (about 2 ms in the emulated VM)
 * would compete with gobgpd for the CPU meanwhile. Each line keeps the verdict's time.
 */
const TRANSITION_LOG_DELAY_MS = 100;

export class HealthMonitor extends EventEmitter<HealthEvents> {
  private readonly entries = new Map<string, Entry>();
  private readonly transitionLogs: { due: number; msg: string; fields: Record<string, unknown> }[] = [];
  private logTimer?: NodeJS.Timeout;
  private readonly scheduler: Scheduler;
  private history: number;
  private completed = 0;
  private failed = 0;

  constructor(
    config: HealthConfig,
    private readonly log: Logger,
  ) {
    super();
    this.scheduler = new Scheduler(config.concurrency);
    this.history = config.history;
  }

  /**
   * Makes the targets exactly `targets`. A target whose id and definition (address, port,
   * check or agent settings) are unchanged keeps its state and schedule; a changed one starts
   * afresh; a gone one is stopped, and its in-flight result is discarded.
   */
  update(targets: readonly TargetSpec[]): UpdateSummary {
    const ids = new Set<string>();
    for (const t of targets) {
      if (ids.has(t.id)) throw new Error(`duplicate health target id ${t.id}`);
      ids.add(t.id);
    }
    const summary: UpdateSummary = { added: [], changed: [], removed: [], kept: 0 };
    for (const [id, e] of this.entries) {
      if (!ids.has(id)) {
        this.retire(e);
        summary.removed.push(id);
      }
    }
    for (const spec of targets) {
      const target = resolve(spec);
      const key = createHash('sha256')
        .update(canonical({ target, def: 'agent' in spec ? spec.agent : spec.check }))
        .digest('base64');
      const old = this.entries.get(spec.id);
      if (old?.key === key) {
        summary.kept++;
        continue;
      }
      if (old) {
        this.retire(old);
        summary.changed.push(spec.id);
      } else summary.added.push(spec.id);
      this.add(spec, target, key);
    }
    if (summary.added.length || summary.changed.length || summary.removed.length) {
      this.log.info('health targets updated', {
        added: summary.added.length,
        changed: summary.changed.length,
        removed: summary.removed.length,
        kept: summary.kept,
      });
    }
    return summary;
  }

  /** Applies a reloaded `health` section: concurrency at once, history length to every target. */
  configure(config: HealthConfig): void {
    this.scheduler.setConcurrency(config.concurrency);
    if (config.history !== this.history) {
      this.history = config.history;
      for (const e of this.entries.values()) e.state.history.resize(config.history);
    }
  }

  status(id: string): TargetStatus | undefined {
    const e = this.entries.get(id);
    if (!e) return undefined;
    const s = e.state;
    const base = {
      id,
      type: e.type,
      address: e.target.address,
      port: e.target.port,
      known: s.known,
      reason: s.reason,
      checks: s.checks,
      history: s.history.toArray(),
    };
    if (s instanceof CheckState) return { ...base, up: s.up, since: s.since };
    return { ...base, up: !s.reply.down, agent: { answered: s.answered, ...s.reply } };
  }

  stats(reset = false): HealthStats {
    const l = this.scheduler.lateness;
    const out: HealthStats = {
      targets: this.entries.size,
      running: this.scheduler.running,
      waiting: this.scheduler.waiting,
      checks: this.completed,
      failed: this.failed,
      latenessP50Ms: l.percentile(50),
      latenessP99Ms: l.percentile(99),
      latenessMaxMs: l.maxMs,
    };
    if (reset) {
      this.completed = 0;
      this.failed = 0;
      l.reset();
    }
    return out;
  }

  /** Final: stops every check (in-flight ones are aborted, their results dropped) and forgets all targets. */
  stop(): void {
    for (const e of this.entries.values()) e.retired = true;
    this.entries.clear();
    this.scheduler.stop();
    this.flushTransitionLogs(Infinity);
  }

  /** Logs the transitions due by `now`; the timer is set for the next one. */
  private flushTransitionLogs(now: number): void {
    clearTimeout(this.logTimer);
    this.logTimer = undefined;
    let n = 0;
    while (n < this.transitionLogs.length && (this.transitionLogs[n] as { due: number }).due <= now) n++;
    for (const l of this.transitionLogs.splice(0, n)) this.log.info(l.msg, l.fields);
    this.armTransitionLogs();
  }

  private armTransitionLogs(): void {
    const next = this.transitionLogs[0];
    if (!next || this.logTimer) return;
    this.logTimer = setTimeout(() => this.flushTransitionLogs(performance.now()), Math.max(0, next.due - performance.now()));
  }

  private add(spec: TargetSpec, target: Target, key: string): void {
    let e: Entry;
    const { interval, timeout } = 'agent' in spec ? spec.agent : spec.check;
    if ('agent' in spec) {
      e = new Entry(spec.id, key, 'agent', target, agentChecker, new AgentState(this.history), timeout, interval, this.runner);
    } else {
      const { rise, fall, startUp, fastInterval } = spec.check;
      const state = new CheckState({ rise, fall, startUp, interval, fastInterval, history: this.history }, Date.now());
      e = new Entry(spec.id, key, spec.check.type, target, createChecker(spec.check), state, timeout, interval, this.runner);
    }
    this.entries.set(spec.id, e);
    // A random first offset within one interval spreads thousands of targets evenly.
    this.scheduler.add(e, Math.random() * interval);
  }

  private retire(e: Entry): void {
    e.retired = true;
    this.entries.delete(e.id);
    this.scheduler.remove(e);
  }

  /** Shared by every entry, so that an entry costs no closure of its own. */
  private readonly runner = (e: Entry, signal: AbortSignal): Promise<void> => this.runOnce(e, signal);

  private async runOnce(e: Entry, signal: AbortSignal): Promise<void> {
    const started = performance.now();
    let outcome: CheckOutcome;
    try {
      outcome = await e.checker.run(e.target, signal);
    } catch (err) {
      // Checkers do not reject; if one does, the target fails rather than the monitor.
      this.log.error('health check threw', { id: e.id, error: String(err) });
      outcome = { ok: false, reason: `internal error: ${String(err)}` };
    }
    if (e.retired) return;
    const result: CheckResult = { ...outcome, at: Date.now(), durationMs: Math.round((performance.now() - started) * 10) / 10 };
    this.completed++;
    if (!result.ok) this.failed++;
    const s = e.state;
    if (s instanceof CheckState) {
      const v = s.record(result);
      if (this.listenerCount('result')) this.emit('result', { id: e.id, type: e.type, up: s.up, result });
      if (v.changed || v.first || v.settled) this.emit('transition', { id: e.id, up: s.up, first: v.first, reason: s.reason, pending: s.streak > 0, at: result.at });
      if (v.changed) {
        const fields = { id: e.id, reason: s.reason, at: new Date(result.at).toISOString() };
        this.transitionLogs.push({ due: performance.now() + TRANSITION_LOG_DELAY_MS, msg: s.up ? 'target up' : 'target down', fields });
        this.armTransitionLogs();
      }
    } else {
      const changed = s.record(result);
      if (this.listenerCount('result')) this.emit('result', { id: e.id, type: e.type, up: !s.reply.down, result });
      if (changed) {
        const ev: AgentEvent = { id: e.id, answered: s.answered, ...s.reply, reason: s.reason, at: result.at };
        this.log.info('agent report', { ...ev });
        this.emit('agent', ev);
      }
    }
  }
}
