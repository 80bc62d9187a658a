/**
 * The appliance image, booted from its ISO under qemu (TCG) in a namespace lab with BIRD as the
 * upstream router, three HTTP realservers and a client (test/lab/appliance-lab.ts). Two machines
 * boot side by side: the director on BIOS, and a spare one on UEFI with an invalid config.
 * Everything is observed from outside, as an operator would: the serial console, BIRD's table,
 * HTTP through the VIP, and a root shell on the console (login with the hash from the config
 * volume).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkConfigFiles } from '../../../src/config/check.js';
import { run } from '../../../src/util/exec.js';
import { Lab } from '../../lab/netns.js';
import { Appliance, ensureImage } from '../../lab/appliance.js';
import { NICS, REALSERVERS, SPARE_NICS, VIP, createImageLab, directorConfig, makeConfigVolume, waitUntil, type ImageLab } from '../../lab/appliance-lab.js';

/** Boot to "vipd started": ~30 s on an idle machine under TCG; minutes when other VMs run. */
const BOOT_MS = 150_000;
/** vipd started to BGP Established: ~10 s idle; node and gobgpd start slowly on a loaded host. */
const SESSION_MS = 150_000;

const EXAMPLE = resolve(dirname(fileURLToPath(import.meta.url)), '../../../image/vipd.yaml.example');

it('ships an example config, and tests with a config, that vipd accepts (network section included)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vipd-image-config-'));
  try {
    writeFileSync(join(dir, 'vipd.yaml'), directorConfig());
    for (const r of checkConfigFiles([EXAMPLE, join(dir, 'vipd.yaml')])) expect(r.problems, r.file).toEqual([]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

describe('appliance image', () => {
  let iso: string;
  let lab: Lab;
  let net: ImageLab;
  const password = randomBytes(12).toString('base64url');
  let uefi: Appliance | undefined;
  let ap: Appliance;

  beforeAll(async () => {
    // Builds the image unless it is up to date (`make image` normally did that already).
    iso = join(await ensureImage(), 'vipd.iso');
    const hash = (await run('openssl', ['passwd', '-6', '-stdin'], { timeoutMs: 10_000, input: `${password}\n` })).stdout.trim();
    lab = await Lab.create();
    net = await createImageLab(lab);
    // Both machines boot at once: on UEFI (one vCPU) the spare director with an invalid config,
    // on BIOS the director that serves the VIP.
    // The README's example mistake: direct routing cannot rewrite ports.
    const invalid = directorConfig({ spare: true }).replace(`- address: ${REALSERVERS[0]}`, `- address: ${REALSERVERS[0]}\n        port: 8080`);
    const invalidVolume = await makeConfigVolume(lab.path('invalid.img'), { 'vipd.yaml': invalid, 'rootpw.hash': `${hash}\n` });
    const volume = await makeConfigVolume(lab.path('config.img'), { 'vipd.yaml': directorConfig(), 'rootpw.hash': `${hash}\n` });
    uefi = await Appliance.boot(lab, { iso, firmware: 'uefi', configVolume: invalidVolume, netns: net.router, nics: SPARE_NICS, cpus: 1 });
    ap = await Appliance.boot(lab, { iso, configVolume: volume, netns: net.router, nics: NICS });
  }, 1_300_000);

  afterAll(async () => {
    await uefi?.kill();
    await ap?.kill();
    await lab?.cleanup();
  });

  describe('UEFI boot (OVMF) with an invalid config volume', () => {
    // Its CPU goes to the BIOS machine's tests once these are done.
    afterAll(async () => {
      await uefi?.kill();
    });

    it(
      'reaches vipd under init',
      async () => {
        const m = await (uefi as Appliance).waitFor(/vipd-image: vipd ready \(pid (\d+)\)/, BOOT_MS);
        const text = (uefi as Appliance).console();
        expect(text).toMatch(/vipd-image: init started/);
        expect(text).toMatch(/=== vipd \S+ on director-2/);
        expect(text).toMatch(/management +eth0 192\.0\.2\.11\/25, eth1 203\.0\.113\.20\/24/);
        expect(text).not.toMatch(new RegExp(`vipd \\(pid ${m[1]}\\) (exited|killed)`));
      },
      BOOT_MS + 30_000,
    );

    it('shows the problems on the console and in vipctl status, and announces nothing', async () => {
      const vm = uefi as Appliance;
      await vm.waitFor(/vipd-image: the config is invalid:/, 30_000);
      await vm.waitFor(/services\[0\]\.realservers\[0\]\.port: direct routing does not rewrite ports/, 5_000);
      await vm.waitFor(/vipd +NOT SERVING: the config is invalid/, 10_000);
      // vipd runs unconfigured, answering its status API with the reason.
      await vm.login('root', password);
      const status = await vm.sh('vipctl status');
      expect(status.out).toMatch(/NOT SERVING/);
      expect(status.out).toMatch(/services\[0\]\.realservers\[0\]\.port: direct routing does not rewrite ports/);
      // No BGP at all (no gobgpd), nothing at BIRD from it, nothing restarting in a loop.
      expect((await vm.sh('pidof gobgpd')).out.trim()).toBe('');
      for (let i = 0; i < 6; i++) {
        expect(await net.established('spare')).toBe(false);
        expect(await net.routesFrom('spare')).toEqual([]);
        await new Promise((r) => setTimeout(r, 500));
      }
      expect(vm.console().match(/vipd-image: vipd started/g)).toHaveLength(1);
      expect(vm.console().match(/vipd-image: the config is invalid/g)).toHaveLength(1);
    }, 90_000);
  });

  describe('BIOS boot from the ISO with a config volume', () => {
    it(
      'runs vipd under init and shows the banner on the console',
      async () => {
        await ap.waitFor(/vipd-image: init started \(vipd \S+, build \S+, kernel \S+\)/, BOOT_MS);
        const started = await ap.waitFor(/vipd-image: vipd started \(pid (\d+)\)/, BOOT_MS);
        const text = ap.console();
        expect(text).toMatch(/=== vipd \S+ on director-1 \(image \S+\) ===/);
        expect(text).toMatch(/management +eth0 192\.0\.2\.10\/25, eth1 203\.0\.113\.10\/24/);
        expect(text).toMatch(/config +LABEL=VIPDCFG \(vfat rw\) mounted on \/media\/vipdcfg/);
        expect(text).toMatch(/state +on the config volume, persistent/);
        expect(text).toMatch(/vipctl +log in on this console as root, then: vipctl status/);

        await ap.login('root', password);
        // busybox init (PID 1) -> supervise -> vipd (node). (Through cat: ps cuts lines at a terminal's width.)
        const ps = (await ap.sh('ps -o pid,ppid,args | cat')).out;
        const procs = ps.split('\n').map((l) => l.trim().split(/\s+/));
        const supervise = procs.find((p) => p[1] === '1' && p.includes('/usr/lib/vipd-image/supervise'));
        expect(supervise, ps).toBeDefined();
        const vipd = procs.find((p) => p[0] === started[1]);
        expect(vipd?.[1], ps).toBe(supervise?.[0]);
        expect(vipd?.slice(2).join(' '), ps).toContain('/usr/lib/vipd/dist/vipd.mjs run --config /media/vipdcfg/vipd.yaml');
      },
      BOOT_MS + 60_000,
    );

    it('keeps code read-only and every service but BGP local', async () => {
      const write = await ap.sh('touch /usr/lib/vipd/dist/x 2>&1; touch /lib/modules/x 2>&1');
      expect(write.out).toMatch(/Read-only file system/);
      // No login service, gobgpd's API on a unix socket only (not :50051), metrics on loopback.
      const listening = (await ap.sh('netstat -tln')).out
        .split('\n')
        .filter((l) => /LISTEN/.test(l))
        .map((l) => l.trim().split(/\s+/)[3] ?? '');
      for (const a of listening) {
        const port = Number(a.slice(a.lastIndexOf(':') + 1));
        expect([22, 23, 50051], listening.join(' ')).not.toContain(port);
        if (port === 9642) expect(a, 'metrics').toMatch(/^(127\.0\.0\.1|::1):9642$/);
      }
      expect((await ap.sh("grep -c '^root:[$]6[$]' /etc/shadow")).out.trim()).toBe('1');
    });

    it(
      'peers with BIRD and announces the VIP',
      async () => {
        await waitUntil('BGP Established in BIRD', net.established, SESSION_MS);
        await waitUntil(`${VIP}/32 in BIRD`, net.hasVipRoute, 60_000);
      },
      SESSION_MS + 70_000,
    );

    it(
      'serves client requests through the VIP from the realservers',
      async () => {
        await waitUntil('a first answer through the VIP', async () => (await net.fetchVip(1))[0]?.startsWith('rs') === true, 30_000, 500);
        const bodies = await net.fetchVip(12);
        expect(bodies.every((b) => /^rs[1-3]$/.test(b)), bodies.join(' ')).toBe(true);
        // mh with mh-port hashes source ports too: new connections spread over the realservers.
        expect(new Set(bodies).size, bodies.join(' ')).toBeGreaterThanOrEqual(Math.min(2, REALSERVERS.length));
      },
      60_000,
    );

    it(
      'restarts vipd when it is killed, and BIRD never loses the route',
      async () => {
        expect(await net.hasVipRoute()).toBe(true);
        const since = async (): Promise<string> => (await net.bird.cli('show protocols director')).split('\n').find((l) => l.startsWith('director')) ?? '';
        const before = await since();
        let polls = 0;
        let missing = 0;
        let polling = true;
        const poller = (async () => {
          while (polling) {
            polls++;
            if (!(await net.hasVipRoute())) missing++;
            await new Promise((r) => setTimeout(r, 100));
          }
        })();
        try {
          const pid = (await ap.sh('cat /run/vipd-image/vipd.pid')).out.trim();
          const gobgpd = (await ap.sh('pidof gobgpd')).out.trim();
          const at = ap.mark();
          await ap.sh(`kill -9 ${pid}`);
          await ap.waitFor(new RegExp(`vipd \\(pid ${pid}\\) killed by signal 9; restarting in 1 s`), 15_000, at);
          await ap.waitFor(/vipd-image: vipd started \(pid \d+\)/, 30_000, at);
          // The new vipd kills the old vipd's gobgpd (left running by the SIGKILL) and starts its
          // own, late when node starts slowly under emulation. Waited for first: on a loaded CI
          // host BIRD once showed a new session while the old gobgpd was still the only one.
          await waitUntil(
            `one gobgpd, not the old one (pid ${gobgpd})`,
            async () => {
              const now = (await ap.sh('pidof gobgpd')).out.trim();
              return /^\d+$/.test(now) && now !== gobgpd;
            },
            SESSION_MS,
            500,
          ).catch(async (e: unknown) => {
            const ps = (await ap.sh('ps -o pid,ppid,stat,args | cat')).out;
            const log = (await ap.sh('logread | grep -i gobgpd | tail -n 20')).out;
            throw new Error(`${(e as Error).message}\n${ps}\n${log}`);
          });
          // Its session is a new one (graceful restart kept the route meanwhile).
          await waitUntil('a new Established session', async () => (await net.established()) && (await since()) !== before, SESSION_MS);
          await waitUntil(`${VIP}/32 in BIRD`, net.hasVipRoute, 30_000);
          await new Promise((r) => setTimeout(r, 3_000));
        } finally {
          polling = false;
          await poller;
        }
        expect(polls).toBeGreaterThan(20);
        expect(missing, `${missing} of ${polls} polls without ${VIP}/32`).toBe(0);
        const bodies = await net.fetchVip(6);
        expect(bodies.every((b) => /^rs[1-3]$/.test(b)), bodies.join(' ')).toBe(true);
      },
      2 * SESSION_MS + 60_000,
    );
  });
});
