/**
 * The appliance image booted the way a machine boots it: qemu (TCG) with the ISO as a CD, on
 * BIOS (SeaBIOS) or UEFI (OVMF), a config volume as a second disk and its NIC on a tap in a lab
 * namespace. There is no agent in the image: the test sees what an operator sees, the serial
 * console (every line timestamped from power-on), and can log in there as root when the config
 * volume carries a password hash.
 *
 *   const ap = await Appliance.boot(lab, { iso, configVolume, netns, nics: [{ bridge: 'br0', mac }] });
 *   await ap.waitFor(/vipd started \(pid (\d+)\)/, 120_000);
 *   await ap.login('root', password);
 *   const { out } = await ap.sh('ps -o pid,ppid,args');
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exec, run } from '../../src/util/exec.js';
import type { Lab } from './netns.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const BUILD_SCRIPT = resolve(HERE, '../../image/build.sh');
const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';
const CONSOLE_MAX = 1024 * 1024;

let built: Promise<string> | undefined;

/** Builds the image (or finds it up to date) once per process; resolves with the output directory. */
export function ensureImage(): Promise<string> {
  built ??= (async () => {
    const r = await exec('bash', [BUILD_SCRIPT], { timeoutMs: 1_200_000 });
    if (r.code !== 0) throw new Error(`${BUILD_SCRIPT} failed (exit ${r.code}):\n${r.stderr.slice(-4000)}`);
    const dir = r.stdout.trim().split('\n').pop() ?? '';
    if (!existsSync(join(dir, 'vipd.iso'))) throw new Error(`${BUILD_SCRIPT} printed ${JSON.stringify(dir)}, which holds no vipd.iso`);
    return dir;
  })();
  built.catch(() => (built = undefined));
  return built;
}

export interface ApplianceOptions {
  /** The hybrid ISO, booted as a CD. */
  iso: string;
  firmware?: 'bios' | 'uefi';
  /** A disk image holding the config volume (attached as a virtio disk). */
  configVolume?: string;
  /** Namespace the NICs' taps are created in. */
  netns: string;
  /** One virtio NIC per entry (eth0, eth1, ... in this order), its tap on that bridge. */
  nics: readonly { bridge: string; mac: string }[];
  memoryMb?: number;
  cpus?: number;
}

/** qemu processes of this process: killed on exit even when a test never reached its cleanup. */
const running = new Set<number>();
process.on('exit', () => {
  for (const pid of running) killPid(pid);
});
let seq = 0;

interface Line {
  atMs: number;
  text: string;
}

export class Appliance {
  private text = '';
  private partial = '';
  /** The start of a terminal escape sequence cut off at the end of the last chunk. */
  private escape = '';
  private readonly lines: Line[] = [];
  private readonly waiters = new Set<() => void>();
  private exitInfo: string | undefined;
  private readonly exited: Promise<void>;
  private cmdSeq = 0;

  private constructor(
    private readonly child: ChildProcess,
    readonly pid: number,
    private readonly startedAt: number,
    private readonly ns: string,
    private readonly taps: string[],
  ) {
    running.add(pid);
    const onData = (b: Buffer): void => this.onConsole(b.toString('utf8'));
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        running.delete(pid);
        this.exitInfo = signal ? `killed by ${signal}` : `exit ${code}`;
        for (const w of this.waiters) w();
        resolve();
      });
    });
  }

  /** Powers the machine on; resolves at once (the console tells how far it got). */
  static async boot(lab: Lab, opts: ApplianceOptions): Promise<Appliance> {
    const n = seq++;
    const dir = lab.path(`appliance${n}`);
    const taps = opts.nics.map((_, i) => `ap${n}tap${i}`);
    for (const [i, nic] of opts.nics.entries()) {
      const tap = taps[i] as string;
      await run('ip', ['-n', opts.netns, 'tuntap', 'add', 'dev', tap, 'mode', 'tap'], { timeoutMs: 10_000 });
      await run('ip', ['-n', opts.netns, 'link', 'set', tap, 'master', nic.bridge], { timeoutMs: 10_000 });
      await run('ip', ['-n', opts.netns, 'link', 'set', tap, 'up'], { timeoutMs: 10_000 });
    }

    // -nodefaults: no slirp NIC (private addresses), no default CD or VGA. romfile= leaves the
    // NIC without its PXE ROM, so neither firmware tries a network boot first.
    const args = ['-accel', 'tcg', '-m', String(opts.memoryMb ?? 1024), '-smp', String(opts.cpus ?? 2)];
    args.push('-nodefaults', '-no-user-config', '-display', 'none', '-serial', 'stdio', '-monitor', 'none', '-no-reboot');
    if (opts.firmware === 'uefi') {
      const vars = `${dir}-OVMF_VARS.fd`;
      copyFileSync(OVMF_VARS, vars);
      args.push('-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`);
      args.push('-drive', `if=pflash,format=raw,unit=1,file=${vars}`);
    } else {
      // Keeps SeaBIOS's screen-clearing escapes off the serial line. (qemu warns about the name.)
      args.push('-fw_cfg', 'name=etc/sercon-port,string=0');
    }
    args.push('-drive', `if=none,id=cd,media=cdrom,readonly=on,file=${opts.iso}`, '-device', 'ide-cd,drive=cd,bootindex=0');
    if (opts.configVolume) {
      args.push('-drive', `if=none,id=cfg,format=raw,file=${opts.configVolume}`, '-device', 'virtio-blk-pci,drive=cfg');
    }
    for (const [i, nic] of opts.nics.entries()) {
      args.push('-netdev', `tap,id=n${i},ifname=${taps[i]},script=no,downscript=no`);
      args.push('-device', `virtio-net-pci,netdev=n${i},mac=${nic.mac},romfile=`);
    }

    // ip netns exec and setpriv both exec, so the PID is qemu's; --pdeathsig: the kernel kills
    // qemu if this process dies without cleaning up (a test worker SIGKILLed on timeout).
    const child = spawn('ip', ['netns', 'exec', opts.netns, 'setpriv', '--pdeathsig', 'SIGKILL', 'qemu-system-x86_64', ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    child.once('error', () => {
      /* no pid: reported below */
    });
    if (child.pid === undefined) throw new Error('appliance: could not start qemu-system-x86_64');
    return new Appliance(child, child.pid, performance.now(), opts.netns, taps);
  }

  /** The console so far (the last MiB), carriage returns removed. */
  console(): string {
    return this.text;
  }

  /** Milliseconds from power-on to the first console line matching `re`, if any did. */
  timeOf(re: RegExp): number | undefined {
    return this.lines.find((l) => re.test(l.text))?.atMs;
  }

  /** Milliseconds since power-on (qemu's start). */
  uptimeMs(): number {
    return performance.now() - this.startedAt;
  }

  /** Console position, for waitFor(..., { from }) to look only at what comes after it. */
  mark(): number {
    return this.text.length;
  }

  /** Resolves with the first match of `re` in the console (after `from`); rejects on timeout or exit. */
  waitFor(re: RegExp, timeoutMs: number, from = 0): Promise<RegExpExecArray> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const m = re.exec(this.text.slice(from));
        if (m) {
          done();
          resolve(m);
        } else if (this.exitInfo !== undefined) {
          done();
          reject(new Error(`appliance: qemu ${this.exitInfo} before ${re} appeared\n${this.tail()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`appliance: no ${re} on the console within ${timeoutMs} ms\n${this.tail()}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Types on the serial console. */
  type(s: string): void {
    this.child.stdin?.write(s);
  }

  /** Logs in on the serial console's getty and waits for the shell prompt. */
  async login(user: string, password: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const left = (): number => Math.max(1, deadline - Date.now());
    // getty may have printed its prompt long ago (or under later console output): ask again.
    // Prompts are matched anywhere after what was typed: init's messages may follow them.
    let at = this.mark();
    this.type('\n');
    await this.waitFor(/login: /, left(), at);
    at = this.mark();
    this.type(`${user}\n`);
    await this.waitFor(/Password: /, left(), at);
    // login turns the terminal's echo off around the prompt: type only once it surely has.
    await new Promise((r) => setTimeout(r, 500));
    at = this.mark();
    this.type(`${password}\n`);
    await this.waitFor(/:~# /, left(), at);
  }

  /**
   * Runs a shell command in the logged-in console shell. The markers are split by quotes in
   * what is typed, so the terminal's echo of the command line never matches them.
   */
  async sh(cmd: string, timeoutMs = 30_000): Promise<{ out: string; code: number }> {
    const n = ++this.cmdSeq;
    const at = this.mark();
    this.type(`echo "@@S""${n}@@"; ${cmd}; echo "@@E""${n}@@ $?"\n`);
    const m = await this.waitFor(new RegExp(`@@S${n}@@\\n([\\s\\S]*?)@@E${n}@@ (\\d+)`), timeoutMs, at);
    return { out: m[1] ?? '', code: Number(m[2]) };
  }

  /** SIGKILLs qemu (the machine's power cord) and removes its taps. */
  async kill(): Promise<void> {
    if (this.exitInfo === undefined) killPid(this.pid);
    await this.exited;
    for (const tap of this.taps) {
      // The namespace may be gone already (lab cleaned up first): nothing left to remove then.
      await exec('ip', ['-n', this.ns, 'link', 'del', tap], { timeoutMs: 10_000 }).catch(() => undefined);
    }
  }

  tail(chars = 4000): string {
    return `--- appliance console (tail) ---\n${this.text.slice(-chars)}`;
  }

  private onConsole(s: string): void {
    const now = performance.now() - this.startedAt;
    // Without carriage returns and terminal escapes (ash asks the terminal for the cursor
    // position), also when an escape sequence spans two chunks.
    let raw = this.escape + s;
    const cut = /\x1b(\[[0-9;?]*)?$/.exec(raw);
    this.escape = cut ? cut[0] : '';
    if (cut) raw = raw.slice(0, cut.index);
    const clean = raw.replace(/\r|\x1b\[[0-9;?]*[A-Za-z]/g, '');
    this.text += clean;
    if (this.text.length > 2 * CONSOLE_MAX) this.text = this.text.slice(-CONSOLE_MAX);
    if (process.env.VIPD_VM_CONSOLE) process.stderr.write(s);
    this.partial += clean;
    let nl: number;
    while ((nl = this.partial.indexOf('\n')) >= 0) {
      this.lines.push({ atMs: now, text: this.partial.slice(0, nl) });
      this.partial = this.partial.slice(nl + 1);
    }
    for (const w of this.waiters) w();
  }
}

function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
}

