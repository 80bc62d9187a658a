// IPVS benchmark, guest side (runs in the lab VM, in a network namespace of its own; see
// bench.ts). Plain JavaScript over the compiled dist/, so it needs no build of its own.
//
//   node guest.mjs raw   SERVICES DESTS   time a plain `ipvsadm -R` of the ruleset
//   node guest.mjs vipd  SERVICES DESTS   vipd's cold sync, no-op reconciles, one weight change, all
//                                         through a Coordinator (fake health monitor, real IPVS)
//
// Prints one line: RESULT <json>.
import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { openSync, readFileSync, writeFileSync } from 'node:fs';
import { constants, PerformanceObserver } from 'node:perf_hooks';

const [mode, nServices, nDests] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const dist = new URL('../../dist/', import.meta.url);
const CHANGES = 15;

/**
 * The ruleset: mh services (fallback + port flags, as an ECMP director runs them), 250 VIPs
 * × as many ports as needed, each with the same realservers by direct routing.
 */
function services() {
  const out = [];
  for (let i = 0; i < nServices; i++) {
    const port = 1000 + Math.floor(i / 250);
    out.push({
      vip: `198.51.100.${1 + (i % 250)}`,
      protocol: 'tcp',
      port,
      scheduler: 'mh',
      flags: ['mh-fallback', 'mh-port'],
      onePacket: false,
      forwarding: 'dr',
      realservers: Array.from({ length: nDests }, (_, j) => ({ address: `203.0.113.${1 + j}`, weight: 100 })),
    });
  }
  return out;
}

const run = (file, args, stdinFile) =>
  new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(file, args, { stdio: [stdinFile === undefined ? 'ignore' : openSync(stdinFile, 'r'), 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 && err.trim() === '' ? resolve(performance.now() - t0) : reject(new Error(`${file} ${args.join(' ')}: exit ${code}: ${err.slice(0, 500)}`))));
  });

/** Waits (up to 30 s) until the CPUs are 90 % idle: the cold sync's aftermath (the kernel's
 * work, node's garbage collector) must not be billed to the weight changes measured next. */
async function quiet() {
  const sample = () => readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
  for (let i = 0; i < 15; i++) {
    const a = sample();
    await new Promise((r) => setTimeout(r, 2000));
    const b = sample();
    const total = b.reduce((n, v, j) => n + v - a[j], 0);
    const idle = b[3] + b[4] - a[3] - a[4];
    if (total > 0 && idle / total > 0.9) return;
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function raw() {
  const lines = [];
  for (const s of services()) {
    const svc = `-t ${s.vip}:${s.port}`;
    lines.push(`-A ${svc} -s mh -b mh-fallback,mh-port`);
    for (const r of s.realservers) lines.push(`-a ${svc} -r ${r.address}:${s.port} -g -w ${r.weight}`);
  }
  writeFileSync('/tmp/ipvs-bench-rules', `${lines.join('\n')}\n`);
  const from = Date.now();
  const ms = await run('ipvsadm', ['-R'], '/tmp/ipvs-bench-rules');
  const to = Date.now();
  // Emptied here, so tearing the namespace down does not compete with the next measurement.
  const clearMs = await run('ipvsadm', ['-C']);
  return { from, to, ops: lines.length, ms, clearMs };
}

/** The health monitor's seam, as the coordinator sees it: targets in, verdicts out. */
class FakeHealth extends EventEmitter {
  /** Ids of the targets given (as the monitor holds them), until their first verdicts are out. */
  ids = [];
  update(targets) {
    this.ids = targets.map((t) => t.id);
    return { added: [], changed: [], removed: [], kept: 0 };
  }
  status() {
    return undefined;
  }
  stop() {}
  verdict(id, up, first = false) {
    this.emit('transition', { id, up, first, pending: false, reason: up ? 'ok' : 'connect ECONNREFUSED', at: Date.now() });
  }
  /** Every target up, at once (in the daemon they come in over the first check interval). */
  firstVerdicts() {
    for (const id of this.ids) this.verdict(id, true, true);
    this.ids = [];
  }
}

async function vipd() {
  const { IpvsManager } = await import(new URL('ipvs/manager.js', dist).href);
  const { Coordinator } = await import(new URL('coordinator/coordinator.js', dist).href);
  const { targetId } = await import(new URL('coordinator/desired.js', dist).href);
  const { Journal } = await import(new URL('coordinator/journal.js', dist).href);
  const { OverrideStore } = await import(new URL('coordinator/overrides.js', dist).href);
  const { validateConfig } = await import(new URL('config/load.js', dist).href);
  const { nullLogger } = await import(new URL('log/logger.js', dist).href);
  // The daemon's config: every service health-checked. batchDelay 0: each health change gets
  // a pass of its own at once, without batching: the bench times IPVS, not the batch gap.
  const load = () => {
    const list = services().map((s) => ({ ...s, check: { type: 'tcp' } }));
    const r = validateConfig({
      vipRanges: ['198.51.100.0/24'],
      bgp: { asn: 64513, routerId: '192.0.2.10' },
      coordinator: { batchDelay: 0, presencePorts: [], resyncInterval: 0 },
      vips: [...new Set(list.map((s) => s.vip))].map((address) => ({ address })),
      services: list,
    });
    if (!r.ok) throw new Error(`config: ${JSON.stringify(r.problems.slice(0, 3))}`);
    return r.config;
  };
  const config = load();
  const cfg = { ipvsadm: 'ipvsadm', sysctls: {}, drainTimeout: 300_000, modules: [], vipRanges: config.vipRanges };

  // Cold sync: from a new manager and coordinator on an empty kernel, as vipd starts, to every
  // health target's first verdict applied.
  const from = Date.now();
  const t0 = performance.now();
  const manager = new IpvsManager(cfg, nullLogger);
  await manager.start({ schedulers: ['mh'] });
  const t1 = performance.now();
  // Each reconcile the IPVS lane runs, as it completes.
  const reconciles = [];
  let reconciled = () => {};
  const reconcile = manager.reconcile.bind(manager);
  manager.reconcile = async (table) => {
    const started = performance.now();
    const r = await reconcile(table);
    reconciles.push({ started, r });
    reconciled(r);
    return r;
  };
  const next = () => new Promise((resolve) => (reconciled = resolve));
  const journal = new Journal({ capacity: 10_000, maxFileBytes: 1 << 20 });
  const health = new FakeHealth();
  const presence = { open: async () => undefined, close: async () => undefined };
  const c = new Coordinator(config, { log: nullLogger, journal, health, ipvs: manager, overrides: new OverrideStore(), presence });
  c.start();
  let first = next();
  health.firstVerdicts();
  const cold = await first;
  const coldMs = performance.now() - t0;
  const to = Date.now();
  await c.settle();

  // Nothing to change: a pass with the same inputs hands IPVS the same table.
  first = next();
  c.schedule(true);
  const same = await first;
  await c.settle();
  await quiet();

  // One realserver's weight, from the health verdict to the IPVS lane reporting it applied: a
  // failing check takes it to 0, the next verdict back to 100. In each round, to see the same
  // host load, the same edit by hand (`ipvsadm -e`, no vipd): what the kernel and ipvsadm cost
  // by themselves. There and back, so vipd's model stays true.
  const svc = config.services[Math.floor(config.services.length / 2)];
  const rs = svc.realservers[nDests - 1];
  const id = targetId(svc, rs);
  const changes = [];
  const bare = [];
  let appliedAt = () => {};
  journal.on('event', (e) => {
    if (e.kind === 'ipvs' && e.message.startsWith('applied ')) appliedAt(performance.now());
  });
  const change = async (up) => {
    const at = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the IPVS lane never reported the change applied')), 120_000);
      appliedAt = (t) => {
        clearTimeout(timer);
        resolve(t);
      };
    });
    const n = reconciles.length;
    const c0 = performance.now();
    health.verdict(id, up);
    const ms = (await at) - c0;
    await c.settle();
    changes.push({ ms, ops: reconciles.slice(n).reduce((k, x) => k + x.r.ops, 0) });
  };
  const edit = (w) => run('ipvsadm', ['-e', '-t', `${svc.vip}:${svc.port}`, '-r', `${rs.address}:${svc.port}`, '-g', '-w', String(w)]);
  for (let i = 0; i < CHANGES; i++) {
    await change(false);
    await change(true);
    bare.push(await edit(70), await edit(100));
  }
  const rssBusyMb = process.memoryUsage().rss / 2 ** 20;
  // Steady state: V8 returns the cold sync's peak to the system only once the process has been
  // idle a while: its memory reducer then runs a full GC of its own and shrinks the heap. Until
  // that GC the heap may be tight around garbage (in use near its size), which is not settled.
  let fullGcs = 0;
  const gcs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) fullGcs++;
  });
  gcs.observe({ entryTypes: ['gc'] });
  for (let i = 0; i < 60; i++) {
    await new Promise((r) => setTimeout(r, 2000));
    const m = process.memoryUsage();
    if (fullGcs > 0 && m.heapTotal <= 1.15 * m.heapUsed) break;
  }
  gcs.disconnect();
  const settled = fullGcs > 0;
  const rssMb = process.memoryUsage().rss / 2 ** 20;
  const heapMb = process.memoryUsage().heapUsed / 2 ** 20;

  // Nothing to change, after a reload of the same config (parsed again, so every service is
  // built afresh and compared in full).
  const t3 = performance.now();
  first = next();
  await c.reconfigure(load());
  const rebuilt = await first;
  const rebuiltMs = performance.now() - t3;
  await c.settle();
  const rssAfterRebuildMb = process.memoryUsage().rss / 2 ** 20;
  await c.stop();
  await run('ipvsadm', ['-C']);
  return {
    from,
    to,
    coldMs,
    startMs: t1 - t0,
    // From the first verdict to the IPVS lane starting the batch: the coordinator's work.
    buildMs: (reconciles[0]?.started ?? t1) - t1,
    reconcileMs: cold.durationMs,
    coldOps: cold.ops,
    noopOps: same.ops + rebuilt.ops,
    noopRebuiltMs: rebuiltMs,
    changeMs: median(changes.map((x) => x.ms)),
    changeOps: Math.max(...changes.map((x) => x.ops)),
    changes: changes.map((x) => Math.round(x.ms)),
    bareMs: median(bare),
    rssMb,
    settled,
    rssBusyMb,
    heapMb,
    rssAfterRebuildMb,
  };
}

const result = mode === 'raw' ? await raw() : await vipd();
process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
process.exit(0);
