/**
 * `make soak`: vipd in the VM lab under continuous change for VIPD_SOAK_MINUTES (default 60):
 * realservers failing and recovering, reloads with changed weights, drains and undrains, status
 * queries. vipd's RSS and open descriptors are sampled throughout and must stay flat: the highest
 * RSS of the second half at most VIPD_SOAK_RSS_GROWTH_KB (default 8192) above the first half's
 * highest (a heap that only warms up levels off; a leak keeps raising the peaks), and no more than
 * 4 descriptors above the first half's highest. The least-squares RSS slope is reported too. Ends
 * with one `SOAK key=value ...` line; exit 1 when a limit is broken.
 */
import { BGP_SECTION, DirectorLab, REALSERVERS, until } from '../lab/director.js';
import { REPO_ROOT } from '../lab/vm.js';

const MINUTES = Number(process.env.VIPD_SOAK_MINUTES ?? 60);
const RSS_GROWTH_KB = Number(process.env.VIPD_SOAK_RSS_GROWTH_KB ?? 8192);
const VIP = '198.51.100.10';
const say = (s: string): void => void process.stderr.write(`==> soak: ${s}\n`);

function config(weight: number): string {
  return `
node: { name: soak, stateDir: /tmp/vipd-state, runDir: /run/vipd }
log: { level: info, format: json }
vipRanges: [198.51.100.0/24]
${BGP_SECTION}
vips: [{ address: ${VIP}, minHealthy: 1 }]
nodes: [{ name: n3 }]
services:
  - vip: ${VIP}
    port: 80
    scheduler: wrr
    check: { type: tcp, interval: 500ms, timeout: 1s, rise: 2, fall: 2 }
    realservers: [{ address: 203.0.113.11, weight: ${weight} }, { address: 203.0.113.12 }, { address: 203.0.113.13, node: n3 }]
`;
}

interface Sample {
  atMin: number;
  rssKb: number;
  fds: number;
}

/** Least-squares slope of y over x. */
function slope(xs: readonly number[], ys: readonly number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den ? num / den : 0;
}

async function main(): Promise<{ line: string; ok: boolean }> {
  const d = await DirectorLab.create({ config: config(100) });
  let passed = false;
  try {
    await d.startVipd();
    await until('route in BIRD', () => d.hasRoute(`${VIP}/32`), 180_000, 500);
    say(`vipd serving; running ${MINUTES} min of changes`);
    const samples: Sample[] = [];
    const counts = { flaps: 0, reloads: 0, drains: 0, statuses: 0, slowCalls: 0 };
    // vipctl starts node in the emulated VM: on a loaded host that alone can take tens of
    // seconds, so a call that runs out of time is counted, not fatal; vipd dying is.
    const vipctl = async (args: string): Promise<string> => {
      const r = await d.vm.exec(`node ${REPO_ROOT}/dist/vipctl.mjs --socket /run/vipd/vipd.sock ${args} --json`, { timeoutMs: 120_000 }).catch(() => undefined);
      if (r?.code !== 0) counts.slowCalls++;
      return r?.stdout ?? '';
    };
    const t0 = Date.now();
    const elapsedMin = (): number => (Date.now() - t0) / 60_000;
    const sample = async (): Promise<void> => {
      const r = await d.vm.run(`grep VmRSS /proc/${d.vipdPid}/status; ls /proc/${d.vipdPid}/fd | wc -l`);
      const [rss, fds] = r.stdout.trim().split('\n');
      samples.push({ atMin: elapsedMin(), rssKb: Number(/(\d+)/.exec(rss ?? '')?.[1]), fds: Number(fds) });
    };
    let down: string | undefined;
    let step = 0;
    let nextSample = 0;
    while (elapsedMin() < MINUTES) {
      if (Date.now() >= nextSample) {
        await sample();
        nextSample = Date.now() + Math.max(5_000, (MINUTES * 60_000) / 120);
      }
      step++;
      // One realserver at a time fails or recovers, so the VIP itself stays up.
      if (down) {
        d.startServer(down);
        down = undefined;
      } else {
        down = REALSERVERS[step % REALSERVERS.length]!;
        await d.stopServer(down);
      }
      counts.flaps++;
      d.writeConfig(config(step % 2 ? 90 : 100));
      await d.signalVipd('HUP');
      counts.reloads++;
      // vipctl is slow in the VM: drains and status queries on every fifth round only.
      if (step % 5 === 0) {
        await vipctl(step % 10 === 0 ? 'drain n3' : 'undrain n3');
        counts.drains++;
        await vipctl('status');
        counts.statuses++;
      }
      await new Promise((r) => setTimeout(r, 1500));
    }
    await sample();
    const alive = (await d.vm.exec(`kill -0 ${d.vipdPid}`)).code === 0;
    const final = await until('final status', async () => {
      const out = await vipctl('status');
      return out.includes('"serving"') ? out : undefined;
    }, 300_000, 1000);
    const serving = alive && (JSON.parse(final) as { serving: boolean }).serving;
    say(`samples (min rss_kb fds): ${samples.map((s) => `${s.atMin.toFixed(1)} ${s.rssKb} ${s.fds}`).join(', ')}`);
    const first = samples.filter((s) => s.atMin < MINUTES / 2);
    const second = samples.filter((s) => s.atMin >= MINUTES / 2);
    const peak = (xs: Sample[], k: 'rssKb' | 'fds'): number => Math.max(...xs.map((s) => s[k]));
    const rssGrowthKb = peak(second, 'rssKb') - peak(first, 'rssKb');
    const rssSlopeKbPerHour = Math.round(slope(samples.map((s) => s.atMin), samples.map((s) => s.rssKb)) * 60);
    const ok = serving && second.length >= 3 && rssGrowthKb <= RSS_GROWTH_KB && peak(second, 'fds') <= peak(first, 'fds') + 4;
    const line =
      `SOAK minutes=${MINUTES} samples=${samples.length} flaps=${counts.flaps} reloads=${counts.reloads} drains=${counts.drains} statuses=${counts.statuses} slow_calls=${counts.slowCalls} ` +
        `rss_first_kb=${samples[0]?.rssKb} rss_last_kb=${samples.at(-1)?.rssKb} rss_peak_first_half_kb=${peak(first, 'rssKb')} rss_peak_second_half_kb=${peak(second, 'rssKb')} ` +
      `rss_growth_kb=${rssGrowthKb} rss_slope_kb_per_hour=${rssSlopeKbPerHour} fds_peak_first_half=${peak(first, 'fds')} fds_peak_second_half=${peak(second, 'fds')} serving=${serving} ok=${ok}`;
    passed = ok;
    return { line, ok };
  } finally {
    await d.cleanup({ diagnostics: !passed });
  }
}

// The SOAK line comes last, after the lab's clean-up output.
const result = await main().catch((e: unknown) => {
  console.error(e);
  return { line: 'SOAK ok=false', ok: false };
});
console.log(result.line);
process.exitCode = result.ok ? 0 : 1;
