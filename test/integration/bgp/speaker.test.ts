/**
 * vipd's BGP speaker (real gobgpd in the director namespace) against BIRD 2 in the router
 * namespace: sessions, announcements with every attribute, soft-fail, withdrawal, IPv6,
 * peer flaps, reloads, status, and refusal of bad input before it reaches gobgpd.
 */
import { readFileSync, statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../../src/config/load.js';
import type { BgpConfig } from '../../../src/config/schema.js';
import { GobgpClient } from '../../../src/bgp/client.js';
import { FAMILY_IPV4, FAMILY_IPV6 } from '../../../src/bgp/messages.js';
import { joinEncoded } from '../../../src/bgp/proto.js';
import { planRoutes, toPathMsg } from '../../../src/bgp/routes.js';
import { BgpConfigError, BgpSpeaker, type PeerStatus } from '../../../src/bgp/speaker.js';
import type { SessionState } from '../../../src/bgp/messages.js';
import { bgpConfig, birdc, captureLogger, createBgpLab, ROUTER_ASN, sleep, V4_SESSION, V6_SESSION, vip, waitFor, type BgpLab } from './helpers.js';

const PASSWORD = 'vipd-md5-test';

describe('BGP speaker against BIRD', () => {
  let bl: BgpLab;
  let speaker: BgpSpeaker;
  let cfg: BgpConfig;
  const { log, entries } = captureLogger();
  const events: { address: string; from: SessionState; to: SessionState }[] = [];

  // A VIP with a configured next hop and every attribute, a VIP with next hop self, an IPv6 VIP.
  const a = vip('198.51.100.10', {
    nextHop: '192.0.2.20',
    communities: ['64513:100', '65000:1'],
    largeCommunities: ['64513:1:20'],
    med: 100,
    softFail: { below: 0.5, med: 500, prepend: 2, communities: ['64513:666'] },
  });
  const b = vip('198.51.100.11');
  const c6 = vip('2001:db8:100::10', { med: 7 });

  const established = (name: string) => async () => {
    const p = (await bl.protocols()).get(name);
    return p?.state === 'up' && p.info.startsWith('Established');
  };
  const route = async (prefix: string, proto?: string) => (await bl.routes()).get(prefix)?.find((r) => proto === undefined || r.proto === proto);

  beforeAll(async () => {
    bl = await createBgpLab([{ ...V4_SESSION, families: ['ipv4', 'ipv6'], password: PASSWORD }, V6_SESSION]);
    cfg = bgpConfig({
      nextHop6: '2001:db8:0:1::10',
      peers: [
        { address: '192.0.2.1', asn: ROUTER_ASN, holdTime: '9s', keepalive: '3s', connectRetry: '5s', password: PASSWORD, families: ['ipv4', 'ipv6'], description: 'router r1 v4' },
        { address: '2001:db8:0:1::1', asn: ROUTER_ASN, holdTime: '9s', keepalive: '3s', connectRetry: '5s', passive: true },
      ],
    });
    speaker = new BgpSpeaker(cfg, log, { runDir: bl.lab.path('run'), wrap: ['ip', 'netns', 'exec', bl.director] });
    speaker.on('peer', (s: PeerStatus, from: SessionState) => events.push({ address: s.address, from, to: s.state }));
    await speaker.start();
  });

  afterAll(async () => {
    await speaker?.stop({ withdraw: false });
    await bl?.lab.cleanup();
  });

  it('runs gobgpd with its API on a 0600 unix socket only, profiling off', async () => {
    expect(statSync(speaker.socketPath).mode & 0o777).toBe(0o600);
    const pid = speaker.gobgpdPid as number;
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    expect(argv).toEqual(expect.arrayContaining(['--api-hosts', `unix://${speaker.socketPath}`, '--pprof-disable']));
    expect(argv).not.toContain('-f');
    const listening = await bl.lab.exec(bl.director, 'ss', ['-Hltn']);
    expect(listening.stdout).not.toMatch(/:50051|:6060/);
  });

  it('brings both sessions to Established once routes are set, with a peer event per state change', async () => {
    expect(speaker.peers().every((p) => p.state === 'IDLE')).toBe(true);
    await speaker.setRoutes([]);
    await waitFor('d4 Established', established('d4'));
    await waitFor('d6 Established', established('d6'));
    await waitFor('speaker sees both peers up', async () => speaker.peers().every((p) => p.state === 'ESTABLISHED'));
    for (const address of ['192.0.2.1', '2001:db8:0:1::1']) {
      expect(events.filter((e) => e.address === address).at(-1)).toMatchObject({ to: 'ESTABLISHED' });
      expect(events.filter((e) => e.address === address).every((e) => e.from !== e.to)).toBe(true);
    }
    // gobgpd's own log lines are in vipd's log.
    expect(entries.some((e) => e.component === 'gobgpd' && e.msg === 'Peer Up')).toBe(true);
  });

  it('announces VIPs as /32 with the configured next hop, communities, large communities and MED', async () => {
    const changes = await speaker.setRoutes([
      { vip: a, state: 'up' },
      { vip: b, state: 'up' },
    ]);
    expect(changes).toMatchObject({ announced: ['198.51.100.10/32', '198.51.100.11/32'], updated: [], withdrawn: [], rejected: [], deferred: false });
    const ra = await waitFor('198.51.100.10 in BIRD', () => route('198.51.100.10/32', 'd4'));
    expect(ra).toMatchObject({ nextHop: '192.0.2.20', med: 100, asPath: [64513], communities: ['(64513,100)', '(65000,1)'], largeCommunities: ['(64513, 1, 20)'] });
    const rb = await waitFor('198.51.100.11 in BIRD', () => route('198.51.100.11/32', 'd4'));
    expect(rb).toMatchObject({ nextHop: '192.0.2.10', asPath: [64513], communities: [] });
    expect(rb?.med).toBeUndefined();
  });

  it('soft-fail re-announces with the worse MED, prepends and extra communities, and back', async () => {
    const soft = await speaker.setRoutes([
      { vip: a, state: 'softfail' },
      { vip: b, state: 'up' },
    ]);
    expect(soft).toMatchObject({ announced: [], updated: ['198.51.100.10/32'], withdrawn: [] });
    const r = await waitFor('soft-fail attributes in BIRD', async () => {
      const x = await route('198.51.100.10/32', 'd4');
      return x?.med === 500 ? x : undefined;
    });
    expect(r).toMatchObject({ asPath: [64513, 64513, 64513], communities: ['(64513,100)', '(64513,666)', '(65000,1)'], nextHop: '192.0.2.20' });
    await speaker.setRoutes([
      { vip: a, state: 'up' },
      { vip: b, state: 'up' },
    ]);
    const back = await waitFor('normal attributes back', async () => {
      const x = await route('198.51.100.10/32', 'd4');
      return x?.med === 100 ? x : undefined;
    });
    expect(back.asPath).toEqual([64513]);
  });

  it('withdraws a VIP left out of the desired routes, and only that one, with its withdrawal encoded ahead', async () => {
    // Routes quiet for over a second: their withdrawals are encoded by now.
    await sleep(1500);
    const changes = await speaker.setRoutes([{ vip: b, state: 'up' }]);
    expect(changes).toMatchObject({ announced: [], updated: [], withdrawn: ['198.51.100.10/32'] });
    expect(entries.filter((e) => e.msg === 'routes changed').at(-1)?.fields).toMatchObject({ withdrawn: 1, withdrawnEncodedAhead: 1 });
    await waitFor('198.51.100.10 gone from BIRD', async () => (await route('198.51.100.10/32')) === undefined);
    expect(await route('198.51.100.11/32', 'd4')).toBeDefined();
    expect(await speaker.setRoutes([{ vip: b, state: 'up' }])).toMatchObject({ announced: [], updated: [], withdrawn: [] });
  });

  it('withdraws one VIP at once from its ready bytes, not while another change is on its way; the next setRoutes reports it', async () => {
    const both = [
      { vip: a, state: 'up' as const },
      { vip: b, state: 'up' as const },
    ];
    await speaker.setRoutes(both);
    await waitFor('198.51.100.10 back in BIRD', () => route('198.51.100.10/32', 'd4'));
    // One route to encode: encoded right after the change.
    await sleep(100);
    const inFlight = speaker.setRoutes(both);
    expect(speaker.withdrawNow('198.51.100.10')).toBeUndefined();
    await inFlight;
    expect(speaker.withdrawNow('198.51.100.99')).toBeUndefined();
    const changed = entries.filter((e) => e.msg === 'routes changed').length;
    const answered = speaker.withdrawNow('198.51.100.10');
    expect(answered).toBeInstanceOf(Promise);
    await answered;
    expect(entries.some((e) => e.msg === 'route withdrawn at once' && e.fields?.route === '198.51.100.10/32')).toBe(true);
    // Gone without a setRoutes().
    await waitFor('198.51.100.10 gone from BIRD', async () => (await route('198.51.100.10/32')) === undefined);
    expect(await route('198.51.100.11/32', 'd4')).toBeDefined();
    // The route set without it sends gobgpd nothing more, and reports the withdrawal once.
    expect(await speaker.setRoutes([{ vip: b, state: 'up' }])).toMatchObject({ announced: [], updated: [], withdrawn: ['198.51.100.10/32'] });
    expect(entries.filter((e) => e.msg === 'routes changed').length).toBe(changed);
    expect(await speaker.setRoutes([{ vip: b, state: 'up' }])).toMatchObject({ withdrawn: [] });
    const client = new GobgpClient(speaker.socketPath);
    try {
      expect((await client.listPath(FAMILY_IPV4)).map((d) => d.prefix)).not.toContain('198.51.100.10/32');
    } finally {
      client.close();
    }
  });

  it('announces an IPv6 VIP as /128 over the IPv6 session and over the IPv4 session that carries ipv6', async () => {
    await speaker.setRoutes([
      { vip: b, state: 'up' },
      { vip: c6, state: 'up' },
    ]);
    const over6 = await waitFor('2001:db8:100::10 via d6', () => route('2001:db8:100::10/128', 'd6'));
    expect(over6).toMatchObject({ nextHop: '2001:db8:0:1::10', med: 7 });
    const over4 = await waitFor('2001:db8:100::10 via d4', () => route('2001:db8:100::10/128', 'd4'));
    expect(over4).toMatchObject({ nextHop: '2001:db8:0:1::10', med: 7 });
  });

  it('reports per-peer state, uptime and prefix counters', async () => {
    const peers = await speaker.refreshPeers();
    const v4 = peers.find((p) => p.address === '192.0.2.1');
    const v6 = peers.find((p) => p.address === '2001:db8:0:1::1');
    expect(v4).toMatchObject({ asn: ROUTER_ASN, description: 'router r1 v4', state: 'ESTABLISHED', advertised: 2, received: 0 });
    expect(v6).toMatchObject({ state: 'ESTABLISHED', advertised: 1, received: 0 });
    expect(v4?.uptimeSeconds).toBeGreaterThanOrEqual(0);
    expect(Date.parse(v4?.establishedAt ?? '')).toBeGreaterThan(Date.now() - 120_000);
  });

  it('re-announces after the router goes down and comes back', async () => {
    const before = events.length;
    await bl.restartBird();
    await waitFor('d4 Established again', established('d4'));
    await waitFor('d6 Established again', established('d6'));
    await waitFor('198.51.100.11 back in BIRD', () => route('198.51.100.11/32', 'd4'));
    await waitFor('2001:db8:100::10 back in BIRD', () => route('2001:db8:100::10/128', 'd6'));
    const flap = events.slice(before).filter((e) => e.address === '192.0.2.1');
    expect(flap[0]).toMatchObject({ from: 'ESTABLISHED' });
    await waitFor('speaker sees peers up', async () => speaker.peers().every((p) => p.state === 'ESTABLISHED'));
    const v4 = (await speaker.refreshPeers()).find((p) => p.address === '192.0.2.1');
    expect(v4?.flops).toBeGreaterThanOrEqual(1);
    expect(v4?.lastError).toMatch(/Peer Down|notification/);
  });

  it('a reset session is back within the router\'s connect delay: the ended peer is re-added, skipping gobgpd\'s 5 s idle hold', async () => {
    await waitFor('d4 up', established('d4'));
    const t0 = Date.now();
    await birdc(bl, 'restart d4');
    await waitFor('d4 back with the route', async () => (await established('d4')()) && (await route('198.51.100.11/32', 'd4')));
    const ms = Date.now() - t0;
    // BIRD connects 1 s (connect delay time) after the restart; left to gobgpd's idle hold and dial, 10-14 s.
    expect(ms).toBeLessThan(3000);
    expect(entries.some((e) => e.msg.startsWith('session ended: peer re-added'))).toBe(true);
  });

  it('applies a reload: changes, removes and adds peers, leaving the unchanged one alone', async () => {
    const d4Since = (await bl.protocols()).get('d4')?.since;
    const v6 = (hold: string) => ({ address: '2001:db8:0:1::1', asn: ROUTER_ASN, holdTime: hold, keepalive: '2s', connectRetry: '5s', passive: true });
    const [v4peer] = cfg.peers;

    const changed = bgpConfig({ nextHop6: '2001:db8:0:1::10', peers: [v4peer, v6('6s')] });
    expect(await speaker.reconfigure(changed)).toMatchObject({ peers: { added: [], updated: ['2001:db8:0:1::1'], removed: [] }, restarted: false });
    await waitFor('d6 re-established', established('d6'));
    await waitFor('IPv6 VIP back via d6', () => route('2001:db8:100::10/128', 'd6'));

    const removed = bgpConfig({ nextHop6: '2001:db8:0:1::10', peers: [v4peer] });
    expect(await speaker.reconfigure(removed)).toMatchObject({ peers: { added: [], updated: [], removed: ['2001:db8:0:1::1'] } });
    await waitFor('d6 down', async () => !(await established('d6')()));
    expect(speaker.peers().map((p) => p.address)).toEqual(['192.0.2.1']);

    expect(await speaker.reconfigure(changed)).toMatchObject({ peers: { added: ['2001:db8:0:1::1'], updated: [], removed: [] } });
    await waitFor('d6 up again', established('d6'));
    await waitFor('IPv6 VIP via d6 again', () => route('2001:db8:100::10/128', 'd6'));

    expect((await bl.protocols()).get('d4')?.since).toBe(d4Since);
    expect(await route('198.51.100.11/32', 'd4')).toBeDefined();
  });

  it('deletes exactly the path it is given (never every local path)', async () => {
    const client = new GobgpClient(speaker.socketPath);
    try {
      const extra = toPathMsg([...planRoutes([{ vip: vip('198.51.100.99'), state: 'up' }], cfg).routes.values()][0]!, cfg.asn);
      await client.addPath(extra);
      await waitFor('198.51.100.99 in BIRD', () => route('198.51.100.99/32', 'd4'));
      await client.deletePath(extra);
      await waitFor('198.51.100.99 gone', async () => (await route('198.51.100.99/32')) === undefined);
      const v4 = (await client.listPath(FAMILY_IPV4)).map((d) => d.prefix);
      const v6 = (await client.listPath(FAMILY_IPV6)).map((d) => d.prefix);
      expect(v4).toEqual(['198.51.100.11/32']);
      expect(v6).toEqual(['2001:db8:100::10/128']);
    } finally {
      client.close();
    }
  });

  it('withdraws, in one write, requests encoded ahead and joined (how the speaker withdraws its announced routes)', async () => {
    const client = new GobgpClient(speaker.socketPath);
    try {
      const routes = planRoutes([{ vip: vip('198.51.100.96'), state: 'up' }, { vip: vip('198.51.100.97'), state: 'up' }], cfg).routes.values();
      const paths = [...routes].map((r) => toPathMsg(r, cfg.asn));
      for (const p of paths) await client.addPath(p);
      await waitFor('both in BIRD', async () => (await route('198.51.100.96/32', 'd4')) && route('198.51.100.97/32', 'd4'));
      const st = client.addPathStream();
      st.write(joinEncoded(paths.map((p) => client.encode([{ ...p, is_withdraw: true }]))));
      await st.end();
      await waitFor('both gone', async () => (await route('198.51.100.96/32')) === undefined && (await route('198.51.100.97/32')) === undefined);
      const left = (await client.listPath(FAMILY_IPV4)).map((d) => d.prefix);
      expect(left).not.toContain('198.51.100.96/32');
      expect(left).not.toContain('198.51.100.97/32');
    } finally {
      client.close();
    }
  });

  it('streams over calls opened ahead: an idle one still delivers, and a stream in use has a deadline of its own', async () => {
    const client = new GobgpClient(speaker.socketPath, { deadlineMs: 200 });
    const pid = speaker.gobgpdPid as number;
    const [r] = planRoutes([{ vip: vip('198.51.100.98'), state: 'up' }], cfg).routes.values();
    const send = async (withdraw: boolean): Promise<void> => {
      const st = client.addPathStream();
      st.write([toPathMsg(r!, cfg.asn, withdraw)]);
      await st.end();
    };
    try {
      await send(false);
      await waitFor('198.51.100.98 in BIRD', () => route('198.51.100.98/32', 'd4'));
      // The next call was opened when that one ended; it waits longer than a stream in use may take.
      await sleep(2000);
      await send(true);
      await waitFor('198.51.100.98 gone', async () => (await route('198.51.100.98/32')) === undefined);
      // A gobgpd that stops answering: the stream gives up 6 × deadlineMs after it was handed out, instead of hanging.
      process.kill(pid, 'SIGSTOP');
      const t0 = Date.now();
      await expect(send(false)).rejects.toThrow(/AddPathStream: Cancelled/);
      expect(Date.now() - t0).toBeLessThan(5000);
    } finally {
      process.kill(pid, 'SIGCONT');
      client.close();
    }
    // What the stopped gobgpd may still have taken in is removed again.
    const other = new GobgpClient(speaker.socketPath);
    try {
      await other.deletePath(toPathMsg(r!, cfg.asn));
      expect((await other.listPath(FAMILY_IPV4)).map((d) => d.prefix)).not.toContain('198.51.100.98/32');
    } finally {
      other.close();
    }
  });
});

describe('BGP input that must never reach gobgpd', () => {
  let bl: BgpLab;
  let speaker: BgpSpeaker;
  const cfg = bgpConfig();

  beforeAll(async () => {
    bl = await createBgpLab([V4_SESSION]);
    speaker = new BgpSpeaker(cfg, captureLogger().log, { runDir: bl.lab.path('run'), wrap: ['ip', 'netns', 'exec', bl.director] });
    await speaker.start();
  });

  afterAll(async () => {
    await speaker?.stop({ withdraw: false });
    await bl?.lab.cleanup();
  });

  it('the config loader refuses an IPv6 VIP under an IPv4-only session, and a bad ASN', () => {
    const base = {
      vipRanges: ['198.51.100.0/24', '2001:db8:100::/64'],
      bgp: { asn: 64513, routerId: '192.0.2.10', peers: [{ address: '192.0.2.1', asn: 64512 }] },
      vips: [{ address: '2001:db8:100::1' }],
    };
    const v6 = validateConfig(base);
    expect(v6.ok).toBe(false);
    expect(!v6.ok && v6.problems.map((p) => `${p.path}: ${p.message}`).join('\n')).toMatch(/vips\[0\]\.address: IPv6 VIP but no BGP peer carries ipv6/);
    const asn = validateConfig({ ...base, vips: [], bgp: { ...base.bgp, asn: 4294967295 } });
    expect(!asn.ok && asn.problems.map((p) => `${p.path}: ${p.message}`).join('\n')).toMatch(/bgp\.asn: ASN must be 1\.\.4294967294/);
  });

  it('refuses an IPv6 VIP under an IPv4-only session; the session and the IPv4 VIPs are unaffected', async () => {
    const changes = await speaker.setRoutes([
      { vip: vip('198.51.100.20'), state: 'up' },
      { vip: vip('2001:db8:100::20'), state: 'up' },
    ]);
    expect(changes.announced).toEqual(['198.51.100.20/32']);
    expect(changes.rejected).toEqual([{ address: '2001:db8:100::20', reason: expect.stringMatching(/IPv6 VIP but no BGP peer carries ipv6/) }]);
    await waitFor('d4 Established', async () => /Established/.test((await bl.protocols()).get('d4')?.info ?? ''));
    await waitFor('IPv4 VIP in BIRD', async () => (await bl.routes()).get('198.51.100.20/32'));
    const client = new GobgpClient(speaker.socketPath);
    try {
      expect(await client.listPath(FAMILY_IPV6)).toEqual([]);
    } finally {
      client.close();
    }
    expect([...(await bl.routes()).keys()]).toEqual(['198.51.100.20/32']);
  });

  it('fails to start with a clear error when gobgpd cannot be run', async () => {
    const broken = new BgpSpeaker(bgpConfig({ gobgpd: { binary: '/nonexistent/gobgpd' } }), captureLogger().log, { runDir: bl.lab.path('broken') });
    await expect(broken.start()).rejects.toThrow(/cannot start \/nonexistent\/gobgpd .*ENOENT/);
  });

  it('refuses a bad ASN in a new or reloaded config without touching gobgpd', async () => {
    expect(() => new BgpSpeaker({ ...cfg, asn: 0 }, captureLogger().log, { runDir: bl.lab.path('other') })).toThrow(BgpConfigError);
    const bad = { ...cfg, peers: [{ ...cfg.peers[0]!, asn: 4294967295 }] };
    await expect(speaker.reconfigure(bad)).rejects.toThrow(/bgp\.peers\[0\]\.asn: 4294967295: ASN must be an integer 1\.\.4294967294/);
    await expect(speaker.reconfigure({ ...cfg, asn: 23456 })).rejects.toThrow(BgpConfigError);
    const client = new GobgpClient(speaker.socketPath);
    try {
      expect((await client.getBgp()).asn).toBe(64513);
      expect((await client.listPeer()).map((p) => p.state?.peer_asn)).toEqual([ROUTER_ASN]);
    } finally {
      client.close();
    }
  });
});
