/**
 * Faults and hostile input against the real director (one VM boot for the whole file): vipd
 * with IPVS and gobgpd in the VM, BIRD and HTTP realservers in namespaces. Each test breaks one
 * thing and checks what must hold; figures go to stdout as `FAULT name key=value` lines for the
 * README table. kill -9 of vipd, all realservers down and a bad SIGHUP are in
 * test/integration/coordinator/e2e.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startBird } from '../../lab/bird.js';
import { DirectorLab, DIRECTOR_IP, failedIn, ROUTER_CONNECT_RETRY_S, ROUTER_IP, until } from '../../lab/director.js';
import { REPO_ROOT } from '../../lab/vm.js';

const VIP = '198.51.100.10';
const SECRET = 'Fault-Md5-S3cret-7f3a';
const STATE = '/tmp/vipd-state';
const FLAPPER = '203.0.113.13';
const ABUSE = join(fileURLToPath(new URL('.', import.meta.url)), 'abuse.mjs');
/**
 * After a session reset, a BIRD restart or the link's return the route must be back within one
 * connect retry: BIRD connects ROUTER_CONNECT_RETRY_S after its session ends or it starts, and
 * again as often; vipd listens and accepts at once (its gobgpd dials only 5-10 s after a session ends).
 */
const CONNECT_RETRY_MS = ROUTER_CONNECT_RETRY_S * 1000;
/**
 * The session itself in the emulated VM: vipd re-adding the ended peer, TCP and the OPEN
 * exchange, the UPDATE, and BIRD's table polled every 100 ms.
 */
const SESSION_MARGIN_MS = 2000;

interface Status {
  serving: boolean;
  problems: string[];
  config: { version: string; lastReload: { ok: boolean; version?: string; problems: string[] } };
  peers: { state: string }[];
  vips: { state: string; announced: boolean }[];
}
interface Event {
  seq: number;
  kind: string;
  message: string;
}

/**
 * `poison`: an invalid file: an unknown key, or an alias before its anchor (which made the
 * loader throw, and the SIGHUP handler's rejection would have ended vipd).
 */
function config(opts: { weight?: number; poison?: 'key' | 'alias' } = {}): string {
  return `
node: { name: faults, stateDir: ${STATE}, runDir: /run/vipd }
log: { level: debug, format: json }
vipRanges: [198.51.100.0/24]
bgp:
  asn: 64513
  routerId: ${DIRECTOR_IP}
  withdrawDelay: 1s
  # BIRD connects to us too, as a router does: on the peering address only.
  listenPort: 179
  listenAddresses: [${DIRECTOR_IP}]
  peers: [{ address: ${ROUTER_IP}, asn: 64512, connectRetry: 5s, holdTime: 9s, keepalive: 3s, password: ${SECRET} }]
vips: [{ address: ${VIP}, minHealthy: 1 }]
services:
  - vip: ${VIP}
    port: 80
    scheduler: wrr
    check: { type: tcp, interval: 300ms, timeout: 1s, rise: 3, fall: 3 }
    realservers: [{ address: 203.0.113.11, weight: ${opts.weight ?? 100} }, { address: 203.0.113.12 }, { address: ${FLAPPER} }]
${opts.poison === 'key' ? 'bogus: 1\n' : ''}${opts.poison === 'alias' ? 'health: *early\n' : ''}`;
}

/** Toggles a TCP listener on IP:80 every 200 ms (accepting, then refusing) for SECONDS. */
const FLAP_PY = `
import socket, sys, time
ip, end, toggles = sys.argv[1], time.time() + float(sys.argv[2]), 0
while time.time() < end:
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((ip, 80)); s.listen(64); s.settimeout(0.05)
    t = time.time() + 0.2
    while time.time() < t:
        try:
            c, _ = s.accept(); c.close()
        except OSError:
            pass
    s.close(); toggles += 2; time.sleep(0.2)
print("toggles", toggles, flush=True)
`;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const report = (name: string, fields: Record<string, unknown>): void =>
  console.info(`FAULT ${name} ${Object.entries(fields).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ')}`);

describe('faults and hostile input (VM with IPVS, BIRD, realservers)', () => {
  let d: DirectorLab;
  const route = (): Promise<boolean> => d.hasRoute(`${VIP}/32`);
  /**
   * Status API requests from one node process in the VM: under emulation every vipctl call
   * pays a node start-up of several seconds. Returns each request's result; throws on an error.
   */
  const api = async (...requests: { method: string; params?: Record<string, unknown> }[]): Promise<unknown[]> => {
    const r = await d.vm.run(`node ${ABUSE} ask /run/vipd/vipd.sock '${JSON.stringify(requests)}'`, { timeoutMs: 120_000 });
    const replies = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { ok: boolean; result?: unknown; error?: string }[];
    return replies.map((x, i) => {
      if (!x.ok) throw new Error(`${requests[i]!.method}: ${x.error}`);
      return x.result;
    });
  };
  const status = async (): Promise<Status> => (await api({ method: 'status' }))[0] as Status;
  const events = async (since: number): Promise<Event[]> => (await api({ method: 'events', params: { since, limit: 10_000 } }))[0] as Event[];
  const lastSeq = async (): Promise<number> => ((await api({ method: 'events', params: { limit: 1 } }))[0] as Event[]).at(-1)?.seq ?? 0;
  const vipdProc = async (): Promise<{ rssKb: number; fds: number }> => {
    const r = await d.vm.run(`grep VmRSS /proc/${d.vipdPid}/status; ls /proc/${d.vipdPid}/fd | wc -l`);
    const [rss, fds] = r.stdout.trim().split('\n');
    return { rssKb: Number(/(\d+)/.exec(rss ?? '')?.[1]), fds: Number(fds) };
  };
  const birdEstablished = async (): Promise<boolean> => /Established/.test(await d.bird.cli('show protocols director'));
  /** The session up (as BIRD sees it, cheaper than asking vipd) and the route in BIRD's table. */
  const established = async (): Promise<boolean> => (await birdEstablished()) && (await route());

  /** Polls BIRD's table every 100 ms while fn runs; returns how many polls missed the route. */
  async function watchRoute<T>(fn: () => Promise<T>): Promise<{ value: T; missed: number; polls: number }> {
    let missed = 0;
    let polls = 0;
    let on = true;
    const poll = (async () => {
      while (on) {
        polls++;
        if (!(await route().catch(() => false))) missed++;
        await sleep(100);
      }
    })();
    try {
      return { value: await fn(), missed, polls };
    } finally {
      on = false;
      await poll;
    }
  }

  beforeAll(async () => {
    // BIRD's default error wait (60-300 s before it accepts a session again after a hold-timer
    // expiry) would hide vipd's own reconnect; a router tuned for fast recovery waits 1 s.
    d = await DirectorLab.create({ config: config(), routerConnects: true, birdDirectorOptions: `password "${SECRET}"; error wait time 1, 5;` });
    // A small state directory of its own, so the full and read-only tests can break it.
    await d.vm.run(`mkdir -p ${STATE} && mount -t tmpfs -o size=4m tmpfs ${STATE}`);
    await d.startVipd();
    await until('route in BIRD', route, 150_000, 500);
  }, 300_000);

  afterAll(async ({}, suite) => {
    await d?.cleanup({ diagnostics: failedIn(suite) });
  });

  // Each fault starts from a steady director, whatever the previous one left behind.
  beforeEach(async () => {
    await until('steady: session up and route in BIRD', established, 120_000, 500);
  }, 150_000);

  it('opens only the configured listeners; gobgpd API is a 0600 unix socket', async () => {
    const tcp = (await d.vm.run('netstat -ltnp')).stdout;
    const listeners = tcp
      .split('\n')
      .filter((l) => /LISTEN/.test(l))
      .map((l) => l.trim().split(/\s+/)[3])
      .sort();
    report('listeners', { tcp: listeners.join(',') });
    // Presence port on every address, metrics on loopback, BGP (gobgpd's) on the peering address only; no gRPC port.
    expect(listeners).toEqual(['127.0.0.1:9642', `${DIRECTOR_IP}:179`, ':::44444']);
    expect(tcp.split('\n').find((l) => l.includes(`${DIRECTOR_IP}:179`))).toMatch(/gobgpd/);
    expect((await d.vm.run('netstat -lunp')).stdout).not.toMatch(/gobgpd/);
    const sock = (await d.vm.run('stat -c "%a %F" /run/vipd/gobgpd.sock')).stdout.trim();
    expect(sock).toBe('600 socket');
    expect((await d.vm.run('stat -c "%a" /run/vipd/vipd.sock')).stdout.trim()).toBe('660');
    expect(await birdEstablished()).toBe(true);
  });

  it('gobgpd killed: restarted, routes restored, BIRD never loses the route', async () => {
    const before = (await d.vm.run('pidof gobgpd')).stdout.trim();
    // BIRD's protocol line: name, proto, table, state, since, info. A new `since` is a new session.
    const session = async (): Promise<string> => (await d.bird.cli('show protocols director')).split('\n').find((l) => l.startsWith('director')) ?? '';
    const first = await session();
    const w = await watchRoute(async () => {
      await d.vm.run(`kill -9 ${before}`);
      await until('new gobgpd', async () => {
        const now = (await d.vm.run('pidof gobgpd; true')).stdout.trim();
        return now !== '' && now !== before;
      }, 60_000);
      await until('a new session', async () => {
        const now = await session();
        return /Established/.test(now) && now.split(/\s+/)[4] !== first.split(/\s+/)[4];
      }, 60_000);
      await sleep(2000);
    });
    const s = await status();
    report('gobgpd-kill', { polls: w.polls, missed: w.missed });
    expect(w.missed).toBe(0);
    expect(s.peers[0]?.state).toBe('ESTABLISHED');
    expect(s.vips[0]).toMatchObject({ state: 'up', announced: true });
  });

  it('BIRD session reset: a new session and the route back within one connect retry', async () => {
    const t0 = Date.now();
    await d.bird.cli('restart director');
    await until('session reset', async () => !(await birdEstablished()), 10_000, 50);
    await until('route back after reset', established, 60_000, 100);
    const ms = Date.now() - t0;
    report('bird-session-reset', { routeBackMs: ms, boundMs: CONNECT_RETRY_MS + SESSION_MARGIN_MS });
    expect(ms).toBeLessThanOrEqual(CONNECT_RETRY_MS + SESSION_MARGIN_MS);
  });

  it('BIRD killed and started again: the route back within one connect retry of its start', async () => {
    const conf = readFileSync(d.lab.path('r.conf'), 'utf8');
    await d.bird.daemon.stop('SIGKILL');
    await sleep(2000);
    const t0 = Date.now();
    await startBird(d.lab, d.routerNs, 'r', conf);
    await until('route back after BIRD restart', established, 60_000, 100);
    const ms = Date.now() - t0;
    report('bird-restart', { routeBackMs: ms, boundMs: CONNECT_RETRY_MS + SESSION_MARGIN_MS });
    expect(ms).toBeLessThanOrEqual(CONNECT_RETRY_MS + SESSION_MARGIN_MS);
  });

  it('router link down for 30 s: the route back within one connect retry of the link returning', async () => {
    const net = `${d.lab.id}-net`;
    await d.lab.ip(net, ['link', 'set', 'r0', 'down']);
    // Well past the 9 s hold time: both ends drop the session and keep trying to connect.
    const downS = Number(process.env.VIPD_FAULT_LINK_DOWN_S ?? 30);
    await sleep(downS * 1000);
    const lostDuringDown = !(await route());
    await d.lab.ip(net, ['link', 'set', 'r0', 'up']);
    const t0 = Date.now();
    await until('route back after link up', established, 60_000, 100);
    const ms = Date.now() - t0;
    report('link-down', { downS, lostDuringDown, routeBackMs: ms, boundMs: CONNECT_RETRY_MS + SESSION_MARGIN_MS });
    expect(lostDuringDown).toBe(true);
    expect(ms).toBeLessThanOrEqual(CONNECT_RETRY_MS + SESSION_MARGIN_MS);
  });

  it('realserver flapping every 200 ms: damped, no route flap, bounded log volume', async () => {
    const flapS = Number(process.env.VIPD_FAULT_FLAP_S ?? 15);
    await d.stopServer(FLAPPER);
    const seq = await lastSeq();
    const linesBefore = Number((await d.vm.run('wc -l < /tmp/vipd.log')).stdout.trim());
    const w = await watchRoute(async () => {
      const flap = d.lab.spawn(d.rsNs.get(FLAPPER)!, 'python3', ['-c', FLAP_PY, FLAPPER, String(flapS)]);
      await flap.exited;
      return Number(/toggles (\d+)/.exec(flap.output())?.[1]);
    });
    const lines = Number((await d.vm.run('wc -l < /tmp/vipd.log')).stdout.trim()) - linesBefore;
    const ev = await events(seq);
    const transitions = ev.filter((e) => e.kind === 'health' && e.message.includes(FLAPPER)).length;
    const routeEvents = ev.filter((e) => e.kind === 'route').length;
    const checks = Math.floor((flapS * 1000) / 300);
    report('flapping', { seconds: flapS, toggles: w.value, checks, transitions, routeEvents, missed: w.missed, polls: w.polls, logLines: lines });
    expect(w.value).toBeGreaterThan(flapS * 3);
    expect(w.missed).toBe(0);
    expect(routeEvents).toBe(0);
    // rise = fall = 3: a transition needs three results in a row, so at most one per three checks.
    expect(transitions).toBeLessThanOrEqual(Math.ceil(checks / 3) + 1);
    expect(lines).toBeLessThan(40 * flapS + 20 * transitions);
    d.startServer(FLAPPER);
    await until('flapper healthy again', async () => (await d.weights(VIP))[FLAPPER] === 100, 30_000);
  });

  it('reload storm: 100 SIGHUPs in 10 s, alternating valid and invalid; the newest valid file vipd read wins', async () => {
    const dir = d.lab.path('storm');
    execFileSync('mkdir', ['-p', dir]);
    for (let i = 1; i <= 100; i++) writeFileSync(join(dir, `${i}.yaml`), i % 2 ? config({ weight: 100 + i }) : config({ weight: 7, poison: i % 4 ? 'key' : 'alias' }));
    const valid = Array.from({ length: 50 }, (_, k) => 2 * k + 1);
    const checked = JSON.parse(execFileSync(process.execPath, [join(REPO_ROOT, 'dist/vipd.mjs'), 'check-config', '--json', ...valid.map((i) => join(dir, `${i}.yaml`))]).toString()) as {
      files: { version: string }[];
    };
    const fileOf = new Map(checked.files.map((f, k) => [f.version, valid[k]!]));
    const seq = await lastSeq();
    const seen = new Set<number>();
    const w = await watchRoute(async () => {
      let on = true;
      const sample = (async () => {
        while (on) {
          seen.add((await d.weights(VIP))['203.0.113.11'] ?? -1);
          await sleep(200);
        }
      })();
      try {
        // One node process in the VM paces the storm (a shell loop forks too slowly under
        // emulation); each file replaces the config atomically, as an operator's tools would.
        const storm = `const fs = require('fs'); let i = 0; const t = setInterval(() => { i++;
          fs.writeFileSync('${d.cfgFile}.tmp', fs.readFileSync('${dir}/' + i + '.yaml')); fs.renameSync('${d.cfgFile}.tmp', '${d.cfgFile}');
          process.kill(${d.vipdPid}, 'SIGHUP'); if (i === 100) clearInterval(t); }, 100);`;
        await d.vm.run(`node -e "${storm.replace(/\n\s*/g, ' ')}"`, { timeoutMs: 90_000 });
        // Reloads run one at a time and later requests share the queued one, which reads the
        // newest file: one asked for now returns after every SIGHUP's, having read file 100.
        const [after] = (await api({ method: 'reload' })) as { ok: boolean }[];
        expect(after?.ok).toBe(false);
        await sleep(1000);
      } finally {
        on = false;
        await sample;
      }
    });
    const s = await status();
    const ev = (await events(seq)).filter((e) => e.kind === 'reload');
    const lastApplied = ev.filter((e) => !e.message.startsWith('refused')).at(-1);
    // A valid file replaced by the next before vipd read it (its reload still queued) is never
    // seen, so which valid file wins depends on the VM's pace; it must be one vipd did apply.
    const winner = fileOf.get(s.config.version);
    report('reload-storm', {
      sighups: 100,
      reloadEvents: ev.length,
      refused: ev.filter((e) => e.message.startsWith('refused')).length,
      winner: winner ?? 'none',
      weightsSeen: seen.size,
      missed: w.missed,
    });
    expect(winner).toBeDefined();
    expect(lastApplied?.message.endsWith(` -> ${s.config.version}`)).toBe(true);
    expect(ev.slice(ev.indexOf(lastApplied!) + 1).every((e) => e.message.startsWith('refused'))).toBe(true);
    // Coalescing skips a file now and then, not most of the storm.
    expect(winner).toBeGreaterThan(50);
    await until('winner in the kernel', async () => (await d.weights(VIP))['203.0.113.11'] === 100 + winner!, 10_000);
    expect(seen.has(7)).toBe(false);
    expect(s.config.lastReload.ok).toBe(false);
    expect(s.serving).toBe(true);
    expect(w.missed).toBe(0);
    writeFileSync(`${d.cfgFile}.tmp`, config());
    renameSync(`${d.cfgFile}.tmp`, d.cfgFile);
    await d.signalVipd('HUP');
    await until('weight 100 again', async () => (await d.weights(VIP))['203.0.113.11'] === 100, 30_000);
  });

  it('state directory full, then read-only: vipd keeps serving and says so', async () => {
    const override = (method: string): { method: string; params: Record<string, unknown> } => ({ method, params: { target: '203.0.113.12' } });
    /** Applies the overrides, then returns the state-directory problem status reports (if any). */
    const problemAfter = async (...methods: string[]): Promise<{ problem?: string; serving: boolean }> => {
      const replies = await api(...methods.map(override), { method: 'status' });
      const s = replies.at(-1) as Status;
      return { problem: s.problems.find((p) => p.startsWith('state directory')), serving: s.serving };
    };
    await d.vm.run(`dd if=/dev/zero of=${STATE}/fill bs=64k 2>/dev/null; true`);
    const full = await problemAfter('drain');
    expect(full.problem).toMatch(/ENOSPC/);
    expect(full.serving).toBe(true);
    await until('drained though not persisted', async () => (await d.weights(VIP))['203.0.113.12'] === 0, 10_000);
    await d.vm.run(`rm ${STATE}/fill && mount -o remount,ro ${STATE}`);
    let ro: { problem?: string; serving: boolean };
    try {
      ro = await problemAfter('undrain');
      await until('undrain applied in memory', async () => (await d.weights(VIP))['203.0.113.12'] === 100, 10_000);
      expect(await route()).toBe(true);
    } finally {
      await d.vm.run(`mount -o remount,rw ${STATE}`);
    }
    expect(ro.problem).toMatch(/EROFS/);
    expect(ro.serving).toBe(true);
    // Writable again: the next writes succeed and the problem is gone.
    expect((await problemAfter('drain', 'undrain')).problem).toBeUndefined();
    await until('undrained', async () => (await d.weights(VIP))['203.0.113.12'] === 100, 10_000);
    report('state-dir', { full: full.problem ?? '', readOnly: ro.problem ?? '', serving: true });
  });

  it('clock jumps forward and back: no timeouts, flaps or route changes', async () => {
    const seq = await lastSeq();
    const w = await watchRoute(async () => {
      // A day ahead, two days back, and home again; a few check intervals after each.
      await d.vm.run('date -s @$(( $(date +%s) + 86400 ))');
      await sleep(4000);
      await d.vm.run('date -s @$(( $(date +%s) - 2 * 86400 ))');
      await sleep(4000);
      await d.vm.run('date -s @$(( $(date +%s) + 86400 ))');
      await sleep(2000);
    });
    const ev = await events(seq);
    const flaps = ev.filter((e) => ['health', 'vip', 'route', 'peer'].includes(e.kind));
    report('clock-jump', { jumps: 3, flaps: flaps.length, missed: w.missed, polls: w.polls });
    expect(flaps.map((e) => e.message)).toEqual([]);
    expect(w.missed).toBe(0);
    expect(await birdEstablished()).toBe(true);
  });

  it('presence port flood with garbage: nothing read, no crash, bounded connections', async () => {
    const before = await vipdProc();
    const n = 2000;
    let peakFds = before.fds;
    let on = true;
    const sample = (async () => {
      while (on) {
        peakFds = Math.max(peakFds, (await vipdProc().catch(() => before)).fds);
        await sleep(200);
      }
    })();
    const flood = d.lab.spawn(d.routerNs, process.execPath, [ABUSE, 'presence', DIRECTOR_IP, '44444', String(n)]);
    await flood.exited;
    on = false;
    await sample;
    const out = JSON.parse(flood.output().trim().split('\n').at(-1)!) as { outcomes: Record<string, number>; bytesAnswered: number };
    await sleep(1000);
    const after = await vipdProc();
    report('presence-flood', { connections: n, outcomes: out.outcomes, bytesAnswered: out.bytesAnswered, fdsBefore: before.fds, peakFds, fdsAfter: after.fds, rssKbBefore: before.rssKb, rssKbAfter: after.rssKb });
    expect(out.bytesAnswered).toBe(0);
    // Accepted and dropped unread (reset or closed), or never accepted while the backlog is full (open).
    expect(Object.keys(out.outcomes).filter((k) => !['reset', 'closed', 'open'].includes(k))).toEqual([]);
    expect(peakFds).toBeLessThan(before.fds + 300);
    expect(after.fds).toBeLessThan(before.fds + 5);
    expect(await established()).toBe(true);
  });

  it('status API in the daemon: random bytes, truncated JSON, 100 MB, 1,000 idle connections', async () => {
    const before = await vipdProc();
    const r = await d.vm.run(`node ${ABUSE} status /run/vipd/vipd.sock 7`, { timeoutMs: 180_000 });
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as {
      random: Record<string, number>;
      truncated: Record<string, number>;
      oversize: { bytesSent: number; how: string };
      idle: { held: number; closedByVipd: number; otherClientServed: boolean; otherClientMs: number };
      after: boolean;
    };
    const after = await vipdProc();
    report('status-api', { ...out, rssKbBefore: before.rssKb, rssKbAfter: after.rssKb, fdsBefore: before.fds, fdsAfter: after.fds });
    expect(out.random.ok ?? 0).toBe(0);
    expect(out.truncated.ok ?? 0).toBeLessThanOrEqual(1);
    expect(out.oversize.how).toBe('closed by vipd');
    expect(out.oversize.bytesSent).toBeLessThan(16 * 1024 * 1024);
    expect(out.idle.otherClientServed).toBe(true);
    expect(out.after).toBe(true);
    expect(after.rssKb).toBeLessThan(before.rssKb + 64 * 1024);
    expect(await established()).toBe(true);
  });

  it('the BGP password never shows in logs, status, journal, events or metrics', async () => {
    expect(await birdEstablished()).toBe(true);
    // The log and the journal file can be megabytes: searched in the VM.
    const inVm = async (file: string): Promise<{ bytes: number; hits: number }> => {
      const [bytes, hits] = (await d.vm.run(`wc -c < ${file}; grep -c -F '${SECRET}' ${file}; true`)).stdout.trim().split('\n');
      return { bytes: Number(bytes), hits: Number(hits) };
    };
    const files = { log: await inVm('/tmp/vipd.log'), journal: await inVm(`${STATE}/journal.jsonl`) };
    const [st, peers, ev, plan] = await api({ method: 'status' }, { method: 'peers' }, { method: 'events', params: { limit: 10_000 } }, { method: 'plan', params: { file: d.cfgFile } });
    const places: Record<string, string> = {
      status: JSON.stringify(st),
      peers: JSON.stringify(peers),
      events: JSON.stringify(ev),
      plan: JSON.stringify(plan),
      metrics: (await d.vm.run('wget -qO- http://127.0.0.1:9642/metrics')).stdout,
    };
    const leaks = Object.entries(places)
      .filter(([, text]) => text.includes(SECRET))
      .map(([where]) => where);
    for (const [where, f] of Object.entries(files)) if (f.hits) leaks.push(where);
    const bytes = Object.values(places).reduce((n, t) => n + t.length, 0) + files.log.bytes + files.journal.bytes;
    report('secrets', { places: Object.keys(places).length + 2, bytes, leaks: leaks.join(',') || 'none' });
    expect(files.log.bytes).toBeGreaterThan(1000);
    expect(places.metrics).toContain('vipd_bgp_peer_established');
    expect(leaks).toEqual([]);
  });
});
