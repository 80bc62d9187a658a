// IPVS benchmark, guest side (runs in the lab VM, in a network namespace of its own; see
// bench.ts). Plain JavaScript over the compiled dist/, so it needs no build of its own.
//
//   node guest.mjs raw   SERVICES DESTS   time a plain `ipvsadm -R` of the ruleset
//   node guest.mjs vipd  SERVICES DESTS   vipd's cold sync, a no-op reconcile, one weight change
//
// Prints one line: RESULT <json>.
import { spawn } from 'node:child_process';
import { openSync, readFileSync, writeFileSync } from 'node:fs';

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

async function vipd() {
  const { IpvsManager } = await import(new URL('ipvs/manager.js', dist).href);
  const { desiredService, desiredTable, realserverKey, withService } = await import(new URL('ipvs/desired.js', dist).href);
  const { nullLogger } = await import(new URL('log/logger.js', dist).href);
  const config = services();
  const cfg = { ipvsadm: 'ipvsadm', sysctls: {}, drainTimeout: 300_000, modules: [], vipRanges: ['198.51.100.0/24'] };

  // Cold sync: from a new manager on an empty kernel to everything applied.
  const from = Date.now();
  const t0 = performance.now();
  const manager = new IpvsManager(cfg, nullLogger);
  await manager.start({ schedulers: ['mh'] });
  const t1 = performance.now();
  const weights = new Map();
  let desired = desiredTable(config, weights);
  const t2 = performance.now();
  const cold = await manager.reconcile(desired);
  const coldMs = performance.now() - t0;
  const to = Date.now();

  // Nothing to change, with the same table.
  const same = await manager.reconcile(desired);
  await quiet();

  // One realserver's weight, from decision to applied, three ways in each round so that all
  // three see the same load on the host:
  //  - derived: one service rebuilt and put in a table derived from the last (withService);
  //  - full: the daemon's path: the coordinator rebuilds the whole desired table from config
  //    and health on every pass (unchanged services come back as the same objects);
  //  - bare: the same edit by hand from this process (`ipvsadm -e`, no vipd): what the kernel
  //    and ipvsadm cost by themselves. There and back, so vipd's model stays true.
  const svc = config[Math.floor(config.length / 2)];
  const rs = svc.realservers[nDests - 1];
  const key = realserverKey(svc, rs);
  const changes = [];
  const fullChanges = [];
  const bare = [];
  const edit = (w) => run('ipvsadm', ['-e', '-t', `${svc.vip}:${svc.port}`, '-r', `${rs.address}:${svc.port}`, '-g', '-w', String(w)]);
  for (let i = 0; i < CHANGES; i++) {
    let c0 = performance.now();
    weights.set(key, 50);
    desired = withService(desired, desiredService(svc, weights));
    let r = await manager.reconcile(desired);
    changes.push({ ms: performance.now() - c0, ops: r.ops });
    c0 = performance.now();
    weights.set(key, 100);
    desired = desiredTable(config, weights);
    r = await manager.reconcile(desired);
    fullChanges.push({ ms: performance.now() - c0, ops: r.ops });
    bare.push(await edit(70), await edit(100));
  }
  const rssBusyMb = process.memoryUsage().rss / 2 ** 20;
  // Steady state: V8 returns the cold sync's peak to the system only once the process has been
  // idle a while (its memory reducer runs after some seconds without allocation).
  for (let i = 0; i < 25; i++) {
    await new Promise((r) => setTimeout(r, 2000));
    const m = process.memoryUsage();
    if (m.heapTotal <= 1.15 * m.heapUsed) break;
  }
  const rssMb = process.memoryUsage().rss / 2 ** 20;
  const heapMb = process.memoryUsage().heapUsed / 2 ** 20;

  // Nothing to change, with a table rebuilt from config (as after a reload): compared in full.
  desired = undefined;
  const t3 = performance.now();
  const rebuilt = await manager.reconcile(desiredTable(services(), weights));
  const rebuiltMs = performance.now() - t3;
  const rssAfterRebuildMb = process.memoryUsage().rss / 2 ** 20;
  manager.stop();
  await run('ipvsadm', ['-C']);
  return {
    from,
    to,
    coldMs,
    startMs: t1 - t0,
    buildMs: t2 - t1,
    reconcileMs: cold.durationMs,
    coldOps: cold.ops,
    noopOps: same.ops + rebuilt.ops,
    noopRebuiltMs: rebuiltMs,
    changeMs: median(changes.map((c) => c.ms)),
    changeOps: Math.max(...changes.map((c) => c.ops)),
    changes: changes.map((c) => Math.round(c.ms)),
    fullChangeMs: median(fullChanges.map((c) => c.ms)),
    fullChangeOps: Math.max(...fullChanges.map((c) => c.ops)),
    fullChanges: fullChanges.map((c) => Math.round(c.ms)),
    bareMs: median(bare),
    rssMb,
    rssBusyMb,
    heapMb,
    rssAfterRebuildMb,
  };
}

const result = mode === 'raw' ? await raw() : await vipd();
process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
process.exit(0);
