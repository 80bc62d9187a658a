/**
 * Wrapper around arping: iputils (Debian) and busybox (Alpine) are told apart by their
 * `-V` output, get the same arguments, and their exit statuses and text become one outcome.
 *
 * iputils sends its probe at once but then lingers one interval (1 s, whole seconds only)
 * before exiting; busybox exits right after sending. iputils blocks SIGINT just before it sends
 * the first probe and prints its summary when SIGINT arrives, so vipd interrupts it after a short
 * settle time and reads "Sent N probes" to know that the probe left. A SIGINT that arrives before
 * the block kills it silently: that is reported as `interrupted` and retried with a longer settle.
 */
import { spawn } from 'node:child_process';

export type ArpingFlavour = 'iputils' | 'busybox';

export type ArpStatus =
  /** Gratuitous ARP left the host. */
  | 'sent'
  /** Duplicate address probe: nobody else answers for the address. */
  | 'unique'
  /** Duplicate address probe: another host answered for the address. */
  | 'duplicate'
  | 'link-down'
  | 'no-device'
  /** The VIP is not (or no longer) on the interface. */
  | 'no-address'
  /** Interrupted before the probe left (iputils only). */
  | 'interrupted'
  | 'timeout'
  | 'error';

export interface ArpOutcome {
  status: ArpStatus;
  address: string;
  device: string;
  /** Probes sent, from the tool's summary. */
  sent: number;
  /** Who answered a duplicate address probe. */
  mac?: string;
  durationMs: number;
  detail?: string;
}

export type ArpKind = 'garp' | 'dad';

/** Flavour from the combined output of `arping -V`; undefined for any other arping. */
export function detectFlavour(output: string): ArpingFlavour | undefined {
  if (/iputils/i.test(output)) return 'iputils';
  if (/BusyBox/.test(output)) return 'busybox';
  return undefined;
}

/**
 * Arguments for one probe. Both flavours take the same flags: `-U` unsolicited ARP request with
 * sender and target the VIP (updates every neighbour's cache that has the VIP; creates entries
 * where arp_accept is on); `-D` duplicate address detection from 0.0.0.0, which changes no cache.
 */
export function arpingArgs(kind: ArpKind, device: string, address: string, waitS = 1): string[] {
  return kind === 'garp'
    ? ['-U', '-c', '1', '-I', device, '-s', address, address]
    : ['-D', '-c', '1', '-w', String(waitS), '-I', device, address];
}

/** Turns exit status and output into an outcome (pure). `interrupted`: we sent SIGINT ourselves. */
export function classify(
  kind: ArpKind,
  r: { code: number | null; signal: NodeJS.Signals | null; output: string; timedOut: boolean },
): { status: ArpStatus; sent: number; mac?: string; detail?: string } {
  const sent = Number(/Sent (\d+) probe/.exec(r.output)?.[1] ?? 0);
  const detail = r.output.trim().split('\n').slice(-2).join('; ') || undefined;
  if (r.timedOut) return { status: 'timeout', sent, detail };
  if (r.signal) return { status: 'interrupted', sent, detail: `killed by ${r.signal}` };
  if (kind === 'dad' && r.code === 1 && /reply from/i.test(r.output)) {
    const mac = /reply from \S+ \[([0-9a-f:]+)\]/i.exec(r.output)?.[1]?.toLowerCase();
    return { status: 'duplicate', sent, mac, detail };
  }
  if (r.code === 0) {
    if (kind === 'dad') return { status: 'unique', sent };
    return sent > 0 ? { status: 'sent', sent } : { status: 'error', sent, detail: detail ?? 'no probe sent' };
  }
  if (/is down/i.test(r.output)) return { status: 'link-down', sent, detail };
  if (/Cannot assign requested address|Address not available/i.test(r.output)) return { status: 'no-address', sent, detail };
  if (/Device \S+ not available|not found|No such device/i.test(r.output)) return { status: 'no-device', sent, detail };
  return { status: 'error', sent, detail: detail ?? `exit ${r.code}` };
}

export interface ArpingOptions {
  /** Command and leading arguments, e.g. ['arping'] or ['busybox', 'arping']. */
  command: readonly string[];
  flavour: ArpingFlavour;
  /** Hard limit per process. */
  timeoutMs?: number;
  /** iputils: first SIGINT delay; doubled on each `interrupted` retry. */
  settleMs?: number;
  /** Wait for answers to a duplicate address probe, seconds (both tools take whole seconds). */
  dadWaitS?: number;
}

/** Runs `arping -V` and returns the flavour; throws for a missing or unknown arping. */
export async function detectArping(command: readonly string[], timeoutMs = 3000): Promise<ArpingFlavour> {
  const [file, ...pre] = command;
  if (!file) throw new Error('arping: empty command');
  const r = await runOnce(file, [...pre, '-V'], { timeoutMs });
  const flavour = detectFlavour(r.output);
  if (!flavour) {
    throw new Error(`${command.join(' ')}: neither iputils nor busybox arping (${r.output.trim().split('\n')[0] ?? 'no output'})`);
  }
  return flavour;
}

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
  timedOut: boolean;
  durationMs: number;
}

/** One child with a hard timeout, optionally interrupted with SIGINT after `interruptMs`. */
function runOnce(file: string, args: readonly string[], o: { timeoutMs: number; interruptMs?: number }): Promise<RunResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let timedOut = false;
    const add = (b: Buffer): void => {
      if (output.length < 16_384) output += b.toString('utf8');
    };
    child.stdout.on('data', add);
    child.stderr.on('data', add);
    const hard = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, o.timeoutMs);
    const soft = o.interruptMs === undefined ? undefined : setTimeout(() => child.kill('SIGINT'), o.interruptMs);
    const done = (code: number | null, signal: NodeJS.Signals | null): void => {
      clearTimeout(hard);
      clearTimeout(soft);
      resolve({ code, signal, output, timedOut, durationMs: performance.now() - started });
    };
    child.once('error', (e) => {
      output += e.message;
      done(127, null);
    });
    child.once('close', done);
  });
}

export class Arping {
  private readonly timeoutMs: number;
  private readonly settleMs: number;
  private readonly dadWaitS: number;

  constructor(private readonly opts: ArpingOptions) {
    this.timeoutMs = opts.timeoutMs ?? 3000;
    this.settleMs = opts.settleMs ?? 20;
    this.dadWaitS = opts.dadWaitS ?? 1;
  }

  /** One gratuitous ARP for `address` out of `device`. */
  async garp(device: string, address: string): Promise<ArpOutcome> {
    const started = performance.now();
    let settle = this.settleMs;
    for (let attempt = 0; ; attempt++) {
      const interrupt = this.opts.flavour === 'iputils' ? settle : undefined;
      const r = await this.exec(arpingArgs('garp', device, address), interrupt);
      const c = classify('garp', r);
      // An iputils probe interrupted before it left: give the next try more time to start.
      if (c.status === 'interrupted' && attempt < 3) {
        settle *= 4;
        continue;
      }
      return { ...c, address, device, durationMs: performance.now() - started };
    }
  }

  /** Asks whether any other host answers for `address` on `device`. */
  async probeDuplicate(device: string, address: string): Promise<ArpOutcome> {
    const r = await this.exec(arpingArgs('dad', device, address, this.dadWaitS), undefined);
    return { ...classify('dad', r), address, device, durationMs: r.durationMs };
  }

  private exec(args: string[], interruptMs: number | undefined): Promise<RunResult> {
    const [file, ...pre] = this.opts.command;
    if (!file) throw new Error('arping: empty command');
    return runOnce(file, [...pre, ...args], { timeoutMs: this.timeoutMs, interruptMs });
  }
}
