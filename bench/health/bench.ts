/**
 * Health-check benchmark: 10,000 TCP realservers (10 addresses × 1,000 ports, one server
 * process in a namespace) checked every second from a director namespace for 60 s by the
 * compiled HealthMonitor (bench/health/checker.mjs over dist/). Then the same targets at
 * shorter intervals, 8 s per step, until a step no longer keeps up: the highest sustained rate.
 *  - checks_per_s: checks completed per second over the 60 s
 *  - cpu_pct: CPU time of the checker process, in % of one core
 *  - rss_mb: peak resident memory of the checker process during the 60 s
 *  - lateness_p99_ms: 99th percentile of how late checks started against their schedule
 *  - max_rate: highest rate (checks/s) sustained with lateness p99 ≤ 100 ms and no failures
 *  - runq_wait_pct: time the checker was ready to run but waited for a CPU (other load on the
 *    machine; when it is high the other figures measure the machine, not the checker)
 * Run: npx tsx bench/health/bench.ts (root; builds dist/ first if it is older than src/health)
 * Last line: BENCH health checks_per_s=... cpu_pct=... rss_mb=... lateness_p99_ms=... max_rate=...
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exec } from '../../src/util/exec.js';
import { Lab } from '../../test/lab/netns.js';

const TARGETS = 10_000;
const ADDRESSES = Array.from({ length: 10 }, (_, i) => `203.0.113.${10 + i}`);
const BASE_PORT = 20_000;
const MEASURE_MS = 60_000;
/** Rates tried after the main run, as intervals for the same 10,000 targets. */
const RAMP = [12_500, 15_000, 16_000, 17_000, 18_000, 20_000];
const RAMP_MS = 8_000;
const LATENESS_GOAL_MS = 100;

const root = fileURLToPath(new URL('../..', import.meta.url));
const say = (msg: string): void => void process.stderr.write(`bench health: ${msg}\n`);

interface RunResult {
  checksPerS: number;
  failed: number;
  cpuPct: number;
  runqWaitPct: number;
  rssMb: number;
  latenessP50Ms: number;
  latenessP99Ms: number;
  latenessMaxMs: number;
}

function newest(dir: string, ext: string): number {
  let t = 0;
  for (const f of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, f.name);
    if (f.isDirectory()) t = Math.max(t, newest(p, ext));
    else if (f.name.endsWith(ext)) t = Math.max(t, statSync(p).mtimeMs);
  }
  return t;
}

/** The checker runs dist/; `make bench` builds it, a direct run may find it stale. */
async function ensureBuild(): Promise<void> {
  const dist = join(root, 'dist/health');
  if (existsSync(join(dist, 'index.js')) && newest(dist, '.js') >= newest(join(root, 'src/health'), '.ts')) return;
  say('dist/health is missing or older than src/health: building');
  // Other subsystems' type errors must not stop this build: tsc emits regardless.
  await exec('npx', ['--no-install', 'tsc', '-p', 'tsconfig.json'], { timeoutMs: 300_000, cwd: root });
  if (!existsSync(join(dist, 'index.js'))) throw new Error('tsc did not produce dist/health/index.js');
}

class Checker {
  private waiting?: (r: RunResult) => void;

  constructor(private readonly child: ChildProcess) {
    child.on('message', (m) => this.waiting?.((m as { reply: RunResult }).reply));
  }

  ready(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.child.once('message', () => resolve());
      this.child.once('exit', (code) => reject(new Error(`checker exited (${code})`)));
    });
  }

  run(intervalMs: number, warmupMs: number, measureMs: number): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('checker did not report')), warmupMs + measureMs + 30_000);
      this.waiting = (r) => {
        clearTimeout(t);
        resolve(r);
      };
      this.child.send({ op: 'run', targets: TARGETS, addresses: ADDRESSES, basePort: BASE_PORT, intervalMs, warmupMs, measureMs });
    });
  }
}

const fmt = (r: RunResult): string =>
  `${Math.round(r.checksPerS)} checks/s, ${r.failed} failed, cpu ${r.cpuPct.toFixed(1)}% (runqueue wait ${r.runqWaitPct.toFixed(1)}%), rss ${r.rssMb.toFixed(0)} MB, ` +
  `lateness p50 ${r.latenessP50Ms} ms p99 ${r.latenessP99Ms} ms max ${r.latenessMaxMs.toFixed(0)} ms`;

async function main(): Promise<void> {
  await ensureBuild();
  const lab = await Lab.create();
  let child: ChildProcess | undefined;
  try {
    const dir = await lab.ns('dir');
    const rs = await lab.ns('rs');
    await lab.veth({ ns: dir, dev: 'eth0', cidrs: ['203.0.113.1/24'] }, { ns: rs, dev: 'eth0', cidrs: ADDRESSES.map((a) => `${a}/24`) });
    const server = lab.spawn(rs, process.execPath, ['--import', 'tsx', join(root, 'bench/health/server.ts'), String(BASE_PORT), String(TARGETS / ADDRESSES.length)]);
    await server.waitFor(/^ready/m, 60_000);
    child = spawn('ip', ['netns', 'exec', dir, process.execPath, join(root, 'bench/health/checker.mjs')], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const checker = new Checker(child);
    await checker.ready();

    say(`${TARGETS} TCP targets every 1000 ms for ${MEASURE_MS / 1000} s`);
    const main = await checker.run(1000, 5_000, MEASURE_MS);
    say(fmt(main));
    const sustains = (r: RunResult, rate: number): boolean => r.checksPerS >= 0.98 * rate && r.latenessP99Ms <= LATENESS_GOAL_MS && r.failed === 0;
    let maxRate = sustains(main, TARGETS) ? main.checksPerS : 0;
    for (const rate of RAMP) {
      const interval = Math.round((TARGETS / rate) * 1000);
      const r = await checker.run(interval, 3_000, RAMP_MS);
      const ok = sustains(r, TARGETS / (interval / 1000));
      say(`interval ${interval} ms (${rate}/s offered): ${fmt(r)}${ok ? '' : ' — not sustained'}`);
      if (!ok) break;
      maxRate = r.checksPerS;
    }
    console.log(
      `BENCH health checks_per_s=${Math.round(main.checksPerS)} cpu_pct=${main.cpuPct.toFixed(1)} rss_mb=${main.rssMb.toFixed(0)} ` +
        `lateness_p99_ms=${main.latenessP99Ms} max_rate=${Math.round(maxRate)} targets=${TARGETS} failed=${main.failed} runq_wait_pct=${main.runqWaitPct.toFixed(1)}`,
    );
  } finally {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child?.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    }
    await lab.cleanup();
  }
}

main().catch((e: unknown) => {
  say(`failed: ${e instanceof Error ? e.stack : String(e)}`);
  process.exit(1);
});
