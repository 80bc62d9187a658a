/**
 * Appliance image benchmark:
 *  - size_mb: the hybrid ISO (kernel + the whole root as one compressed initramfs + boot loaders);
 *  - boot_to_announce_ratio: from power-on to the VIP in BIRD's table, divided by power-on to
 *    init starting ("vipd-image: init started" on the serial console), in the same boot. The
 *    denominator is what the machine (firmware, boot loader, kernel, unpacking the root) costs
 *    before our code runs, so the ratio says how much our boot adds, whatever the speed of the
 *    machine or of emulation.
 * One BIOS boot from the ISO in the image test's lab (test/lab/appliance-lab.ts): BIRD polled every 50 ms.
 * Run: npx tsx bench/image/bench.ts   (root; builds the image first unless it is up to date)
 * Last line: BENCH image size_mb=... boot_to_announce_ratio=...
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { Lab } from '../../test/lab/netns.js';
import { Appliance, ensureImage } from '../../test/lab/appliance.js';
import { NICS, createImageLab, directorConfig, makeConfigVolume } from '../../test/lab/appliance-lab.js';

const say = (msg: string): void => void process.stderr.write(`bench image: ${msg}\n`);
const ANNOUNCE_TIMEOUT_MS = 300_000;

async function main(): Promise<void> {
  say('building the image (or finding it up to date)');
  const iso = join(await ensureImage(), 'vipd.iso');
  const sizeMb = statSync(iso).size / 1024 / 1024;
  const lab = await Lab.create();
  let ap: Appliance | undefined;
  try {
    const net = await createImageLab(lab);
    const volume = await makeConfigVolume(lab.path('config.img'), { 'vipd.yaml': directorConfig() });
    say('booting the ISO (BIOS, qemu TCG)');
    ap = await Appliance.boot(lab, { iso, configVolume: volume, netns: net.router, nics: NICS });
    let announcedMs: number | undefined;
    while (announcedMs === undefined) {
      if (await net.hasVipRoute()) announcedMs = ap.uptimeMs();
      else if (ap.uptimeMs() > ANNOUNCE_TIMEOUT_MS) throw new Error(`no VIP route in BIRD ${ANNOUNCE_TIMEOUT_MS} ms after power-on\n${ap.tail()}`);
      else await new Promise((r) => setTimeout(r, 50));
    }
    const initMs = ap.timeOf(/vipd-image: init started/);
    if (initMs === undefined) throw new Error(`announced, but init never said it started\n${ap.tail()}`);
    const at = (re: RegExp): string => ((ap?.timeOf(re) ?? NaN) / 1000).toFixed(1);
    say(
      `seconds after power-on: init started ${at(/init started/)}, network up ${at(/vipd-image: network:/)}, ` +
        `vipd started ${at(/vipd-image: vipd started/)}, vipd ready ${at(/vipd-image: vipd ready/)}, VIP in BIRD ${(announcedMs / 1000).toFixed(1)}`,
    );
    console.log(`BENCH image size_mb=${sizeMb.toFixed(1)} boot_to_announce_ratio=${(announcedMs / initMs).toFixed(2)}`);
  } finally {
    await ap?.kill();
    await lab.cleanup();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench image: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
