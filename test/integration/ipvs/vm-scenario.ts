/**
 * Runs IPVS scenarios in the lab VM (real kernel). Each scenario gets a network namespace of
 * its own inside the guest (`unshare -n`), which has its own IPVS table, conntrack table and
 * net.ipv4.vs.* settings: a fresh director, gone with everything in it when the scenario
 * ends. A scenario is a list of phases; each phase is one run of guest/driver.mjs (a new node
 * process, as a restarted vipd would be) in that same namespace.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import type { Effective } from '../../../src/ipvs/desired.js';
import { exec } from '../../../src/util/exec.js';
import { REPO_ROOT, type Vm } from '../../lab/vm.js';

const DRIVER = join(REPO_ROOT, 'test/integration/ipvs/guest/driver.mjs');

/** A service as written in vipd.yaml (schema input). */
export type ServiceInput = Record<string, unknown>;

export type Step =
  | { op: 'sh'; cmd: string; timeoutMs?: number }
  | { op: 'start'; ipvs?: Record<string, unknown>; vipRanges?: string[]; schedulers?: string[]; drainPollMs?: number }
  /** weights: [service index, realserver index, effective weight]. */
  | { op: 'reconcile'; services: ServiceInput[]; weights?: [number, number, Effective][] }
  | { op: 'table' }
  | { op: 'counters' }
  | { op: 'untilDrained'; timeoutMs: number }
  /** Until the drain poll has read counts for every draining destination. */
  | { op: 'untilCounted'; timeoutMs: number }
  | { op: 'until'; cmd: string; match: string; timeoutMs: number }
  | { op: 'listen'; port: number }
  | { op: 'connect'; name: string; host: string; port: number }
  | { op: 'close'; name: string }
  | { op: 'udp'; host: string; port: number; sports: number[] }
  | { op: 'sleep'; ms: number };

export type StepResult = { op: string; thrown?: string; stepMs?: number } & Record<string, unknown>;

/**
 * The namespace's network: a dummy device (the guest has no veth) carrying the director's
 * addresses, with the VIP and realserver ranges routed onto it. Packets sent there vanish,
 * which is all IPVS needs to schedule them; realservers that must answer are given local
 * addresses by the scenario itself.
 */
const SETUP = `set -e
ip link set lo up
ip link add d0 type dummy
ip link set d0 up
ip addr add 192.0.2.1/24 dev d0
ip addr add 203.0.113.254/24 dev d0
ip -6 addr add 2001:db8:0:1::1/64 dev d0
ip -6 addr add 2001:db8:203::fe/64 dev d0
ip route add 198.51.100.0/24 dev d0
ip -6 route add 2001:db8:100::/64 dev d0
set +e
`;

let seq = 0;

/** The one-file build of guest/lib.ts that the driver imports. */
export const GUEST_LIB = join(REPO_ROOT, 'dist/test/ipvs-guest.mjs');

/** Bundles guest/lib.ts (vipd's IPVS code from src/, with config and logging) for the driver. */
export async function bundleGuest(): Promise<void> {
  await build({
    entryPoints: [join(REPO_ROOT, 'test/integration/ipvs/guest/lib.ts')],
    outfile: GUEST_LIB,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    // Less to parse: node's start-up in the guest is most of a short scenario's time.
    minify: true,
    logLevel: 'warning',
    // Bundled CommonJS dependencies (winston) call require for node's own modules.
    banner: { js: "import { createRequire as __vipdRequire } from 'node:module'; const require = __vipdRequire(import.meta.url);" },
  });
}

/** Compiles src/ to dist/ (what the guest runs) unless dist is newer than every IPVS source. */
export async function buildDist(): Promise<void> {
  const out = join(REPO_ROOT, 'dist/ipvs/manager.js');
  const srcDir = join(REPO_ROOT, 'src/ipvs');
  const newest = Math.max(
    ...['desired', 'kernel', 'manager', 'model', 'parse', 'plan', 'render', 'sysctl'].map((f) => statSync(join(srcDir, `${f}.ts`)).mtimeMs),
  );
  if (existsSync(out) && statSync(out).mtimeMs > newest) return;
  // tsc emits even when other parts of the tree have type errors; what matters is our output.
  const r = await exec('npx', ['--no-install', 'tsc', '-p', 'tsconfig.json'], { timeoutMs: 300_000, cwd: REPO_ROOT });
  if (!existsSync(out) || statSync(out).mtimeMs <= newest) throw new Error(`tsc did not produce ${out}:\n${r.stdout}\n${r.stderr}`);
}

/** Runs the phases in a fresh namespace; returns each phase's step results. */
export async function scenario(vm: Vm, phases: Step[][], timeoutMs = 240_000): Promise<StepResult[][]> {
  const n = `${process.pid}-${seq++}`;
  const file = `/tmp/ipvs-scenario-${n}.json`;
  const script = `/tmp/ipvs-scenario-${n}.sh`;
  await vm.run(`cat > ${file}`, { input: JSON.stringify(phases) });
  const body = phases.map((_, i) => `node ${DRIVER} ${file} ${i} || exit 1`).join('\n');
  await vm.run(`cat > ${script}`, { input: `${SETUP}${body}\n` });
  const r = await vm.exec(`unshare -n sh ${script}; rc=$?; rm -f ${file} ${script}; exit $rc`, { timeoutMs });
  const results = r.stdout
    .split('\n')
    .filter((l) => l.startsWith('RESULT '))
    .map((l) => JSON.parse(l.slice(7)) as StepResult[]);
  const thrown = results.flat().find((s) => s.thrown);
  if (r.code !== 0 || results.length !== phases.length || thrown) {
    throw new Error(`scenario failed (exit ${r.code}, ${results.length}/${phases.length} phases)${thrown ? `: ${thrown.op}: ${thrown.thrown}` : ''}\n--- stdout ---\n${r.stdout.slice(-6000)}\n--- stderr ---\n${r.stderr.slice(-6000)}`);
  }
  return results;
}

/** `ipvsadm -Sn` output as a sorted list of lines. */
export function saved(r: StepResult | undefined): string[] {
  return String(r?.stdout ?? '')
    .split('\n')
    .filter(Boolean)
    .sort();
}

/** source port → destination, from /proc/net/ip_vs_conn (hex fields). */
export function assignment(r: StepResult | undefined): Map<number, string> {
  const m = new Map<number, string>();
  for (const line of String(r?.stdout ?? '').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[0] !== 'UDP' && f[0] !== 'TCP') continue;
    const ip = (f[5] ?? '').match(/../g)?.map((h) => parseInt(h, 16)) ?? [];
    m.set(parseInt(f[2] ?? '', 16), `${ip.join('.')}:${parseInt(f[6] ?? '', 16)}`);
  }
  return m;
}
