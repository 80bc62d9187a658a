/**
 * "No login service and no default credentials", checked on what the image ships: its initramfs
 * (the whole root filesystem), unpacked, not the build script's text. No network login daemon
 * (as a file or as a busybox applet), no account with a usable password, no inittab entry that
 * runs a getty, login or shell, and every console entry, run in a chroot of the image with its
 * port made a kernel console, idles instead of offering a login (it may only do so once the
 * config volume gives root a password hash). The same checks run on a deliberately broken copy,
 * so they are known to fail.
 */
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exec } from '../../../src/util/exec.js';
import { ensureImage } from '../../lab/appliance.js';

/** Programs that let someone in over the network. */
const DAEMONS = new Set(['sshd', 'dropbear', 'dropbearmulti', 'telnetd', 'in.telnetd', 'utelnetd', 'rlogind', 'in.rlogind', 'rshd', 'inetd', 'xinetd', 'tcpsvd']);
/** Programs that offer a login or a shell on a terminal. */
const LOGINS = new Set(['getty', 'agetty', 'mingetty', 'fgetty', 'mgetty', 'login', 'sulogin', 'sh', 'ash', 'bash', 'su']);
const TTY = /^(tty\w*|console|hvc\d+)$/;

interface InitEntry {
  line: string;
  id: string;
  action: string;
  argv: string[];
}

function inittab(root: string): InitEntry[] {
  return readFileSync(join(root, 'etc/inittab'), 'utf8')
    .split('\n')
    .filter((l) => l.trim() && !l.trimStart().startsWith('#'))
    .map((line) => {
      const [id = '', , action = '', ...rest] = line.split(':');
      return { line, id, action, argv: rest.join(':').trim().split(/\s+/) };
    });
}

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
}

/** What the image's files say, as `path: problem` lines. */
function fileProblems(root: string): string[] {
  const out: string[] = [];
  for (const f of walk(root)) if (DAEMONS.has(basename(f))) out.push(`${relative(root, f)}: a network login daemon`);
  // Applet names sit NUL-separated in the busybox binary.
  const applets = new Set(readFileSync(join(root, 'bin/busybox')).toString('latin1').split('\0'));
  for (const d of DAEMONS) if (applets.has(d)) out.push(`bin/busybox: has the ${d} applet`);
  for (const line of readFileSync(join(root, 'etc/shadow'), 'utf8').split('\n').filter(Boolean)) {
    const [name, hash = ''] = line.split(':');
    // Locked: `*`, or anything starting with `!`. Empty means no password at all.
    if (!/^(\*|!.*)$/.test(hash)) out.push(`etc/shadow: ${name} has a usable password (${hash === '' ? 'empty' : 'a hash'})`);
  }
  for (const line of readFileSync(join(root, 'etc/passwd'), 'utf8').split('\n').filter(Boolean)) {
    const [name, pw = ''] = line.split(':');
    if (!/^(x|\*|!.*)$/.test(pw)) out.push(`etc/passwd: ${name} has a password field of its own (${pw === '' ? 'empty' : 'a hash'})`);
  }
  // Without an inittab busybox init starts shells on the consoles.
  if (!existsSync(join(root, 'etc/inittab'))) return [...out, 'etc/inittab: missing (busybox init would start shells)'];
  for (const e of inittab(root)) {
    const prog = basename((e.argv[0] ?? '').replace(/^-/, ''));
    if (LOGINS.has(prog) || (e.action === 'askfirst' && prog !== '')) out.push(`etc/inittab: "${e.line}" offers a login or shell`);
  }
  return out;
}

/**
 * Runs an inittab entry for a terminal in a chroot of the image, its port the kernel console,
 * and reports what it settled into: it must idle (a process init need not respawn), not become
 * a getty, login or shell, and not exit. The process is killed by PID afterwards.
 */
async function consoleOutcome(root: string, e: InitEntry): Promise<string> {
  const tty = e.argv.slice(1).find((a) => TTY.test(a)) ?? e.id;
  mkdirSync(join(root, 'sys/class/tty/console'), { recursive: true });
  writeFileSync(join(root, 'sys/class/tty/console/active'), `${tty}\n`);
  const child = spawn('chroot', [root, ...e.argv], { stdio: 'ignore' });
  let exited: number | null | undefined;
  const gone = new Promise<void>((resolve) =>
    child.on('exit', (code) => {
      exited = code;
      resolve();
    }),
  );
  try {
    const deadline = Date.now() + 15_000;
    for (;;) {
      await new Promise((r) => setTimeout(r, 100));
      if (exited !== undefined) return `exited (code ${exited}), so init would start it again and again`;
      let argv0: string;
      try {
        argv0 = basename(readFileSync(`/proc/${child.pid}/cmdline`, 'latin1').split('\0')[0] ?? '');
      } catch {
        continue; // exiting: the exit event tells how
      }
      // Still chroot, or the shell running the script: not settled yet.
      if (argv0 !== 'chroot' && argv0 !== 'sh') return LOGINS.has(argv0) ? `became ${argv0}` : `idles as ${argv0}`;
      if (Date.now() > deadline) return 'did not settle within 15 s';
    }
  } finally {
    child.kill('SIGKILL');
    await gone;
  }
}

describe('appliance image: no login service, no default credentials', () => {
  let root: string;
  let consoles: InitEntry[];

  beforeAll(async () => {
    const initramfs = join(await ensureImage(), 'initramfs');
    root = mkdtempSync(join(tmpdir(), 'vipd-image-root-'));
    const r = await exec('sh', ['-c', 'zstd -dc "$1" | cpio -idm --quiet --no-absolute-filenames', 'unpack', initramfs], { timeoutMs: 120_000, cwd: root });
    if (r.code !== 0) throw new Error(`unpacking ${initramfs}: ${r.stderr}`);
    consoles = inittab(root).filter((e) => ['respawn', 'askfirst', 'once', 'wait'].includes(e.action) && (TTY.test(e.id) || e.argv.slice(1).some((a) => TTY.test(a))));
  }, 1_300_000);

  afterAll(() => {
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('ships no network login daemon, no usable password, and no getty, login or shell in inittab', () => {
    expect(fileProblems(root)).toEqual([]);
  });

  it('its console entries idle while root has no password', async () => {
    // The screen and the first serial port.
    expect(consoles.length).toBeGreaterThanOrEqual(2);
    for (const e of consoles) expect(`${e.line}: ${await consoleOutcome(root, e)}`).toBe(`${e.line}: idles as sleep`);
  });

  it('the same checks fail on a broken copy: a root password, a getty in inittab, dropbear, a telnetd applet', async () => {
    const shadow = readFileSync(join(root, 'etc/shadow'), 'utf8');
    writeFileSync(join(root, 'etc/shadow'), shadow.replace(/^root:[^:]*:/m, 'root:$6$salt$hash:'));
    appendFileSync(join(root, 'etc/inittab'), 'ttyS1::respawn:/sbin/getty -L 115200 ttyS1 vt100\n');
    writeFileSync(join(root, 'usr/sbin/dropbear'), '');
    appendFileSync(join(root, 'bin/busybox'), '\0telnetd\0');
    expect(fileProblems(root)).toEqual([
      'usr/sbin/dropbear: a network login daemon',
      'bin/busybox: has the telnetd applet',
      'etc/shadow: root has a usable password (a hash)',
      'etc/inittab: "ttyS1::respawn:/sbin/getty -L 115200 ttyS1 vt100" offers a login or shell',
    ]);
    // With a password the console entries offer a login (getty cannot open the port in a chroot and exits).
    for (const e of consoles) expect(await consoleOutcome(root, e)).toMatch(/^(became getty|exited)/);
  });
});
