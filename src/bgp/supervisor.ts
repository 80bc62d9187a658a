/**
 * gobgpd as a supervised child. Its API listens only on a unix socket (mode 0600, stale one
 * removed first; never the default `:50051` on every interface), profiling is off, it runs
 * without a config file (vipd configures it over the API), and its JSON log lines go into
 * vipd's log. Readiness is GetBgp answering. If it dies, it is restarted with backoff and
 * `ready` fires again so the owner restores peers and routes.
 *
 * Stopping: SIGTERM makes gobgpd send Cease to every peer (routes withdrawn at once), SIGKILL
 * leaves the peers in graceful-restart helper mode (routes kept as stale). The pid file
 * survives a SIGKILL stop or a crash of vipd, so the next start knows it is a restart: it
 * kills a leftover gobgpd with SIGKILL too and reports `recovered`.
 *
 * A gobgpd that is slow to answer (a loaded host: it has taken over 15 s under emulation) or
 * dies while starting is tried again like a crashed one, each attempt waiting longer for its
 * API, so BGP comes up late rather than never. Only one that cannot be spawned is an error.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Logger } from '../log/logger.js';
import { GobgpClient } from './client.js';

export interface SupervisorOptions {
  binary: string;
  /** Absolute path of the API socket. */
  socket: string;
  /** Holds the pid file. */
  runDir: string;
  startTimeoutMs: number;
  log: Logger;
  /** Command prefix, e.g. `['ip', 'netns', 'exec', 'ns1']` in tests; empty in production. */
  wrap?: readonly string[];
  protoDir?: string;
  /** Delay before restarting a dead gobgpd: doubles per consecutive failure. */
  restartBackoff?: { initialMs: number; maxMs: number };
  /** After SIGTERM, SIGKILL follows after this long. */
  stopTimeoutMs?: number;
}

/** One gobgpd log line. */
export interface GobgpdLogEntry {
  level: 'error' | 'warn' | 'info' | 'debug';
  msg: string;
  fields: Record<string, unknown>;
}

type Events = {
  /** A (re)started gobgpd answers its API; `restarted` is true after an unexpected exit. */
  ready: [client: GobgpClient, info: { restarted: boolean }];
  /** gobgpd exited unexpectedly; a restart is scheduled. */
  exit: [info: { code: number | null; signal: NodeJS.Signals | null }];
  log: [entry: GobgpdLogEntry];
};

/** gobgpd could not be spawned at all (binary missing, not executable). */
export class GobgpdSpawnError extends Error {
  override name = 'GobgpdSpawnError';
}

interface Instance {
  child: ChildProcess;
  pid: number;
  client?: GobgpClient;
  startedAt: number;
  exited: Promise<void>;
  /** Set when vipd itself ends this instance, so its exit is not treated as a crash. */
  expected: boolean;
  tail: string[];
}

/** An instance that stayed up this long resets the restart backoff. */
const STABLE_MS = 60_000;
const LEVELS: Record<string, GobgpdLogEntry['level']> = { panic: 'error', fatal: 'error', error: 'error', warning: 'warn', warn: 'warn', info: 'info' };

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export class GobgpdSupervisor extends EventEmitter<Events> {
  readonly pidFile: string;
  private current?: Instance;
  private failures = 0;
  private restartTimer?: NodeJS.Timeout;
  private abort = new AbortController();
  private stopping = false;
  private readonly log: Logger;

  constructor(private readonly opts: SupervisorOptions) {
    super();
    this.pidFile = join(opts.runDir, 'gobgpd.pid');
    this.log = opts.log.child('gobgpd');
  }

  get pid(): number | undefined {
    return this.current?.pid;
  }

  /**
   * Starts gobgpd and waits until its API answers. `recovered`: a previous vipd left gobgpd
   * behind (running, then killed here with SIGKILL, or already dead) instead of stopping it.
   * Without `client`, the first attempt failed and gobgpd is being started again: `ready`
   * fires once it answers. Throws GobgpdSpawnError when gobgpd cannot be spawned.
   */
  async start(): Promise<{ recovered: boolean; client?: GobgpClient }> {
    if (this.current) throw new Error('gobgpd is already running');
    this.stopping = false;
    this.abort = new AbortController();
    for (const dir of new Set([this.opts.runDir, dirname(this.opts.socket)])) mkdirSync(dir, { recursive: true, mode: 0o700 });
    const recovered = await this.takeOverLeftover();
    try {
      return { recovered, client: await this.launch() };
    } catch (e) {
      if (e instanceof GobgpdSpawnError || this.stopping) throw e;
      this.log.error('gobgpd did not start; trying again', { error: (e as Error).message });
      this.scheduleRestart();
      return { recovered };
    }
  }

  /**
   * Stops gobgpd. SIGTERM: a deliberate stop (peers get Cease); the pid file is removed.
   * SIGKILL: peers keep our routes as stale; the pid file stays to mark the next start as a restart.
   */
  async stop(signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    this.abort.abort();
    const inst = this.current;
    if (inst) {
      inst.expected = true;
      this.signal(inst.pid, signal);
      const force = setTimeout(() => this.signal(inst.pid, 'SIGKILL'), this.opts.stopTimeoutMs ?? 10_000);
      await inst.exited;
      clearTimeout(force);
    }
    this.removeSocket();
    if (signal === 'SIGTERM') rmSync(this.pidFile, { force: true });
  }

  /** Kills gobgpd as if it had crashed, so that it is restarted and restored from scratch. */
  recycle(): void {
    if (this.current) this.signal(this.current.pid, 'SIGKILL');
  }

  /** Signals gobgpd's process group: with a wrapper (ip netns exec, sudo) the wrapper and gobgpd both get it. */
  private signal(pid: number, signal: NodeJS.Signals): void {
    try {
      process.kill(-pid, signal);
    } catch {
      /* already gone */
    }
  }

  private async takeOverLeftover(): Promise<boolean> {
    let text: string;
    try {
      text = readFileSync(this.pidFile, 'utf8');
    } catch {
      return false;
    }
    const pid = Number(text.trim());
    // Only a process whose command line names our socket is ours: pids get reused.
    if (Number.isInteger(pid) && pid > 1 && alive(pid) && this.isOurs(pid)) {
      this.log.warn('killing gobgpd left by a previous vipd (SIGKILL: peers keep our routes while we restart)', { pid });
      this.signal(pid, 'SIGKILL');
      const deadline = Date.now() + 5_000;
      while (alive(pid) && this.isOurs(pid) && Date.now() < deadline && !this.abort.signal.aborted) await sleep(20, this.abort.signal);
    } else if (Number.isInteger(pid) && pid > 1 && alive(pid)) {
      this.log.warn('pid file names a running process that is not our gobgpd (socket changed, or pid reused); leaving it alone', { pid, pidFile: this.pidFile });
    }
    rmSync(this.pidFile, { force: true });
    return true;
  }

  private isOurs(pid: number): boolean {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(`unix://${this.opts.socket}`);
    } catch {
      return false;
    }
  }

  private removeSocket(): void {
    try {
      if (!lstatSync(this.opts.socket).isSocket()) throw new Error(`${this.opts.socket} exists and is not a socket; refusing to remove it`);
      unlinkSync(this.opts.socket);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }

  /** Spawns gobgpd and resolves with its client once GetBgp answers; kills it on failure. */
  private async launch(): Promise<GobgpClient> {
    this.removeSocket();
    const { binary, socket, wrap = [] } = this.opts;
    const argv = [...wrap, binary, '--api-hosts', `unix://${socket}`, '--pprof-disable', '--log-level', 'info'];
    // umask 077 while forking: gobgpd creates its API socket without group/other access, so the
    // unauthenticated API is never open to other users, not even until the chmod below.
    const umask = process.umask(0o077);
    let child: ChildProcess;
    try {
      // Own process group: a terminal's Ctrl-C to vipd must not reach gobgpd (SIGINT would send Cease).
      child = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    } finally {
      process.umask(umask);
    }
    const spawned = await new Promise<Error | undefined>((resolve) => {
      child.once('spawn', () => resolve(undefined));
      child.once('error', (e) => resolve(e));
    });
    if (spawned || child.pid === undefined) throw new GobgpdSpawnError(`cannot start ${argv.join(' ')}: ${spawned?.message ?? 'no pid'}`);
    child.on('error', (e) => this.log.warn('gobgpd process error', { error: e.message }));
    const inst: Instance = {
      child,
      pid: child.pid,
      startedAt: Date.now(),
      expected: false,
      tail: [],
      exited: new Promise((resolve) => child.once('exit', () => resolve())),
    };
    this.current = inst;
    writeFileSync(this.pidFile, `${inst.pid}\n`, { mode: 0o600 });
    for (const stream of [child.stdout, child.stderr]) {
      if (stream) createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => this.onLine(inst, line));
    }
    child.once('exit', (code, signal) => this.onExit(inst, code, signal));
    this.log.info('gobgpd spawned', { pid: inst.pid, socket, argv });

    const client = new GobgpClient(socket, { protoDir: this.opts.protoDir });
    try {
      await this.waitReady(inst, client);
    } catch (e) {
      client.close();
      inst.expected = true;
      this.signal(inst.pid, 'SIGKILL');
      await inst.exited;
      if (this.current === inst) this.current = undefined;
      throw e;
    }
    inst.client = client;
    this.log.info('gobgpd ready', { pid: inst.pid, ms: Date.now() - inst.startedAt });
    return client;
  }

  private async waitReady(inst: Instance, client: GobgpClient): Promise<void> {
    // Each consecutive failure allows more time, up to 4x.
    const timeoutMs = this.opts.startTimeoutMs * Math.min(4, 2 ** this.failures);
    const deadline = inst.startedAt + timeoutMs;
    let secured = false;
    let lastError = 'no API socket yet';
    for (;;) {
      if (this.abort.signal.aborted) throw new Error('gobgpd start cancelled: stopping');
      if (inst.child.exitCode !== null || inst.child.signalCode !== null) {
        throw new Error(`gobgpd exited during start (${inst.child.signalCode ?? `exit ${inst.child.exitCode}`}): ${inst.tail.slice(-5).join(' | ')}`);
      }
      if (!secured && existsSync(this.opts.socket)) {
        // The API has no authentication: only vipd's user may talk to it.
        chmodSync(this.opts.socket, 0o600);
        secured = true;
      }
      if (secured) {
        try {
          await client.getBgp(1_000);
          return;
        } catch (e) {
          lastError = (e as Error).message;
        }
      }
      if (Date.now() > deadline) throw new Error(`gobgpd not ready within ${timeoutMs} ms: ${lastError}`);
      await sleep(50, this.abort.signal);
    }
  }

  private onLine(inst: Instance, line: string): void {
    if (!line.trim()) return;
    inst.tail.push(line);
    if (inst.tail.length > 20) inst.tail.shift();
    let entry: GobgpdLogEntry;
    try {
      const { level, msg, time: _time, ...fields } = JSON.parse(line) as Record<string, unknown>;
      entry = { level: LEVELS[String(level)] ?? 'debug', msg: String(msg ?? ''), fields };
    } catch {
      entry = { level: 'info', msg: line, fields: {} };
    }
    this.log[entry.level](entry.msg, { ...entry.fields, pid: inst.pid });
    this.emit('log', entry);
  }

  private onExit(inst: Instance, code: number | null, signal: NodeJS.Signals | null): void {
    inst.client?.close();
    if (this.current === inst) this.current = undefined;
    if (inst.expected || this.stopping) {
      this.log.info('gobgpd stopped', { pid: inst.pid, code, signal });
      return;
    }
    // Died before it was ready: launch() reports that to its caller.
    if (!inst.client) return;
    const lived = Date.now() - inst.startedAt;
    if (lived >= STABLE_MS) this.failures = 0;
    this.log.error('gobgpd died; restarting it (peers keep our routes as stale meanwhile)', { pid: inst.pid, code, signal, lastLines: inst.tail.slice(-5) });
    this.emit('exit', { code, signal });
    this.scheduleRestart();
  }

  private scheduleRestart(): void {
    const { initialMs, maxMs } = this.opts.restartBackoff ?? { initialMs: 1_000, maxMs: 30_000 };
    const delay = Math.min(maxMs, initialMs * 2 ** this.failures);
    this.failures++;
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      this.launch().then(
        (client) => {
          if (this.stopping) return;
          this.emit('ready', client, { restarted: true });
        },
        (e: unknown) => {
          if (this.stopping) return;
          this.log.error('gobgpd restart failed', { error: (e as Error).message, attempt: this.failures });
          this.scheduleRestart();
        },
      );
    }, delay);
  }
}
