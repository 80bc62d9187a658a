/**
 * A qemu VM with the Debian kernel (real IPVS, ipip, dummy) for integration tests. The guest
 * is the initramfs from vm/build-initramfs.sh: Alpine + node + ipvsadm, the repo mounted over
 * 9p at the same absolute path, and an agent (vm/agent.mjs) that runs shell commands sent
 * over a virtio-serial port. Networking is only ever a tap inside a lab namespace: never
 * qemu's user-mode (slirp) network, which hands out private-range addresses.
 *
 *   const vm = await Vm.boot(lab, { netns, bridge: 'br0', ip: '192.0.2.20/24' });
 *   await vm.run('ipvsadm -Ln');
 *   await vm.shutdown();
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ExecError, exec, run, type ExecResult } from '../../src/util/exec.js';
import { assertDocumentationAddress, type Lab } from './netns.js';

const HERE = dirname(fileURLToPath(import.meta.url));
/** The repository checkout; the guest sees it at this same path. */
export const REPO_ROOT = resolve(HERE, '../..');
const BUILD_SCRIPT = join(HERE, 'vm', 'build-initramfs.sh');
const CONSOLE_MAX = 256 * 1024;

export interface VmOptions {
  memoryMb?: number;
  cpus?: number;
  /** Namespace the VM's NIC (a tap) lives in; without it the VM has no network at all. */
  netns?: string;
  /** Tap device name inside `netns` (created here); default vmtapN. */
  tap?: string;
  /** Bridge inside `netns` the tap is attached to. */
  bridge?: string;
  mac?: string;
  /** CIDR for the guest's eth0, e.g. 192.0.2.20/24. */
  ip?: string;
  ip6?: string;
  gateway?: string;
  gateway6?: string;
  /** More host folders, mounted in the guest at the same path. */
  extraShares?: { path: string; tag: string }[];
  /** Until the agent answers; TCG boots take ~8 s alone, longer on a busy machine. */
  bootTimeoutMs?: number;
}

export interface VmAssets {
  kernel: string;
  initramfs: string;
}

export interface VmExecOptions {
  timeoutMs?: number;
  input?: string;
}

/** A guest command that exited non-zero; the message carries its output. */
export class VmExecError extends ExecError {
  constructor(command: string, result: ExecResult) {
    super(`vm: ${command}`, result);
    this.name = 'VmExecError';
    const why = result.signal ? `killed by ${result.signal}` : `exit ${result.code}`;
    this.message = `vm: ${command}: ${why}\n--- stdout ---\n${tail(result.stdout, 4000)}\n--- stderr ---\n${tail(result.stderr, 4000)}`;
  }
}

let assets: Promise<VmAssets> | undefined;

/** Builds (or finds in the cache) the kernel and initramfs; once per process. */
export async function ensureVmAssets(): Promise<VmAssets> {
  assets ??= (async () => {
    const r = await exec('bash', [BUILD_SCRIPT], { timeoutMs: 600_000 });
    if (r.code !== 0) throw new Error(`${BUILD_SCRIPT} failed (exit ${r.code}):\n${tail(r.stderr, 4000)}`);
    const dir = r.stdout.trim().split('\n').pop() ?? '';
    const initramfs = ['initramfs.cpio.lz4', 'initramfs.cpio.gz'].map((f) => join(dir, f)).find((f) => existsSync(f));
    if (!initramfs) throw new Error(`${BUILD_SCRIPT} printed ${JSON.stringify(dir)}, which holds no initramfs`);
    return { kernel: realpathSync(join(dir, 'vmlinuz')), initramfs };
  })();
  // A failed build is not remembered, so the next caller retries.
  assets.catch(() => (assets = undefined));
  return assets;
}

// qemu PIDs and temporary directories of this process: killed and removed on exit even when
// nobody called shutdown() (netns.ts turns SIGINT/SIGTERM into an exit, so this runs then too).
const running = new Set<number>();
const tempDirs = new Set<string>();
process.on('exit', () => {
  for (const pid of running) killPid(pid);
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});
let seq = 0;

interface Pending {
  resolve: (r: ExecResult) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export class Vm {
  private consoleBuf = '';
  private agent: Socket | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private exitInfo: string | undefined;
  private readonly exited: Promise<void>;
  private onReady: (() => void) | undefined;
  private stopping: Promise<void> | undefined;
  /** Milliseconds from starting qemu until the guest agent answered. */
  bootMs = 0;

  private constructor(
    child: ChildProcess,
    readonly pid: number,
    private readonly dir: string,
    private readonly ownDir: boolean,
    private readonly tap: { ns: string; dev: string } | undefined,
  ) {
    running.add(pid);
    const onData = (b: Buffer): void => {
      this.consoleBuf += b.toString('utf8');
      if (this.consoleBuf.length > 2 * CONSOLE_MAX) this.consoleBuf = this.consoleBuf.slice(-CONSOLE_MAX);
      if (process.env.VIPD_VM_CONSOLE) process.stderr.write(b);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        running.delete(pid);
        this.exitInfo = signal ? `killed by ${signal}` : `exit ${code}`;
        this.agent?.destroy();
        for (const [id, p] of this.pending) {
          clearTimeout(p.timer);
          p.reject(new Error(`vm: qemu ${this.exitInfo} before answering request ${id}\n${this.consoleTail()}`));
        }
        this.pending.clear();
        resolve();
      });
    });
  }

  /** Starts qemu and resolves once the guest agent is up. With a lab, lab.cleanup() kills it. */
  static async boot(lab: Lab | undefined, opts: VmOptions = {}): Promise<Vm> {
    for (const a of [opts.ip, opts.ip6, opts.gateway, opts.gateway6]) if (a) assertDocumentationAddress(a);
    const net = [opts.bridge, opts.tap, opts.ip, opts.ip6, opts.gateway, opts.gateway6, opts.mac];
    if (net.some(Boolean) && !opts.netns) throw new Error('vm: network options need opts.netns');
    const n = seq++;
    const mac = opts.mac ?? `52:54:00:${hex(process.pid >> 8)}:${hex(process.pid)}:${hex(n)}`;
    if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(mac)) throw new Error(`vm: bad MAC ${mac}`);
    const shares = [{ path: REPO_ROOT, tag: 'host0' }, ...(opts.extraShares ?? [])];
    for (const s of shares) {
      // Both end up on the kernel command line, which splits on whitespace, and in qemu
      // options, which split on commas.
      if (/[\s,]/.test(s.path) || !/^[A-Za-z0-9_.-]+$/.test(s.tag)) throw new Error(`vm: unusable share ${s.tag}=${s.path}`);
    }

    const { kernel, initramfs } = await ensureVmAssets();
    const ownDir = !lab;
    const dir = lab ? lab.path(`vm${n}`) : mkdtempSync(join(tmpdir(), 'vipd-vm-'));
    mkdirSync(dir, { recursive: true });
    if (ownDir) tempDirs.add(dir);
    const sock = join(dir, 'agent.sock');

    const append = ['console=ttyS0', 'quiet', 'panic=-1', `vipd.repo=${REPO_ROOT}`];
    if (opts.ip) append.push(`vipd.ip=${opts.ip}`);
    if (opts.gateway) append.push(`vipd.gw=${opts.gateway}`);
    if (opts.ip6) append.push(`vipd.ip6=${opts.ip6}`);
    if (opts.gateway6) append.push(`vipd.gw6=${opts.gateway6}`);
    for (const s of shares.slice(1)) append.push(`vipd.share=${s.tag}:${s.path}`);

    // No -cpu: under TCG the default model boots and runs node faster than -cpu max.
    // -nodefaults: no default NIC (that would be slirp), VGA, floppy or CD.
    const args = ['-accel', 'tcg', '-m', String(opts.memoryMb ?? 1024), '-smp', String(opts.cpus ?? 2)];
    args.push('-nodefaults', '-no-user-config', '-nographic', '-no-reboot', '-serial', 'stdio', '-monitor', 'none');
    // Keeps SeaBIOS off the serial line (its screen-clearing escapes would land in the
    // console log and, with VIPD_VM_CONSOLE=1, on the terminal). qemu warns about the name.
    args.push('-fw_cfg', 'name=etc/sercon-port,string=0');
    args.push('-kernel', kernel, '-initrd', initramfs, '-append', append.join(' '));
    args.push('-device', 'virtio-serial-pci,id=vser0');
    args.push('-chardev', `socket,id=agent,path=${sock},server=on,wait=off`);
    args.push('-device', 'virtserialport,bus=vser0.0,chardev=agent,name=vipd.agent');
    shares.forEach((s, i) => {
      args.push('-fsdev', `local,id=fs${i},path=${s.path},security_model=none`);
      args.push('-device', `virtio-9p-pci,fsdev=fs${i},mount_tag=${s.tag}`);
    });

    let tap: { ns: string; dev: string } | undefined;
    if (opts.netns) {
      tap = { ns: opts.netns, dev: opts.tap ?? `vmtap${n}` };
      await run('ip', ['-n', tap.ns, 'tuntap', 'add', 'dev', tap.dev, 'mode', 'tap'], { timeoutMs: 10_000 });
      if (opts.bridge) await run('ip', ['-n', tap.ns, 'link', 'set', tap.dev, 'master', opts.bridge], { timeoutMs: 10_000 });
      await run('ip', ['-n', tap.ns, 'link', 'set', tap.dev, 'up'], { timeoutMs: 10_000 });
      args.push('-netdev', `tap,id=n0,ifname=${tap.dev},script=no,downscript=no`);
      args.push('-device', `virtio-net-pci,netdev=n0,mac=${mac}`);
    }

    // setpriv --pdeathsig: the kernel kills qemu if this process dies without running any
    // cleanup (e.g. a test worker SIGKILLed on timeout). It execs qemu, so the PID stays.
    const qemu = ['--pdeathsig', 'SIGKILL', 'qemu-system-x86_64', ...args];
    // With a lab, qemu runs through lab.spawn so lab.cleanup() kills it by PID; it needs a
    // namespace for that, so a VM without a network gets an empty one of its own.
    let child: ChildProcess;
    if (lab) {
      const ns = opts.netns ?? (await lab.ns(`vm${n}`));
      child = lab.spawn(ns, 'setpriv', qemu).child;
    } else if (opts.netns) {
      child = spawn('ip', ['netns', 'exec', opts.netns, 'setpriv', ...qemu], { stdio: ['ignore', 'pipe', 'pipe'] });
    } else {
      child = spawn('setpriv', qemu, { stdio: ['ignore', 'pipe', 'pipe'] });
    }
    child.once('error', () => {
      /* reported just below (no pid) */
    });
    if (child.pid === undefined) throw new Error('vm: could not start setpriv/qemu-system-x86_64');
    const vm = new Vm(child, child.pid, dir, ownDir, tap);
    const started = performance.now();
    const bootTimeoutMs = opts.bootTimeoutMs ?? 90_000;
    try {
      await vm.waitReady(sock, started + bootTimeoutMs);
    } catch (e) {
      await vm.kill();
      await vm.release();
      throw new Error(`vm: ${(e as Error).message}\n${vm.consoleTail()}`);
    }
    vm.bootMs = performance.now() - started;
    return vm;
  }

  /** Runs `/bin/sh -c cmd` in the guest; never throws on the command's exit status. */
  exec(cmd: string, opts: VmExecOptions = {}): Promise<ExecResult> {
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const agent = this.agent;
    if (this.exitInfo !== undefined || !agent) return Promise.reject(new Error(`vm: not running (${this.exitInfo ?? 'no agent'})`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      // The agent enforces timeoutMs itself; this only catches an agent that never answers.
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`vm: no answer from the guest agent to ${JSON.stringify(cmd)} within ${timeoutMs + 15_000} ms`));
      }, timeoutMs + 15_000);
      this.pending.set(id, { resolve, reject, timer });
      agent.write(`${JSON.stringify({ id, cmd, timeoutMs, input: opts.input })}\n`);
    });
  }

  /** Like exec, but throws a VmExecError (with stdout and stderr) unless the command exits 0. */
  async run(cmd: string, opts: VmExecOptions = {}): Promise<ExecResult> {
    const r = await this.exec(cmd, opts);
    if (r.code !== 0) throw new VmExecError(cmd, r);
    return r;
  }

  /** The serial console so far (the last 256-512 KiB). */
  console(): string {
    return this.consoleBuf;
  }

  /** Powers the guest off through the agent; SIGKILLs qemu if that takes longer than graceMs. */
  shutdown(graceMs = 20_000): Promise<void> {
    this.stopping ??= (async () => {
      if (this.exitInfo === undefined && this.agent) {
        this.agent.write(`${JSON.stringify({ id: this.nextId++, shutdown: true })}\n`);
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([this.exited, new Promise((r) => (timer = setTimeout(r, graceMs)))]);
        clearTimeout(timer);
      }
      await this.kill();
      await this.release();
    })();
    return this.stopping;
  }

  private async waitReady(sock: string, deadline: number): Promise<void> {
    const remaining = (): number => deadline - performance.now();
    const exitedEarly = this.exited.then(() => {
      throw new Error(`qemu ${this.exitInfo} during boot`);
    });
    exitedEarly.catch(() => undefined);
    // qemu creates the socket before the guest starts; keep trying until it is there.
    for (;;) {
      if (this.exitInfo !== undefined) await exitedEarly;
      if (remaining() <= 0) throw new Error('qemu never opened the agent socket');
      try {
        this.agent = await new Promise<Socket>((resolve, reject) => {
          const s = connect(sock);
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        });
        break;
      } catch {
        await sleep(50);
      }
    }
    this.listen(this.agent);
    const ready = new Promise<void>((resolve) => (this.onReady = resolve));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('guest agent not ready within the boot timeout')), Math.max(0, remaining()));
    });
    try {
      await Promise.race([ready, exitedEarly, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private listen(agent: Socket): void {
    let buf = '';
    agent.setEncoding('utf8');
    agent.on('error', () => {
      /* qemu went away; the exit handler rejects what is pending */
    });
    agent.on('data', (s: string) => {
      buf += s;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        this.onMessage(line);
      }
    });
  }

  private onMessage(line: string): void {
    let msg: { id?: unknown; event?: string; error?: string } & Partial<ExecResult>;
    try {
      msg = JSON.parse(line) as typeof msg;
    } catch {
      this.consoleBuf += `\n[vm.ts] unparsable line from agent: ${line.slice(0, 200)}\n`;
      return;
    }
    if (msg.event === 'ready') {
      this.onReady?.();
      return;
    }
    const p = typeof msg.id === 'number' ? this.pending.get(msg.id) : undefined;
    if (!p) {
      if (msg.error) this.consoleBuf += `\n[vm.ts] agent: ${msg.error}\n`;
      return;
    }
    this.pending.delete(msg.id as number);
    clearTimeout(p.timer);
    if (msg.error !== undefined) {
      p.reject(new Error(`vm agent: ${msg.error}`));
      return;
    }
    p.resolve({
      code: msg.code ?? -1,
      signal: msg.signal ?? null,
      stdout: msg.stdout ?? '',
      stderr: msg.stderr ?? '',
      durationMs: msg.durationMs ?? 0,
    });
  }

  /** SIGKILL by PID and wait for the exit (reaped by node's child handling). */
  private async kill(): Promise<void> {
    if (this.exitInfo === undefined) killPid(this.pid);
    await this.exited;
  }

  private async release(): Promise<void> {
    this.agent?.destroy();
    if (this.tap) {
      // The namespace may already be gone (lab cleaned up first): nothing left to remove then.
      await exec('ip', ['-n', this.tap.ns, 'link', 'del', this.tap.dev], { timeoutMs: 10_000 }).catch(() => undefined);
    }
    if (this.ownDir) {
      rmSync(this.dir, { recursive: true, force: true });
      tempDirs.delete(this.dir);
    }
  }

  private consoleTail(): string {
    return `--- console (tail) ---\n${tail(this.consoleBuf, 3000)}`;
  }
}

function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
}

function hex(n: number): string {
  return (n & 0xff).toString(16).padStart(2, '0');
}

function tail(s: string, max: number): string {
  return s.length > max ? `...${s.slice(-max)}` : s;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
