/**
 * `make demo`: the appliance doing its main job on an embedded default. Builds the image (or
 * reuses an up-to-date one), boots its ISO under qemu in the image test's namespace lab
 * (test/lab/appliance-lab.ts: BIRD router, three HTTP realservers holding the VIP on lo for
 * direct routing, a client behind the router), and shows in order: the BGP session and the
 * VIP route in BIRD, `vipctl status` in the appliance, client requests spread over the
 * realservers, and one realserver stopped: failing in status and getting no more requests.
 * Then everything is torn down.
 */
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../src/util/exec.js';
import { Appliance, ensureImage } from '../test/lab/appliance.js';
import { NICS, REALSERVERS, VIP, createImageLab, directorConfig, makeConfigVolume, waitUntil } from '../test/lab/appliance-lab.js';
import { Lab } from '../test/lab/netns.js';

const started = performance.now();
const secs = (): string => `${((performance.now() - started) / 1000).toFixed(0)} s`;
const step = (s: string): void => void process.stdout.write(`\n==> ${s}  [${secs()}]\n`);
const show = (s: string): void => void process.stdout.write(`${s.trimEnd().replace(/^/gm, '    ')}\n`);
const REQUESTS = 30;

/** Requests answered per realserver; anything else (errors) is counted under its text. */
function spread(bodies: string[]): Map<string, number> {
  const counts = new Map<string, number>(REALSERVERS.map((_, i) => [`rs${i + 1}`, 0]));
  for (const b of bodies) counts.set(b, (counts.get(b) ?? 0) + 1);
  return counts;
}

const lab = await Lab.create();
let ap: Appliance | undefined;
try {
  step('image: building the appliance ISO, or reusing it when no input changed');
  const iso = join(await ensureImage(), 'vipd.iso');
  show(`${iso} (${(statSync(iso).size / 1048576).toFixed(1)} MiB)`);

  step(`lab: router (BIRD, AS 64512), realservers rs1-rs3 (${REALSERVERS.join(', ')}, VIP ${VIP} on lo, arp_ignore=1, arp_announce=2), client 192.0.2.130`);
  const net = await createImageLab(lab);
  const password = randomBytes(12).toString('base64url');
  const hash = (await run('openssl', ['passwd', '-6', '-stdin'], { timeoutMs: 10_000, input: `${password}\n` })).stdout.trim();
  const volume = await makeConfigVolume(lab.path('config.img'), { 'vipd.yaml': directorConfig(), 'rootpw.hash': `${hash}\n` });
  show(`config volume VIPDCFG: vipd.yaml (VIP ${VIP}:80, mh, direct routing, HTTP checks) and a one-time root password hash`);

  step('appliance: booting vipd.iso (BIOS, qemu TCG), NICs on the router and realserver bridges');
  const appliance = await Appliance.boot(lab, { iso, configVolume: volume, netns: net.router, nics: NICS });
  ap = appliance;
  await ap.waitFor(/vipd-image: vipd started \(pid \d+\)/, 240_000);
  const banner = /=== vipd [\s\S]*?\n {2}vipd [^\n]*\n/.exec(ap.console());
  show(banner ? banner[0] : ap.tail(1500));

  step('BIRD: the BGP session with the appliance is Established and the VIP route is in its table');
  await waitUntil('BGP Established in BIRD', net.established, 120_000);
  await waitUntil(`${VIP}/32 in BIRD`, net.hasVipRoute, 60_000);
  show(await net.bird.cli('show protocols director'));
  show(await net.bird.cli(`show route for ${VIP}`));

  step('appliance: vipctl status (logged in as root on the serial console)');
  await ap.login('root', password);
  show((await ap.sh('vipctl status')).out);

  step(`client: ${REQUESTS} HTTP requests to http://${VIP}/ through the router, each on a new connection`);
  await waitUntil('a first answer through the VIP', async () => (await net.fetchVip(1))[0]?.startsWith('rs') === true, 30_000, 500);
  for (const [rs, n] of spread(await net.fetchVip(REQUESTS))) show(`${rs.padEnd(8)} ${String(n).padStart(3)} requests`);

  step('rs1: HTTP server stopped; waiting for vipd to see it failing');
  await net.realservers[0]?.stop();
  await waitUntil(
    'vipctl status showing 2 of 3 healthy',
    async () => {
      const { out } = await appliance.sh('vipctl status --json');
      return /"healthy":\s*2\b/.test(out);
    },
    60_000,
    1_000,
  );
  show((await ap.sh('vipctl status')).out);
  show((await ap.sh(`vipctl services ${VIP}`)).out);

  step(`client: ${REQUESTS} more requests: rs1 gets none`);
  const after = spread(await net.fetchVip(REQUESTS));
  for (const [rs, n] of after) show(`${rs.padEnd(8)} ${String(n).padStart(3)} requests`);
  if (after.get('rs1') !== 0) throw new Error(`rs1 is stopped but still got ${after.get('rs1')} requests`);
} finally {
  step('teardown: appliance, BIRD, realservers, client, namespaces');
  await ap?.kill();
  await lab.cleanup();
  show(`nothing left running; demo took ${secs()}`);
}
