/**
 * Health-check lab: a director namespace running the HealthMonitor (checker-proc.ts, over IPC)
 * and a realserver namespace running real servers (servers/*.ts), joined by a veth:
 *   director 203.0.113.1/24, 2001:db8::1/64  <->  realserver 203.0.113.10/24, 2001:db8::10/64
 * 198.51.100.0/24 is routed to the realserver namespace, which does not forward it: connects
 * there go unanswered (timeouts).
 * Everything is removed by PID and namespace in `cleanup`, also when a test fails.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { HealthConfig, TargetSpec, TargetStatus, TransitionEvent, AgentEvent, ResultEvent, UpdateSummary } from '../../../src/health/index.js';
import type { CheckConfig } from '../../../src/config/schema.js';
import { run } from '../../../src/util/exec.js';
import { Lab, type Daemon } from '../../lab/netns.js';
import type { ProcessInfo, Request } from './checker-proc.js';

export const DIRECTOR = '203.0.113.1';
export const RS = '203.0.113.10';
export const RS6 = '2001:db8::10';
/** Routed via the realserver namespace, which does not forward: packets vanish, connects time out. */
export const BLACKHOLE = '198.51.100.1';

export type MonitorEvent =
  | ({ event: 'transition' } & TransitionEvent)
  | ({ event: 'agent' } & AgentEvent)
  | ({ event: 'result' } & ResultEvent)
  | { event: 'log'; id?: undefined; level: string; msg: string; fields: Record<string, unknown>; loggedAt: number };

type Reply = { seq: number; reply?: unknown; error?: string };
type Distribute<T> = T extends unknown ? Omit<T, 'seq'> : never;

const here = (p: string): string => fileURLToPath(new URL(p, import.meta.url));

/** The HealthMonitor in the director namespace, seen from the test. */
export class RemoteMonitor {
  readonly events: MonitorEvent[] = [];
  private seq = 0;
  private readonly pending = new Map<number, (r: Reply) => void>();
  private readonly waiters = new Set<() => void>();
  private stderr = '';

  constructor(readonly child: ChildProcess) {
    child.stderr?.on('data', (b: Buffer) => {
      this.stderr = (this.stderr + b.toString()).slice(-4000);
    });
    child.on('message', (raw) => {
      const m = raw as Reply | MonitorEvent | { event: 'ready' };
      if ('seq' in m) {
        this.pending.get(m.seq)?.(m);
        this.pending.delete(m.seq);
      } else if (m.event !== 'ready') {
        this.events.push(m);
        for (const w of this.waiters) w();
      } else for (const w of this.waiters) w();
    });
  }

  ready(timeoutMs = 20_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`checker did not start: ${this.stderr}`)), timeoutMs);
      this.child.once('message', () => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  private request<T>(m: Distribute<Request>): Promise<T> {
    const seq = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`checker: no reply to ${m.op}: ${this.stderr}`)), 10_000);
      this.pending.set(seq, (r) => {
        clearTimeout(t);
        if (r.error !== undefined) reject(new Error(r.error));
        else resolve(r.reply as T);
      });
      this.child.send({ ...m, seq });
    });
  }

  update(targets: TargetSpec[]): Promise<UpdateSummary> {
    return this.request({ op: 'update', targets });
  }

  configure(health: HealthConfig): Promise<void> {
    return this.request({ op: 'configure', health });
  }

  async status(id: string): Promise<TargetStatus> {
    const s = await this.request<TargetStatus | null>({ op: 'status', id });
    if (!s) throw new Error(`no status for ${id}`);
    return s;
  }

  async hasTarget(id: string): Promise<boolean> {
    return (await this.request<TargetStatus | null>({ op: 'status', id })) !== null;
  }

  process(): Promise<ProcessInfo> {
    return this.request({ op: 'process' });
  }

  stop(): Promise<void> {
    return this.request({ op: 'stop' });
  }

  /** Events of one target, in order, optionally of one kind. */
  of<K extends MonitorEvent['event']>(id: string, kind: K): Array<Extract<MonitorEvent, { event: K }>> {
    return this.events.filter((e): e is Extract<MonitorEvent, { event: K }> => e.id === id && e.event === kind);
  }

  results(id: string): ResultEvent[] {
    return this.of(id, 'result');
  }

  /** Resolves with the first event (from `from` on) that matches. */
  waitFor(pred: (e: MonitorEvent) => boolean, timeoutMs: number, from = 0): Promise<MonitorEvent> {
    return new Promise((resolve, reject) => {
      let i = from;
      const check = (): void => {
        for (; i < this.events.length; i++) {
          const e = this.events[i] as MonitorEvent;
          if (pred(e)) {
            clearTimeout(t);
            this.waiters.delete(check);
            resolve(e);
            return;
          }
        }
      };
      const t = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`no matching event within ${timeoutMs} ms; last events: ${JSON.stringify(this.events.slice(-5))}`));
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  /** The first verdict (transition with `first`) of each id. */
  async firstVerdicts(ids: string[], timeoutMs: number): Promise<Map<string, TransitionEvent>> {
    const out = new Map<string, TransitionEvent>();
    for (const id of ids) {
      const e = await this.waitFor((e) => e.event === 'transition' && e.id === id && e.first, timeoutMs);
      out.set(id, e as TransitionEvent);
    }
    return out;
  }

  /** Waits until `id` has at least `n` results after event index `from`. */
  async resultsAfter(id: string, n: number, timeoutMs: number, from = 0): Promise<ResultEvent[]> {
    let seen = 0;
    await this.waitFor((e) => e.event === 'result' && e.id === id && ++seen >= n, timeoutMs, from);
    return this.events.slice(from).filter((e): e is { event: 'result' } & ResultEvent => e.event === 'result' && e.id === id);
  }
}

export interface HealthLab {
  lab: Lab;
  director: string;
  realservers: string;
  monitor: RemoteMonitor;
  /** Starts servers/<name>.ts in the realserver namespace and waits for its `ready` line. */
  server(name: string, args: string[]): Promise<Daemon>;
  /** Runs a command in a namespace, failing on a non-zero exit. */
  sh(ns: string, cmd: string, args: string[]): Promise<string>;
  /** Names of processes in the director namespace besides the checker (and tsx's esbuild service). */
  strays(): Promise<string[]>;
  cleanup(): Promise<void>;
}

export interface HealthLabOptions {
  health?: HealthConfig;
  /**
   * Runs after the lab exists and before the checker starts (to make certificates, say);
   * returns extra environment for the checker (NODE_EXTRA_CA_CERTS for the HTTPS tests).
   */
  prepare?: (lab: Lab) => Promise<NodeJS.ProcessEnv | void>;
}

export async function healthLab(opts: HealthLabOptions = {}): Promise<HealthLab> {
  const lab = await Lab.create();
  let child: ChildProcess | undefined;
  const cleanup = async (): Promise<void> => {
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child?.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    }
    await lab.cleanup();
  };
  try {
    const director = await lab.ns('dir');
    const realservers = await lab.ns('rs');
    await lab.veth(
      { ns: director, dev: 'eth0', cidrs: [`${DIRECTOR}/24`, '2001:db8::1/64'] },
      { ns: realservers, dev: 'eth0', cidrs: [`${RS}/24`, `${RS6}/64`] },
    );
    await lab.ip(director, ['route', 'add', '198.51.100.0/24', 'via', RS]);
    await run('ip', ['netns', 'exec', realservers, 'sysctl', '-qw', 'net.ipv4.ip_forward=0'], { timeoutMs: 10_000 });
    const env = { ...process.env, ...((await opts.prepare?.(lab)) ?? {}) };
    env.VIPD_TEST_HEALTH = JSON.stringify(opts.health ?? { concurrency: 100, history: 50 });
    // `ip netns exec` execs node in place, so the IPC channel's descriptor is inherited.
    child = spawn('ip', ['netns', 'exec', director, process.execPath, '--import', 'tsx', here('./checker-proc.ts')], {
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
      env,
    });
    const monitor = new RemoteMonitor(child);
    await monitor.ready();
    return {
      lab,
      director,
      realservers,
      monitor,
      async server(name, args) {
        const d = lab.spawn(realservers, process.execPath, ['--import', 'tsx', here(`./servers/${name}.ts`), ...args]);
        await d.waitFor(/^ready/m, 20_000);
        return d;
      },
      async sh(ns, cmd, args) {
        return (await run('ip', ['netns', 'exec', ns, cmd, ...args], { timeoutMs: 30_000 })).stdout;
      },
      async strays() {
        const pids = (await run('ip', ['netns', 'pids', director], { timeoutMs: 10_000 })).stdout.split(/\s+/).filter(Boolean);
        const comm = (pid: string): string => {
          try {
            return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
          } catch {
            return '';
          }
        };
        return pids
          .filter((p) => Number(p) !== child?.pid)
          .map(comm)
          .filter((c) => c !== '' && c !== 'esbuild');
      },
      cleanup,
    };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/** Check settings for tests: fast, with rise and fall of 1 unless given. */
export function check<T extends CheckConfig['type']>(
  type: T,
  fields: Omit<Extract<CheckConfig, { type: T }>, 'type' | 'interval' | 'timeout' | 'rise' | 'fall' | 'startUp'> &
    Partial<Pick<CheckConfig, 'interval' | 'timeout' | 'rise' | 'fall' | 'startUp'>>,
): Extract<CheckConfig, { type: T }> {
  return { interval: 200, timeout: 500, rise: 1, fall: 1, startUp: false, ...fields, type } as Extract<CheckConfig, { type: T }>;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Signals a server and waits for the output line (after the signal) that acknowledges it. */
export async function signal(d: Daemon, sig: NodeJS.Signals, ack: RegExp): Promise<string> {
  const before = d.output().length;
  try {
    process.kill(d.pid, sig);
  } catch (e) {
    throw new Error(`server ${d.pid} is gone (${String(e)}); its output: ${d.output().slice(-1000)}`);
  }
  for (const deadline = Date.now() + 5000; Date.now() < deadline; await sleep(20)) {
    const m = ack.exec(d.output().slice(before));
    if (m) return m[0];
  }
  throw new Error(`server ${d.pid} did not acknowledge ${sig} with ${ack}: ${d.output().slice(-500)}`);
}
