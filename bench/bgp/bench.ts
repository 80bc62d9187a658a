/**
 * BGP benchmark against BIRD 2 (IPv6 session, VIPs in 2001:db8:100::/64):
 *  - announce_10k_s: from BgpSpeaker.setRoutes() with 10,000 VIPs up to all 10,000 in BIRD;
 *  - announce_ratio: that ÷ the same 10,000 paths, pre-built, pushed over AddPathStream by a
 *    bare stub on the same gobgpd in the same run: the median of per-round ratios, each round
 *    timing both back to back (alternating who goes first), so that load drift cancels out;
 *  - withdraw_p50_ms / withdraw_p99_ms: from setRoutes() without one VIP (of 10,000) to the
 *    prefix leaving BIRD's table, over 200 withdrawals;
 *  - withdraw_now_p50_ms / withdraw_now_p99_ms: the same from withdrawNow() of that VIP (the
 *    coordinator's urgent path, followed by the setRoutes() without it), over 200 more,
 *    alternating with the others once every withdrawal is encoded.
 * Run: node --import tsx bench/bgp/bench.ts   (root; needs gobgpd, bird2, the gobgp protos)
 * Last line: BENCH bgp announce_10k_s=... announce_ratio=... withdraw_p50_ms=... withdraw_p99_ms=... withdraw_now_p50_ms=...
 */
import * as grpc from '@grpc/grpc-js';
import { createStub } from '../../src/bgp/proto.js';
import type { PathMsg } from '../../src/bgp/messages.js';
import { planRoutes, toPathMsg, type RouteIntent } from '../../src/bgp/routes.js';
import { BgpSpeaker } from '../../src/bgp/speaker.js';
import { nullLogger } from '../../src/log/logger.js';
import { BirdControl, bgpConfig, createBgpLab, ROUTER_ASN, sleep, V6_SESSION, vip, type BgpLab } from '../../test/integration/bgp/helpers.js';

const N = 10_000;
const ROUNDS = 9;
const WITHDRAWALS = 200;
/** Paths per stream message for the bare client (the fastest of the sizes tried). */
const DIRECT_BATCH = 1_000;

const say = (msg: string): void => void process.stderr.write(`bench bgp: ${msg}\n`);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const percentile = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] as number;
};

async function until(what: string, fn: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

/** The baseline: a bare generated stub streaming pre-built paths. */
function directPush(stub: ReturnType<typeof createStub>, paths: PathMsg[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const call = stub.AddPathStream(new grpc.Metadata(), { deadline: Date.now() + 60_000 }, (err) => (err ? reject(err) : resolve()));
    for (let i = 0; i < paths.length; i += DIRECT_BATCH) call.write({ table_type: 'GLOBAL', paths: paths.slice(i, i + DIRECT_BATCH) });
    call.end();
  });
}

async function main(): Promise<void> {
  let bl: BgpLab | undefined;
  let speaker: BgpSpeaker | undefined;
  let ctl: BirdControl | undefined;
  let stub: ReturnType<typeof createStub> | undefined;
  try {
    bl = await createBgpLab([V6_SESSION]);
    const cfg = bgpConfig({ peers: [{ address: '2001:db8:0:1::1', asn: ROUTER_ASN, holdTime: '9s', keepalive: '3s', connectRetry: '5s' }] });
    speaker = new BgpSpeaker(cfg, nullLogger, { runDir: bl.lab.path('run'), wrap: ['ip', 'netns', 'exec', bl.director] });
    await speaker.start();
    await speaker.setRoutes([]);
    ctl = await BirdControl.connect(bl.bird.socket);
    const c = ctl;
    await until('the IPv6 session', async () => /d6\s+BGP\s+\S+\s+up\s+\S+\s+Established/.test(await c.query('show protocols')));
    say('session established');

    // Fresh VipConfig objects per round: vipd plans every VIP from scratch, as at startup.
    const makeIntents = (): RouteIntent[] =>
      Array.from({ length: N }, (_, i) => ({ vip: vip(`2001:db8:100::${(i + 1).toString(16)}`, { communities: ['64513:100'], med: 10 }), state: 'up' }));
    const paths = [...planRoutes(makeIntents(), cfg).routes.values()].map((r) => toPathMsg(r, cfg.asn));
    const withdrawals = paths.map((p) => ({ ...p, is_withdraw: true }));
    stub = createStub(speaker.socketPath);
    const count = (n: number) => async () => (await c.count('master6')) === n;

    const vipd: number[] = [];
    const direct: number[] = [];
    // Config objects exist long before a decision: build them all now, outside the timed part.
    const fresh = Array.from({ length: ROUNDS }, makeIntents);
    const viaVipd = async (): Promise<void> => {
      const intents = fresh.pop() as RouteIntent[];
      const t = performance.now();
      await sp.setRoutes(intents);
      await until('10k routes from vipd', count(N));
      vipd.push(performance.now() - t);
      await sp.setRoutes([]);
      await until('table empty', count(0));
    };
    const viaBareClient = async (): Promise<void> => {
      const t = performance.now();
      await directPush(bare, paths);
      await until('10k routes from the bare client', count(N));
      direct.push(performance.now() - t);
      await directPush(bare, withdrawals);
      await until('table empty', count(0));
    };
    const sp = speaker;
    const bare = stub;
    // Alternate who goes first, so that drift on a shared machine hits both alike.
    for (let round = 1; round <= ROUNDS; round++) {
      if (round % 2) await viaVipd().then(viaBareClient);
      else await viaBareClient().then(viaVipd);
      say(`round ${round}: vipd ${vipd.at(-1)?.toFixed(0)} ms, bare client ${direct.at(-1)?.toFixed(0)} ms`);
    }

    const intents = makeIntents();
    await speaker.setRoutes(intents);
    await until('10k routes', count(N));
    // Their withdrawals are encoded once the routes have been quiet for 1 s (speaker.ts).
    await sleep(2500);
    const lat: number[] = [];
    const latNow: number[] = [];
    for (let i = 0; i < 2 * WITHDRAWALS; i++) {
      const address = intents[i]?.vip.address as string;
      const urgent = i % 2 === 1;
      const t = performance.now();
      if (urgent && !speaker.withdrawNow(address)) throw new Error(`withdrawNow(${address}) refused`);
      await speaker.setRoutes(intents.slice(i + 1));
      while (await c.has(`${address}/128`)) {
        if (performance.now() - t > 10_000) throw new Error(`${address} not withdrawn within 10 s`);
      }
      (urgent ? latNow : lat).push(performance.now() - t);
    }
    for (const [what, xs] of [['setRoutes', lat], ['withdrawNow', latNow]] as const) say(`withdrawals by ${what}: min ${Math.min(...xs).toFixed(1)} ms, max ${Math.max(...xs).toFixed(1)} ms`);

    const announce = median(vipd);
    const fields = {
      announce_10k_s: (announce / 1000).toFixed(3),
      announce_ratio: median(vipd.map((v, i) => v / (direct[i] as number))).toFixed(2),
      withdraw_p50_ms: percentile(lat, 50).toFixed(1),
      withdraw_p99_ms: percentile(lat, 99).toFixed(1),
      withdraw_now_p50_ms: percentile(latNow, 50).toFixed(1),
      withdraw_now_p99_ms: percentile(latNow, 99).toFixed(1),
    };
    await speaker.stop({ withdraw: false });
    speaker = undefined;
    process.stdout.write(`BENCH bgp ${Object.entries(fields).map(([k, v]) => `${k}=${v}`).join(' ')}\n`);
  } finally {
    stub?.close();
    ctl?.close();
    await speaker?.stop({ withdraw: false });
    await bl?.lab.cleanup();
  }
}

await main();
