/**
 * IPVS benchmark, in one run of the lab VM (Debian's kernel under qemu TCG): a ruleset of
 * 10,000 mh virtual services × 20 realservers (200,000 destinations), each phase in a network
 * namespace of its own inside the guest (a fresh IPVS table) driven by bench/ipvs/guest.mjs.
 *  - cold_ratio: vipd's cold sync (new IpvsManager, start, a Coordinator taking every health
 *    target's first verdict, its first IPVS reconcile) ÷ a plain `ipvsadm -R` of the same
 *    rules. Goal ≤ 1.2. The two phases are minutes apart, so load from other jobs on the host
 *    skews it; cold_cpu_ratio is the same ratio in CPU time used by qemu (the guest's work,
 *    whatever the host's load).
 *  - scale_ratio: one realserver weight change, from decision to applied, with 200,000
 *    destinations ÷ the same with 20. Goal ≤ 1.5. Medians of 30 changes (15 health checks
 *    failing, 15 recovering), measured once the guest is idle again after the cold sync, on the
 *    daemon's path: a Coordinator (src/coordinator/coordinator.ts) with every service
 *    health-checked, its health monitor a fake that emits the verdicts, driving the real
 *    IpvsManager; timed from the verdict emitted to the coordinator's journal entry for the
 *    applied IPVS batch. The config sets coordinator.batchDelay to 0, so a change is passed at
 *    once (no batching: this times IPVS, not the batch gap). Each change is taken relative to a
 *    bare `ipvsadm -e` timed alongside it (host load cancels out); the report on stderr also
 *    gives the plain ratio.
 *  - change_ms: that change's time with 200,000 destinations; change_ops: its kernel
 *    operations (goal 1).
 *  - noop_ops: kernel operations of reconciles with nothing to change, both with the same
 *    table object (a pass with no new input) and after a reload of the same config, parsed again
 *    (goal 0).
 *  - rss_mb: resident memory of the node process holding config, the coordinator's state
 *    (200,000 health verdicts, desired state) and the desired and kernel tables for 200,000
 *    destinations, once settled after the cold sync and the changes: V8 gives the cold sync's
 *    peak back once idle, with a full GC of its own (waited for, up to 120 s; before it, a heap
 *    in use near its size may be mostly garbage). Goal ≤ 150. Also shown: the figures right
 *    after the changes and right after the reload.
 * Under emulation everything is many times slower than on hardware: only the ratios compare.
 * Run: BENCH_ONLY=ipvs make bench (root; builds dist/ first), or npx tsx bench/ipvs/bench.ts (which
 * compiles dist/ only if src/ipvs is newer: after changing src/coordinator or src/config, `make build`);
 * 8-10 min on a quiet host, most of it the two 210,000-operation restores under emulation
 * Last line: BENCH ipvs cold_ratio=... scale_ratio=... change_ms=... change_ops=... noop_ops=... rss_mb=...
 *   cold_cpu_ratio=... load=... (the host's 15-minute load average at the end)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, Vm } from '../../test/lab/vm.js';
import { buildDist } from '../../test/integration/ipvs/vm-scenario.js';

/** IPVS_BENCH_SERVICES=500 for a quick trial run; the figures are for 10,000. */
const SERVICES = Number(process.env.IPVS_BENCH_SERVICES ?? 10_000);
const DESTS = 20;
const GUEST = join(REPO_ROOT, 'bench/ipvs/guest.mjs');

interface RawResult {
  from: number;
  to: number;
  ops: number;
  ms: number;
  clearMs: number;
}

interface VipdResult {
  from: number;
  to: number;
  coldMs: number;
  startMs: number;
  buildMs: number;
  reconcileMs: number;
  rssAfterRebuildMb: number;
  rssBusyMb: number;
  bareMs: number;
  coldOps: number;
  noopOps: number;
  noopRebuiltMs: number;
  changeMs: number;
  changeOps: number;
  changes: number[];
  rssMb: number;
  /** Whether V8 ran its idle full GC before rssMb was read (else the heap may still hold garbage). */
  settled: boolean;
  heapMb: number;
}

const say = (msg: string): void => void process.stderr.write(`bench ipvs: ${msg}\n`);

/**
 * Waits until the guest's CPUs are idle: tearing down a namespace with 200,000 destinations
 * goes on in the kernel after its last process exits, and must not slow the next phase.
 */
async function settle(vm: Vm): Promise<void> {
  const r = await vm.exec(
    `for i in $(seq 60); do a=$(head -1 /proc/stat); sleep 2; b=$(head -1 /proc/stat); ` +
      `echo "$a $b" | awk '{t1=0; for(i=2;i<=11;i++) t1+=$i; t2=0; for(i=13;i<=22;i++) t2+=$i; idle=($16+$17)-($5+$6); if (idle/(t2-t1) > 0.95) exit 0; exit 1}' && exit 0; done; exit 1`,
    { timeoutMs: 200_000 },
  );
  if (r.code !== 0) say('guest never became idle; measuring anyway');
}

/** CPU seconds qemu has used: under TCG the guest's progress, whatever else loads the host. */
function qemuCpuS(vm: Vm): number {
  const f = readFileSync(`/proc/${vm.pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(f[11]) + Number(f[12])) / 100;
}

/**
 * The phase's main operation (from `from` to `to`, guest clock in ms since the epoch) in qemu
 * CPU seconds, from samples taken every 250 ms. The guest's clock follows the host's (TCG
 * runs it from the host clock) up to an offset measured before the phase, to a second.
 */
async function phase<T extends { from: number; to: number }>(vm: Vm, mode: 'raw' | 'vipd', services: number, timeoutMs: number): Promise<T & { cpuS: number }> {
  // A namespace of its own: a fresh IPVS table, gone when the phase ends.
  await settle(vm);
  const t0 = Date.now();
  const guestNow = Number((await vm.run('date +%s')).stdout.trim()) * 1000;
  const offset = guestNow - (t0 + Date.now()) / 2;
  const samples: [number, number][] = [];
  const sampler = setInterval(() => samples.push([Date.now(), qemuCpuS(vm)]), 250);
  try {
    const r = await vm.exec(`unshare -n sh -c 'ip link set lo up && node ${GUEST} ${mode} ${services} ${DESTS}'`, { timeoutMs });
    const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
    if (r.code !== 0 || !line) throw new Error(`guest ${mode} ${services}: exit ${r.code}\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`);
    const res = JSON.parse(line.slice(7)) as T;
    const at = (guestMs: number): number => {
      const host = guestMs - offset;
      return (samples.find(([t]) => t >= host) ?? samples.at(-1) ?? [0, 0])[1];
    };
    return { ...res, cpuS: at(res.to) - at(res.from) };
  } finally {
    clearInterval(sampler);
  }
}

const loadavg = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

const started = performance.now();
await buildDist();
const vm = await Vm.boot(undefined, { memoryMb: 2048 });
try {
  say(`vm up in ${Math.round(vm.bootMs)} ms`);
  const raw = await phase<RawResult>(vm, 'raw', SERVICES, 900_000);
  say(`raw ipvsadm -R: ${raw.ops} operations in ${(raw.ms / 1000).toFixed(1)} s (cleared in ${(raw.clearMs / 1000).toFixed(1)} s); qemu cpu ${raw.cpuS.toFixed(0)} s; host load ${loadavg()}`);
  const big = await phase<VipdResult>(vm, 'vipd', SERVICES, 900_000);
  const s = (ms: number): string => (ms / 1000).toFixed(1);
  say(
    `vipd: cold sync ${big.coldOps} operations in ${s(big.coldMs)} s (start ${s(big.startMs)}, coordinator ${s(big.buildMs)}, reconcile ${s(big.reconcileMs)}); ` +
      `qemu cpu ${big.cpuS.toFixed(0)} s; host load ${loadavg()}`,
  );
  say(`vipd: no-op reconciles: ${big.noopOps} operations (a reload of the same config passed and compared in ${Math.round(big.noopRebuiltMs)} ms)`);
  const changed = (r: VipdResult, n: number): void => {
    say(`vipd: one weight change with ${n} destinations, health verdict to applied: ${r.changes.join(' ')} ms (median ${Math.round(r.changeMs)}), ${r.changeOps} op; a bare ipvsadm -e: ${Math.round(r.bareMs)} ms`);
  };
  changed(big, SERVICES * DESTS);
  say(
    `vipd: rss ${big.rssMb.toFixed(1)} MB ${big.settled ? 'settled' : 'NOT settled (no idle GC in 120 s)'} (heap in use ${big.heapMb.toFixed(1)} MB), ${big.rssBusyMb.toFixed(1)} MB right after the changes, ` +
      `${big.rssAfterRebuildMb.toFixed(1)} MB right after the reload`,
  );
  const small = await phase<VipdResult>(vm, 'vipd', 1, 300_000);
  changed(small, DESTS);
  const fmt = (n: number, d = 2): string => n.toFixed(d);
  // Each change over the bare edit measured alongside it: the host's load, which drifts between
  // the phases minutes apart, cancels out. The plain ratio of times is shown too.
  const overhead = (r: VipdResult): number => r.changeMs / r.bareMs;
  say(`scale: ${fmt(big.changeMs / small.changeMs)} as plain times; ${fmt(overhead(big))} vs ${fmt(overhead(small))} times a bare ipvsadm -e`);
  say(`total ${((performance.now() - started) / 1000).toFixed(0)} s`);
  process.stdout.write(
    `BENCH ipvs cold_ratio=${fmt(big.coldMs / raw.ms)} scale_ratio=${fmt(overhead(big) / overhead(small))} change_ms=${fmt(big.changeMs, 1)} change_ops=${big.changeOps} noop_ops=${big.noopOps} rss_mb=${fmt(big.rssMb, 1)} cold_cpu_ratio=${fmt(big.cpuS / raw.cpuS)} load=${loadavg().split(' ')[2]}\n`,
  );
} finally {
  await vm.shutdown();
}
