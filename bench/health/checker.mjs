/**
 * The measured process of the health benchmark: the compiled HealthMonitor (dist/, as the
 * daemon runs it) checking `targets` TCP realservers, driven over IPC by bench.ts.
 * Plain JavaScript on purpose: a TypeScript loader in this process would be counted in its
 * memory and CPU.
 */
import { readFileSync } from 'node:fs';
import { HealthMonitor } from '../../dist/health/index.js';
import { nullLogger } from '../../dist/log/logger.js';

const monitor = new HealthMonitor({ concurrency: 1000, history: 20 }, nullLogger);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** Nanoseconds this process has waited for a CPU while runnable (Linux schedstat). */
const runqueueWaitNs = () => Number(readFileSync('/proc/self/schedstat', 'utf8').split(' ')[1]);

/**
 * Checks `targets` realservers (addresses × ports) every `intervalMs`; after `warmupMs`
 * measures for `measureMs`.
 * @param {{ targets: number, addresses: string[], basePort: number, intervalMs: number, warmupMs: number, measureMs: number }} o
 */
async function run(o) {
  const specs = [];
  for (let i = 0; i < o.targets; i++) {
    const address = o.addresses[i % o.addresses.length];
    const port = o.basePort + Math.floor(i / o.addresses.length);
    specs.push({ id: `${address}:${port}`, address, port, check: { type: 'tcp', interval: o.intervalMs, timeout: 1000, rise: 2, fall: 3, startUp: false } });
  }
  monitor.update(specs);
  await sleep(o.warmupMs);
  monitor.stats(true);
  const cpu0 = process.cpuUsage();
  const wait0 = runqueueWaitNs();
  const t0 = performance.now();
  let rss = 0;
  const sampler = setInterval(() => (rss = Math.max(rss, process.memoryUsage.rss())), 250);
  await sleep(o.measureMs);
  clearInterval(sampler);
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const s = monitor.stats(true);
  return {
    checksPerS: s.checks / seconds,
    failed: s.failed,
    cpuPct: (cpu.user + cpu.system) / 1e4 / seconds,
    // On a shared machine: how much of the time the checker was ready to run but not running.
    runqWaitPct: (runqueueWaitNs() - wait0) / 1e7 / seconds,
    rssMb: Math.max(rss, process.memoryUsage.rss()) / 1048576,
    latenessP50Ms: s.latenessP50Ms,
    latenessP99Ms: s.latenessP99Ms,
    latenessMaxMs: s.latenessMaxMs,
  };
}

process.on('message', (m) => {
  if (m.op === 'run') void run(m).then((reply) => process.send?.({ reply }));
  else if (m.op === 'stop') {
    monitor.stop();
    process.disconnect();
  }
});
// Gone with the benchmark, even if it was killed.
process.on('disconnect', () => process.exit(0));
process.send?.({ ready: true });
