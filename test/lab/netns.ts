/**
 * Network-namespace lab for integration tests: namespaces, veth pairs, bridges, addresses
 * (documentation ranges only) and daemons inside them. Everything a Lab creates is removed by
 * `cleanup()`, also on process exit, and the next Lab sweeps what a killed run left behind
 * (namespace names carry the creating PID).
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exec, run, type ExecResult } from '../../src/util/exec.js';

const PREFIX = 'vt';
const live = new Set<Lab>();
let seq = 0;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Removes namespaces (and their processes) left by test runs whose process is gone. */
export function sweepStale(): void {
  if (!existsSync('/run/netns')) return;
  for (const name of readdirSync('/run/netns')) {
    const m = /^vt(\d+)x\d+-/.exec(name);
    if (!m || pidAlive(Number(m[1]))) continue;
    killNamespacePids(name);
    try {
      execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore', timeout: 10_000 });
    } catch {
      /* already gone */
    }
  }
}

function killNamespacePids(ns: string): void {
  try {
    const pids = execFileSync('ip', ['netns', 'pids', ns], { timeout: 10_000 }).toString().split(/\s+/).filter(Boolean);
    for (const p of pids) {
      try {
        process.kill(Number(p), 'SIGKILL');
      } catch {
        /* exited meanwhile */
      }
    }
  } catch {
    /* namespace gone */
  }
}

process.on('exit', () => {
  for (const lab of live) lab.cleanupSync();
});
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    for (const lab of live) lab.cleanupSync();
    process.exit(130);
  });
}

export interface Daemon {
  readonly pid: number;
  readonly ns: string;
  readonly child: ChildProcess;
  /** All output so far (bounded). */
  output(): string;
  /** Resolves when the output matches, rejects after timeoutMs. */
  waitFor(re: RegExp, timeoutMs: number): Promise<void>;
  stop(signal?: NodeJS.Signals): Promise<void>;
  exited: Promise<number | null>;
}

export class Lab {
  readonly id: string;
  readonly dir: string;
  private readonly namespaces: string[] = [];
  private readonly daemons = new Set<Daemon>();

  private constructor() {
    this.id = `${PREFIX}${process.pid}x${seq++}`;
    this.dir = mkdtempSync(join(tmpdir(), `${this.id}-`));
  }

  static async create(): Promise<Lab> {
    sweepStale();
    const lab = new Lab();
    live.add(lab);
    return lab;
  }

  /** Creates a namespace with loopback up; returns its full name. */
  async ns(name: string): Promise<string> {
    const full = `${this.id}-${name}`;
    await run('ip', ['netns', 'add', full], { timeoutMs: 10_000 });
    this.namespaces.push(full);
    await this.ip(full, ['link', 'set', 'lo', 'up']);
    return full;
  }

  ip(ns: string, args: string[]): Promise<ExecResult> {
    return run('ip', ['-n', ns, ...args], { timeoutMs: 10_000 });
  }

  /** Runs a command inside a namespace and returns its result (never throws on exit status). */
  exec(ns: string, cmd: string, args: string[], timeoutMs = 30_000, input?: string): Promise<ExecResult> {
    return exec('ip', ['netns', 'exec', ns, cmd, ...args], { timeoutMs, input });
  }

  async bridge(ns: string, name: string, cidrs: string[] = []): Promise<void> {
    await this.ip(ns, ['link', 'add', name, 'type', 'bridge']);
    await this.ip(ns, ['link', 'set', name, 'type', 'bridge', 'forward_delay', '0']);
    for (const c of cidrs) await this.addr(ns, name, c);
    await this.ip(ns, ['link', 'set', name, 'up']);
  }

  /**
   * Connects two namespaces with a veth pair. `a.master` puts that end on a bridge.
   * Interface names must be at most 15 characters.
   */
  async veth(
    a: { ns: string; dev: string; cidrs?: string[]; master?: string },
    b: { ns: string; dev: string; cidrs?: string[]; master?: string },
  ): Promise<void> {
    const tmp = `v${process.pid % 100000}${seq++}`;
    await run('ip', ['link', 'add', `${tmp}a`, 'type', 'veth', 'peer', 'name', `${tmp}b`], { timeoutMs: 10_000 });
    for (const [end, side] of [
      [`${tmp}a`, a],
      [`${tmp}b`, b],
    ] as const) {
      await run('ip', ['link', 'set', end, 'netns', side.ns], { timeoutMs: 10_000 });
      await this.ip(side.ns, ['link', 'set', end, 'name', side.dev]);
      if (side.master) await this.ip(side.ns, ['link', 'set', side.dev, 'master', side.master]);
      for (const c of side.cidrs ?? []) await this.addr(side.ns, side.dev, c);
      await this.ip(side.ns, ['link', 'set', side.dev, 'up']);
    }
  }

  async addr(ns: string, dev: string, cidr: string): Promise<void> {
    assertDocumentationAddress(cidr);
    // nodad: IPv6 addresses are usable at once instead of after duplicate address detection.
    await this.ip(ns, ['addr', 'add', cidr, 'dev', dev, ...(cidr.includes(':') ? ['nodad'] : [])]);
  }

  /** Starts a long-running process inside a namespace; it is killed by PID on cleanup. */
  spawn(ns: string, cmd: string, args: string[], env?: NodeJS.ProcessEnv): Daemon {
    const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: env ?? process.env,
    });
    if (child.pid === undefined) throw new Error(`could not start ${cmd} in ${ns}`);
    const pid = child.pid;
    let buf = '';
    const waiters = new Set<() => void>();
    const onData = (b: Buffer): void => {
      buf += b.toString('utf8');
      if (buf.length > 1_000_000) buf = buf.slice(-500_000);
      for (const w of waiters) w();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const daemon: Daemon = {
      pid,
      ns,
      child,
      exited,
      output: () => buf,
      waitFor: (re, timeoutMs) =>
        new Promise<void>((resolve, reject) => {
          const check = (): void => {
            if (re.test(buf)) {
              clearTimeout(t);
              waiters.delete(check);
              resolve();
            }
          };
          const t = setTimeout(() => {
            waiters.delete(check);
            reject(new Error(`${cmd} in ${ns}: no ${re} within ${timeoutMs} ms; output:\n${buf.slice(-2000)}`));
          }, timeoutMs);
          waiters.add(check);
          check();
        }),
      stop: async (signal = 'SIGTERM') => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        try {
          process.kill(pid, signal);
        } catch {
          return;
        }
        const t = setTimeout(() => {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            /* gone */
          }
        }, 5_000);
        await exited;
        clearTimeout(t);
      },
    };
    this.daemons.add(daemon);
    void exited.then(() => this.daemons.delete(daemon));
    return daemon;
  }

  /** Path for per-lab files (configs, sockets, pid files). */
  path(name: string): string {
    return join(this.dir, name);
  }

  async cleanup(): Promise<void> {
    await Promise.all([...this.daemons].map((d) => d.stop('SIGKILL')));
    this.cleanupSync();
  }

  cleanupSync(): void {
    for (const d of this.daemons) {
      try {
        process.kill(d.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    this.daemons.clear();
    for (const ns of this.namespaces.splice(0).reverse()) {
      killNamespacePids(ns);
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore', timeout: 10_000 });
      } catch {
        /* gone */
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
    live.delete(this);
  }
}

const DOC_V4 = [/^192\.0\.2\./, /^198\.51\.100\./, /^203\.0\.113\./];

/** Tests may only use documentation ranges; fail loudly before anything is configured. */
export function assertDocumentationAddress(cidr: string): void {
  const addr = cidr.split('/')[0] ?? '';
  const ok = addr.includes(':') ? /^2001:db8:/i.test(addr) : DOC_V4.some((re) => re.test(addr));
  if (!ok) throw new Error(`${cidr} is not in a documentation range (192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32)`);
}
