/**
 * ARP benchmark in namespaces: takeover time on the wire over 20 SIGKILLs of the owner, and the
 * duration of one gratuitous ARP round for 1,000 ARP-mode VIPs. Progress goes to stderr; the
 * last line on stdout is `BENCH arp key=value ...`. Run through bench/arp/run.mjs.
 */
import { ArpLab, driverEvents, sleep, until, VIP, VIP_RANGES, type Director } from '../../test/integration/arp/arplab.js';
import type { DriverConfig } from '../../test/integration/arp/driver.js';
import type { Daemon } from '../../test/lab/netns.js';

const KILLS = 20;
const VIPS = 1000;
const HOLD_MS = 700;

const say = (msg: string): void => void process.stderr.write(`bench arp: ${msg}\n`);

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? NaN;
}

const ownership: DriverConfig = {
  vips: [{ address: VIP, mode: 'arp', interface: 'eth0', priority: 100, preempt: false }],
  vipRanges: VIP_RANGES,
  peers: ['192.0.2.11', '192.0.2.12'],
  intervalMs: 3000,
  concurrency: 32,
  advertMs: 200,
  holdMs: HOLD_MS,
};

async function takeovers(lab: ArpLab): Promise<number[]> {
  const cap = await lab.capture('arp');
  const dirs = [lab.director(0), lab.director(1)];
  const procs = new Map<Director, Daemon>();
  for (const d of dirs) procs.set(d, await lab.start(d, ownership));
  const owns = (d: Director): boolean => {
    const evs = driverEvents(procs.get(d) as Daemon).filter((e) => e.event === 'owner');
    return evs.at(-1)?.owner === true;
  };
  await until('a first owner', () => dirs.find(owns), 5000);
  const samples: number[] = [];
  for (let i = 0; i < KILLS; i++) {
    const owner = await until('an owner', () => dirs.find(owns), 5000);
    const other = dirs.find((d) => d !== owner) as Director;
    const victim = procs.get(owner) as Daemon;
    const at = Date.now();
    process.kill(victim.pid, 'SIGKILL');
    await victim.exited;
    const first = await until(
      'the other director on the wire',
      () => cap.events().find((e) => e.t > at && e.ip === VIP && ((e.kind === 'garp' && e.src === other.mac) || (e.kind === 'reply' && e.mac === other.mac))),
      5000,
    );
    samples.push(first.t - at);
    say(`kill ${i + 1}/${KILLS}: ${owner.name} -> ${other.name} in ${Math.round(first.t - at)} ms`);
    // The killed one comes back as backup and must have listened a full hold time before the next kill.
    procs.set(owner, await lab.start(owner, ownership));
    await sleep(HOLD_MS + 300);
  }
  await Promise.all([...procs.values(), cap.daemon].map((d) => d.stop('SIGTERM')));
  return samples;
}

/**
 * The IPv4 documentation ranges hold 768 host addresses in all, fewer than 1,000; so the 1,000
 * ARP-mode VIPs are every one of them (the round lab links over IPv6 only, leaving them free)
 * plus IPv6 VIPs, which the kernel announces when they are added and no arping round carries.
 */
function roundVips(): string[] {
  const v4 = ['192.0.2', '198.51.100', '203.0.113'].flatMap((net) => Array.from({ length: 256 }, (_, i) => `${net}.${i}`));
  const v6 = Array.from({ length: VIPS - v4.length }, (_, i) => `2001:db8:100::${(i + 1).toString(16)}`);
  return [...v4, ...v6];
}

async function garpRound(): Promise<{ driverMs: number; wireMs: number; perRound: number; v4: number }> {
  const lab = await ArpLab.create(1, { ipv4: false });
  try {
    const addrs = roundVips();
    const v4 = addrs.filter((a) => !a.includes(':')).length;
    const cfg: DriverConfig = {
      vips: addrs.map((address) => ({ address, mode: 'arp', interface: 'eth0' })),
      vipRanges: ['192.0.2.0/24', '198.51.100.0/24', '203.0.113.0/24', '2001:db8:100::/64'],
      peers: [],
      intervalMs: 3000,
      concurrency: 32,
      quiet: true,
    };
    const cap = await lab.capture('arp');
    const d = await lab.start(lab.director(0), cfg);
    const rounds = await until(
      'five rounds',
      () => {
        const r = driverEvents(d).filter((e) => e.event === 'round' && e.targets === v4);
        return r.length >= 5 ? r : undefined;
      },
      90_000,
      200,
    );
    await sleep(300);
    const garps = cap.events().filter((e) => e.kind === 'garp');
    await Promise.all([d.stop('SIGTERM'), cap.daemon.stop('SIGTERM')]);
    // The first round may share the slots with the takeover announcements of all VIPs, and the
    // last one's successor may have begun: measure the ones between.
    const steady = rounds.slice(1, -1);
    const wire: number[] = [];
    const counts: number[] = [];
    for (const [i, r] of steady.entries()) {
      const start = r.startedAt as number;
      // An overrunning round is followed at once by the next: its start bounds this one.
      const end = Math.min(start + (r.durationMs as number) + 50, rounds[i + 2]?.startedAt as number);
      const inRound = garps.filter((g) => g.t >= start && g.t < end);
      counts.push(inRound.length);
      if (inRound.length) wire.push((inRound.at(-1)?.t ?? 0) - (inRound[0]?.t ?? 0));
    }
    return { driverMs: percentile(steady.map((r) => r.durationMs as number), 50), wireMs: percentile(wire, 50), perRound: percentile(counts, 50), v4 };
  } finally {
    await lab.cleanup();
  }
}

async function main(): Promise<void> {
  const lab = await ArpLab.create(2);
  let t: number[];
  try {
    say(`takeover: ${KILLS} SIGKILLs of the owner (advert 200 ms, hold ${HOLD_MS} ms)`);
    t = await takeovers(lab);
  } finally {
    await lab.cleanup();
  }
  say(`garp round: ${VIPS} ARP-mode VIPs at concurrency 32`);
  const g = await garpRound();
  {
    const line = [
      `takeover_p50_ms=${Math.round(percentile(t, 50))}`,
      `takeover_p99_ms=${Math.round(percentile(t, 99))}`,
      `takeover_max_ms=${Math.round(Math.max(...t))}`,
      `garp_round_ms=${Math.round(g.driverMs)}`,
      `garp_round_wire_ms=${Math.round(g.wireMs)}`,
      `garps_per_round=${g.perRound}`,
      // Linear in the number of arpings (process creation bound): what 1,000 IPv4 VIPs would take.
      `garp_round_1000v4_est_ms=${Math.round((g.driverMs * 1000) / g.v4)}`,
      `vips=${VIPS}`,
      `ipv4_vips=${g.v4}`,
      `kills=${t.length}`,
    ].join(' ');
    process.stdout.write(`BENCH arp ${line}\n`);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench arp failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
