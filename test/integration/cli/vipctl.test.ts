/**
 * vipctl against a running vipd in the VM lab (real IPVS and gobgpd in the VM, BIRD and three
 * HTTP realservers in namespaces): every command's text and JSON output on the live topology,
 * exit codes, runtime overrides across a restart, plan vs reload, bad clients of the status
 * socket, metrics and the journal. One VM boot for the whole file.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PeerView, PlanReport, ServiceView, StatusReport } from '../../../src/coordinator/api.js';
import type { JournalEvent } from '../../../src/coordinator/journal.js';
import { BGP_SECTION, DirectorLab, failedIn, until } from '../../lab/director.js';
import { REPO_ROOT } from '../../lab/vm.js';

const VIP = '198.51.100.20';
const SOCKET = '/run/vipd/vipd.sock';
const STATE = '/tmp/vipd-cli-state';
const JOURNAL_CAP = 16_384;
const VIPCTL = join(REPO_ROOT, 'dist/vipctl.mjs');
const COMMANDS = ['status', 'services', 'peers', 'events', 'drain', 'undrain', 'disable', 'enable', 'plan', 'reload', 'check-config'];

function config(opts: { weights?: [number, number, number]; communities?: boolean } = {}): string {
  const w = opts.weights ?? [100, 100, 100];
  return `
node: { name: cli, stateDir: ${STATE}, runDir: /run/vipd }
log: { level: debug, format: json }
vipRanges: [198.51.100.0/24]
${BGP_SECTION}
  gobgpd: { startTimeout: 60s }
status: { group: wheel }
journal: { capacity: 1000, maxFileBytes: ${JOURNAL_CAP} }
vips: [{ address: ${VIP}${opts.communities ? `, communities: ['64513:100']` : ''} }]
nodes: [{ name: n3 }]
services:
  - vip: ${VIP}
    port: 80
    scheduler: wrr
    check: { type: tcp, interval: 1s, timeout: 1s, rise: 2, fall: 2 }
    realservers: [{ address: 203.0.113.11, weight: ${w[0]} }, { address: 203.0.113.12, weight: ${w[1]} }, { address: 203.0.113.13, node: n3, weight: ${w[2]} }]
`;
}

/** vipctl on the host: for what needs no daemon (help, usage errors, offline checks). */
function hostVipctl(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync('node', [VIPCTL, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const wide = (text: string): string[] => text.split('\n').filter((l) => [...l].length > 100);

describe('vipctl against a running vipd (VM with IPVS, BIRD, realservers)', () => {
  let d: DirectorLab;
  /** vipctl in the VM: raw output and exit code (node starts slowly in a busy emulated VM). */
  const vipctl = async (args: string): Promise<{ code: number; stdout: string; stderr: string }> =>
    d.vm.exec(`node ${VIPCTL} --socket ${SOCKET} ${args}`, { timeoutMs: 120_000 });
  const json = async <T>(args: string): Promise<T> => {
    const r = await vipctl(`${args} --json`);
    if (r.code !== 0) throw new Error(`vipctl ${args}: exit ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  };
  const events = (): Promise<JournalEvent[]> => json<JournalEvent[]>('events -n 1000');
  const weights = (): Promise<Record<string, number>> => d.weights(VIP);
  const route = (): Promise<boolean> => d.hasRoute(`${VIP}/32`);
  const restart = async (): Promise<void> => {
    await d.signalVipd('KILL');
    await d.startVipd();
    await until('vipd serving again', async () => (await json<StatusReport>('status')).serving, 180_000);
  };

  beforeAll(async () => {
    d = await DirectorLab.create({ config: config() });
    await d.startVipd();
    await until('route in BIRD', route, 120_000);
    await until('peer Established', async () => (await json<PeerView[]>('peers'))[0]?.state === 'ESTABLISHED', 120_000);
    await d.stopServer('203.0.113.12');
    await until('a failed realserver', async () => (await weights())['203.0.113.12'] === 0, 20_000);
  }, 600_000);

  afterAll(async ({}, suite) => {
    await d?.cleanup({ diagnostics: failedIn(suite) });
  }, 300_000);

  it('opens the status socket with mode 0660 and the configured group, metrics on loopback only', async () => {
    expect((await d.vm.run(`stat -c '%a %G' ${SOCKET}`)).stdout.trim()).toBe('660 wheel');
    // 127.0.0.1:9642 in /proc/net/tcp's notation (port in hex), listening (state 0A); nothing else on 9642.
    const listeners = (await d.vm.run('cat /proc/net/tcp /proc/net/tcp6')).stdout
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f[1]?.endsWith(':25AA') && f[3] === '0A')
      .map((f) => f[1]);
    expect(listeners).toEqual(['0100007F:25AA']);
  }, 300_000);

  it('status: text fits 100 columns; JSON shows peers Established, the VIP up and the failed realserver', async () => {
    const s = await json<StatusReport>('status');
    expect(s).toMatchObject({ node: 'cli', serving: true, config: { lastReload: { ok: true } }, problems: [] });
    expect(s.peers[0]).toMatchObject({ address: '192.0.2.1', asn: 64512, state: 'ESTABLISHED', advertised: 1 });
    expect(s.vips).toEqual([expect.objectContaining({ address: VIP, mode: 'bgp', state: 'up', announced: true, capacityPct: 67 })]);
    expect(s.services).toEqual([{ id: `tcp:${VIP}:80`, vip: VIP, healthy: 2, total: 3 }]);
    expect(s.host?.nics.some((n) => n.iface === 'eth0' && n.up)).toBe(true);
    const t = await vipctl('status');
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(/^node\s+cli .*serving/m);
    expect(t.stdout).toMatch(/^reload\s+\S+Z ok$/m);
    expect(t.stdout).toMatch(/^192\.0\.2\.1\s+64512\s+ESTABLISHED\s/m);
    expect(t.stdout).toMatch(new RegExp(`^${VIP.replace(/\./g, '\\.')}\\s+bgp\\s+up\\s+67%\\s+yes\\s`, 'm'));
    expect(t.stdout).toMatch(new RegExp(`^tcp:${VIP.replace(/\./g, '\\.')}:80\\s+2/3$`, 'm'));
    expect(wide(t.stdout)).toEqual([]);
  }, 300_000);

  it('services: each realserver with health, reason and weights, in text and JSON', async () => {
    const svc = await json<ServiceView[]>('services');
    expect(svc).toHaveLength(1);
    expect(svc[0]).toMatchObject({ id: `tcp:${VIP}:80`, scheduler: 'wrr', healthy: 2, total: 3 });
    const rs = new Map(svc[0]!.realservers.map((r) => [r.address, r]));
    expect(rs.get('203.0.113.12')).toMatchObject({ healthy: false, weight: 0, configuredWeight: 100, reason: expect.stringMatching(/ECONNREFUSED/) });
    expect(rs.get('203.0.113.11')).toMatchObject({ healthy: true, weight: 100, nodeWeight: 100, agentWeight: 100 });
    expect(await json<ServiceView[]>(`services ${VIP}`)).toHaveLength(1);
    expect(await json<ServiceView[]>('services 198.51.100.99')).toEqual([]);
    const t = await vipctl(`services ${VIP}`);
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(/^\s+203\.0\.113\.12:80\s+dr\s+down\s+100\s+100%\s+100%\s+0\s.*ECONNREFUSED/m);
    expect(t.stdout).toMatch(/^\s+203\.0\.113\.11:80\s+dr\s+up\s+100\s+100%\s+100%\s+100\s/m);
    expect(wide(t.stdout)).toEqual([]);
  }, 300_000);

  it('peers and events: text and JSON', async () => {
    const p = await vipctl('peers');
    expect(p.stdout).toMatch(/^PEER\s+ASN\s+STATE/m);
    expect(p.stdout).toMatch(/^192\.0\.2\.1\s+64512\s+ESTABLISHED\s+\S+\s+1\s+0\s+-$/m);
    expect(wide(p.stdout)).toEqual([]);
    const ev = await events();
    expect(ev.map((e) => e.kind)).toEqual(expect.arrayContaining(['daemon', 'health', 'vip', 'route', 'ipvs', 'peer']));
    const down = ev.filter((e) => e.kind === 'health' && e.message === `tcp:${VIP}:80/203.0.113.12:80 down`).at(-1);
    expect(down?.fields?.reason).toMatch(/ECONNREFUSED/);
    expect(ev.some((e) => e.kind === 'route' && e.message === `announced ${VIP}/32`)).toBe(true);
    expect((await vipctl('events -n 3')).stdout.trim().split('\n')).toHaveLength(3);
    const t = await vipctl('events -n 1000');
    expect(t.stdout).toMatch(new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\S+Z health\\s+tcp:${VIP.replace(/\./g, '\\.')}:80/203\\.0\\.113\\.12:80 down reason=.*ECONNREFUSED`, 'm'));
  }, 300_000);

  it('check-config and plan: text, JSON and exit codes', async () => {
    const good = join(d.lab.dir, 'good.yaml');
    const bad = join(d.lab.dir, 'bad.yaml');
    writeFileSync(good, config());
    writeFileSync(bad, config().replace('203.0.113.11', '203.0.113.311'));
    expect(hostVipctl(['check-config', good])).toMatchObject({ code: 0 });
    const b = hostVipctl(['check-config', bad]);
    expect(b.code).toBe(1);
    expect(b.stdout + b.stderr).toMatch(/bad\.yaml:\d+: services\[0\]\.realservers\[0\]\.address: not an IPv4 or IPv6 address/);
    const bj = hostVipctl(['check-config', '--json', bad]);
    expect(bj.code).toBe(1);
    expect(JSON.stringify(JSON.parse(bj.stdout))).toContain('services[0].realservers[0].address');
    // Same file as running: nothing to do.
    const same = await json<PlanReport>(`plan ${good}`);
    expect(same).toEqual({ ok: true, problems: [], ipvs: [], routes: { announce: [], withdraw: [], change: [] }, checks: { added: [], removed: [] }, peers: { added: [], removed: [], changed: [] }, atRestart: [] });
    const pt = await vipctl(`plan ${good}`);
    expect(pt).toMatchObject({ code: 0 });
    expect(pt.stdout).toMatch(/^ipvs operations: none$/m);
    const pb = await vipctl(`plan ${bad}`);
    expect(pb.code).toBe(1);
    expect(pb.stdout).toMatch(/services\[0\]\.realservers\[0\]\.address/);
  }, 300_000);

  it('--help on every command, and the documented exit codes', async () => {
    for (const c of ['', ...COMMANDS]) {
      const r = hostVipctl([...(c ? [c] : []), '--help']);
      expect(r.code, c).toBe(0);
      expect(r.stdout, c).toMatch(/^Usage: vipctl/);
      expect(wide(r.stdout), c).toEqual([]);
    }
    expect(hostVipctl(['no-such-command']).code).toBe(2);
    expect(hostVipctl(['drain']).code).toBe(2);
    const unreachable = hostVipctl(['--socket', '/nonexistent/vipd.sock', 'status']);
    expect(unreachable.code).toBe(3);
    expect(unreachable.stderr).toMatch(/^vipctl: .*\/nonexistent\/vipd\.sock/);
    // The daemon says no: exit 1 with its reason.
    const refused = await vipctl(`drain ''`);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/target must be/);
    const typo = await vipctl('drain 203.0.113.99');
    expect(typo.code).toBe(1);
    expect(typo.stderr).toBe('vipctl: drain: 203.0.113.99 is not a realserver address, ADDRESS:PORT or node name in the running config\n');
  }, 300_000);

  it('drain, undrain, disable and enable take effect in one reconcile; they and the capped journal survive a restart', async () => {
    let from = (await events()).at(-1)!.seq;
    expect((await vipctl('drain 203.0.113.11')).code).toBe(0);
    await until('drained', async () => (await weights())['203.0.113.11'] === 0, 10_000);
    expect((await vipctl('disable 198.51.100.20')).code).toBe(0);
    await until('disabled: route withdrawn', async () => !(await route()), 20_000);
    let ev = (await events()).filter((e) => e.seq > from);
    // One IPVS batch for the drain (one operation); the disable touches routes only.
    expect(ev.filter((e) => e.kind === 'ipvs' && e.message.startsWith('applied')).map((e) => e.message)).toEqual(['applied 1 IPVS operations']);
    expect(ev.filter((e) => e.kind === 'override').map((e) => e.message)).toEqual(['drain 203.0.113.11', `disable ${VIP}`]);
    expect(ev.filter((e) => e.kind === 'route').map((e) => e.message)).toEqual([`withdrawn ${VIP}/32`]);
    const s = await json<StatusReport>('status');
    expect(s.overrides).toEqual({ drained: ['203.0.113.11'], disabled: [VIP] });
    expect(s.vips[0]).toMatchObject({ state: 'disabled', announced: false });
    expect((await vipctl('status')).stdout).toMatch(/^overrides drained: 203\.0\.113\.11; disabled: 198\.51\.100\.20$/m);

    // Grow the journal well past its file cap: 120 overrides (each an event, most with an IPVS batch).
    const flood = await d.vm.run(`node ${REPO_ROOT}/test/integration/cli/probe.mjs ${SOCKET} flood 120`, { timeoutMs: 120_000 });
    expect(JSON.parse(flood.stdout)).toEqual({ ok: 120 });
    const journalSize = async (): Promise<number> => Number((await d.vm.run(`stat -c %s ${STATE}/journal.jsonl`)).stdout);
    const size = await journalSize();
    expect(size).toBeGreaterThan(JOURNAL_CAP / 4);
    expect(size).toBeLessThanOrEqual(JOURNAL_CAP);
    const lastBefore = (await events()).filter((e) => e.kind === 'override').at(-1)!;
    expect(lastBefore.message).toBe('undrain n3');

    await restart();
    expect((await json<StatusReport>('status')).overrides).toEqual({ drained: ['203.0.113.11'], disabled: [VIP] });
    expect(await weights()).toEqual({ '203.0.113.11': 0, '203.0.113.12': 0, '203.0.113.13': 100 });
    expect(await route()).toBe(false);
    // The journal came back from the state directory, within its cap, and goes on numbering.
    const after = await events();
    expect(after.find((e) => e.seq === lastBefore.seq)?.message).toBe(lastBefore.message);
    expect(after.filter((e) => e.message === 'vipd started').at(-1)!.seq).toBeGreaterThan(lastBefore.seq);
    expect(await journalSize()).toBeLessThanOrEqual(JOURNAL_CAP);

    from = after.at(-1)!.seq;
    expect((await vipctl('undrain 203.0.113.11')).code).toBe(0);
    expect((await vipctl('enable 198.51.100.20')).code).toBe(0);
    await until('undrained', async () => (await weights())['203.0.113.11'] === 100, 10_000);
    await until('enabled: route back', route, 20_000);
    ev = (await events()).filter((e) => e.seq > from);
    expect(ev.filter((e) => e.kind === 'ipvs' && e.message.startsWith('applied')).map((e) => e.message)).toEqual(['applied 1 IPVS operations']);
    expect((await json<StatusReport>('status')).overrides).toEqual({ drained: [], disabled: [] });
  }, 300_000);

  it('plan FILE lists exactly the IPVS operations and route changes that reload then performs', async () => {
    const next = config({ weights: [50, 100, 30], communities: true });
    const file = join(d.lab.dir, 'next.yaml');
    writeFileSync(file, next);
    const plan = await json<PlanReport>(`plan ${file}`);
    expect(plan.ok).toBe(true);
    expect([...plan.ipvs].sort()).toEqual([`-e -t ${VIP}:80 -r 203.0.113.11:80 -g -w 50`, `-e -t ${VIP}:80 -r 203.0.113.13:80 -g -w 30`]);
    expect(plan.routes).toEqual({ announce: [], withdraw: [], change: [`${VIP}/32`] });
    expect(plan.checks).toEqual({ added: [], removed: [] });
    const text = await vipctl(`plan ${file}`);
    expect(text.stdout).toContain(`ipvs operations: \n  -e -t ${VIP}:80 -r 203.0.113.1`);
    expect(wide(text.stdout)).toEqual([]);

    const before = new Set((await d.vm.run('ipvsadm -Sn')).stdout.split('\n'));
    const from = (await events()).at(-1)!.seq;
    d.writeConfig(next);
    const r = await vipctl('reload --json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true });
    await until('weights applied', async () => (await weights())['203.0.113.13'] === 30, 10_000);
    await until('community at BIRD', async () => (await d.bird.cli(`show route all ${VIP}/32`)).includes('(64513,100)'), 20_000);
    const changed = (await d.vm.run('ipvsadm -Sn')).stdout.split('\n').filter((l) => l && !before.has(l));
    expect(changed.map((l) => l.replace(/^-a /, '-e ')).sort()).toEqual([...plan.ipvs].sort());
    const ev = (await events()).filter((e) => e.seq > from);
    expect(ev.filter((e) => e.kind === 'ipvs' && e.message.startsWith('applied')).map((e) => e.message)).toEqual(['applied 2 IPVS operations']);
    expect(ev.filter((e) => e.kind === 'route').map((e) => e.message)).toEqual([`updated ${VIP}/32`]);
    // Now that it runs, the same file plans nothing.
    expect((await json<PlanReport>(`plan ${file}`)).ipvs).toEqual([]);
  }, 300_000);

  it('answers malformed, oversized and binary requests with an error (and a close when oversized), and keeps serving', async () => {
    const r = await d.vm.run(`node ${REPO_ROOT}/test/integration/cli/probe.mjs ${SOCKET} abuse`, { timeoutMs: 60_000 });
    const p = JSON.parse(r.stdout) as Record<string, { reply: string; closed: boolean }>;
    const error = (x: { reply: string }): string => (JSON.parse(x.reply.split('\n')[0]!) as { ok: boolean; error: string }).error;
    expect(error(p.notJson!)).toBe('request is not valid JSON');
    expect(error(p.noMethod!)).toBe('request needs a "method" string');
    expect(error(p.unknownMethod!)).toBe('unknown method "rm -rf"');
    expect(error(p.badParams!)).toBe('"params" must be an object');
    expect(error(p.binary!)).toBe('request is not valid JSON');
    for (const k of ['oversizedNoNewline', 'oversizedLine']) {
      expect(error(p[k]!), k).toBe('request larger than 65536 bytes');
      expect(p[k]!.closed, k).toBe(true);
    }
    expect(p.afterwards!.reply).toContain('"ok":true');
    expect((await d.vm.exec(`kill -0 ${d.vipdPid}`)).code).toBe(0);
    expect((await vipctl('status --json')).code).toBe(0);
  }, 300_000);

  it('serves Prometheus metrics with the documented series and conventional names', async () => {
    const text = (await d.vm.run(`node -e "fetch('http://127.0.0.1:9642/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))"`)).stdout;
    const series = (name: string, labels = ''): number[] =>
      text
        .split('\n')
        .filter((l) => l.startsWith(`${name}{`) && labels.split(',').every((x) => !x || l.includes(x)))
        .map((l) => Number(l.split(' ').at(-1)));
    expect(series('vipd_vip_state', `vip="${VIP}",state="up"`)).toEqual([1]);
    expect(series('vipd_vip_announced', `vip="${VIP}"`)).toEqual([1]);
    expect(series('vipd_realserver_healthy', 'realserver="203.0.113.12:80"')).toEqual([0]);
    expect(series('vipd_realserver_healthy', 'realserver="203.0.113.11:80"')).toEqual([1]);
    expect(series('vipd_realserver_weight', 'realserver="203.0.113.11:80"')).toEqual([50]);
    for (const n of ['active_connections', 'inactive_connections', 'in_packets_per_second', 'out_packets_per_second', 'in_bytes_per_second', 'out_bytes_per_second']) {
      expect(series(`vipd_realserver_${n}`), n).toHaveLength(3);
    }
    expect(series('vipd_bgp_peer_established', 'peer="192.0.2.1"')).toEqual([1]);
    expect(series('vipd_bgp_peer_prefixes', 'direction="advertised"')).toEqual([1]);
    expect(series('vipd_reconciles_total', 'subsystem="ipvs"')[0]).toBeGreaterThan(0);
    expect(series('vipd_reconcile_duration_seconds_count', 'subsystem="ipvs"')[0]).toBeGreaterThan(0);
    expect(series('vipd_health_check_duration_seconds_count', 'type="tcp",outcome="fail"')[0]).toBeGreaterThan(0);
    expect(series('vipd_health_check_duration_seconds_count', 'type="tcp",outcome="ok"')[0]).toBeGreaterThan(0);
    expect(series('vipd_config_reloads_total', 'result="ok"')).toEqual([1]);
    const types = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
    for (const n of ['vipd_reconcile_errors_total', 'vipd_gobgpd_restarts_total', 'vipd_arp_sends_total', 'vipd_process_resident_memory_bytes']) expect(types.has(n), n).toBe(true);
    for (const [name, type] of types) {
      expect(name).toMatch(/^vipd_[a-z0-9_]+$/);
      if (type === 'counter') expect(name).toMatch(/_total$/);
      if (type === 'histogram') expect(name).toMatch(/_seconds$/);
    }
  });
});
