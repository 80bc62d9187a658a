// Runs inside the test VM, in a network namespace of its own (see ../vm-scenario.ts): drives
// vipd's IpvsManager (bundled from src/ by vm-scenario.ts) against the real kernel, step by step, and prints
// one line `RESULT <json>` with what each step returned. Steps that hold state across the
// run (TCP servers and connections, the manager) live in this process.
//
//   node driver.mjs SCENARIO.json PHASE
//
// Plain JavaScript: it runs on the guest's node without a build step of its own.
import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';

// One file (see lib.ts): loading hundreds of modules over 9p under emulation takes seconds.
const { IpvsManager, desiredTable, realserverKey, serviceSchema, configureLogging, logger } = await import(
  new URL('../../../../dist/test/ipvs-guest.mjs', import.meta.url).href
);

const [file, phase] = process.argv.slice(2);
const steps = JSON.parse(readFileSync(file, 'utf8'))[Number(phase)];
configureLogging(process.env.VIPD_LOG ?? 'info', 'json');
const log = logger('ipvs');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sh = (cmd, timeoutMs = 60_000) =>
  new Promise((resolve) => {
    execFile('/bin/sh', ['-c', cmd], { timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });

let manager;
const servers = [];
const conns = new Map();

function table(services, weights = []) {
  const parsed = services.map((s) => serviceSchema.parse(s));
  const w = new Map();
  for (const [svcIndex, rsIndex, eff] of weights) w.set(realserverKey(parsed[svcIndex], parsed[svcIndex].realservers[rsIndex]), eff);
  return desiredTable(parsed, w);
}

const ops = {
  async sh({ cmd, timeoutMs }) {
    return sh(cmd, timeoutMs);
  },
  async start({ ipvs = {}, vipRanges = ['198.51.100.0/24', '2001:db8:100::/64'], schedulers, drainPollMs = 500 }) {
    await manager?.stop();
    const cfg = { ipvsadm: 'ipvsadm', sysctls: {}, drainTimeout: 300_000, modules: [], ...ipvs, vipRanges };
    manager = new IpvsManager(cfg, log, { drainPollMs });
    return manager.start({ schedulers });
  },
  async reconcile({ services, weights }) {
    try {
      return await manager.reconcile(table(services, weights));
    } catch (e) {
      return { error: e.message, op: e.op, failed: e.failed };
    }
  },
  async table() {
    return manager.table();
  },
  async counters() {
    return Object.fromEntries([...(await manager.counters())].map(([id, c]) => [id, { ...c, dests: Object.fromEntries(c.dests) }]));
  },
  async untilDrained({ timeoutMs }) {
    const t0 = Date.now();
    while (manager.table().draining > 0) {
      if (Date.now() - t0 > timeoutMs) return { drained: false, ms: Date.now() - t0 };
      await sleep(100);
    }
    return { drained: true, ms: Date.now() - t0 };
  },
  async untilCounted({ timeoutMs }) {
    // Until the drain poll has read connection counts for every draining destination.
    const t0 = Date.now();
    const counted = () => manager.table().services.every((s) => s.dests.every((d) => !d.draining || d.draining.active !== undefined));
    while (!counted() && Date.now() - t0 < timeoutMs) await sleep(100);
    return { counted: counted(), ms: Date.now() - t0 };
  },
  async until({ cmd, match, timeoutMs }) {
    const t0 = Date.now();
    const re = new RegExp(match, 'm');
    for (;;) {
      const r = await sh(cmd);
      if (re.test(r.stdout)) return { matched: true, ms: Date.now() - t0, stdout: r.stdout };
      if (Date.now() - t0 > timeoutMs) return { matched: false, ms: Date.now() - t0, stdout: r.stdout };
      await sleep(200);
    }
  },
  async listen({ port }) {
    const srv = createServer((s) => {
      s.on('data', (d) => s.write(d));
      s.on('error', () => undefined);
    });
    await new Promise((resolve, reject) => srv.listen(port, '0.0.0.0', resolve).once('error', reject));
    servers.push(srv);
    return { listening: port };
  },
  async connect({ name, host, port }) {
    const c = connect(port, host);
    c.on('error', () => undefined);
    await new Promise((resolve, reject) => {
      c.once('connect', resolve);
      c.once('error', reject);
      setTimeout(() => reject(new Error(`connect ${host}:${port} timed out`)), 10_000);
    });
    c.write('ping');
    const echo = await new Promise((resolve) => c.once('data', (d) => resolve(String(d))));
    conns.set(name, c);
    return { connected: true, echo };
  },
  async close({ name }) {
    // A reset (not a FIN): IPVS then holds the entry for 10 s (CLOSE) instead of 2 min (TIME_WAIT).
    conns.get(name).resetAndDestroy();
    conns.delete(name);
    return { closed: name };
  },
  async udp({ host, port, sports }) {
    // One datagram from each source port; a few hundred sockets at a time (emulation is slow).
    for (let i = 0; i < sports.length; i += 250) {
      await Promise.all(
        sports.slice(i, i + 250).map(async (sport) => {
          const s = createSocket(host.includes(':') ? 'udp6' : 'udp4');
          await new Promise((resolve) => s.bind(sport, resolve));
          await new Promise((resolve, reject) => s.send('x', port, host, (e) => (e ? reject(e) : resolve())));
          s.close();
        }),
      );
    }
    return { sent: sports.length };
  },
  async sleep({ ms }) {
    await sleep(ms);
    return {};
  },
};

const results = [];
for (const step of steps) {
  const t0 = performance.now();
  try {
    results.push({ op: step.op, ...(await ops[step.op](step)), stepMs: Math.round(performance.now() - t0) });
  } catch (e) {
    results.push({ op: step.op, thrown: `${e.name}: ${e.message}` });
    break;
  }
}
await manager?.stop();
for (const c of conns.values()) c.destroy();
for (const s of servers) s.close();
process.stdout.write(`RESULT ${JSON.stringify(results)}\n`);
process.exit(0);
