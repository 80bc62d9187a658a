/**
 * Carrier of the L2 interfaces that carry ARP-mode VIPs, read from /sys/class/net/IF/carrier
 * every `pollMs`. Polling a sysfs file costs one read per interface and tick, needs no long-lived
 * child (as `ip monitor link` would) and shows the network namespace vipd runs in; a carrier loss
 * is seen within one poll interval.
 */
import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export type LinkReason = 'carrier' | 'no-carrier' | 'admin-down' | 'absent';

export interface LinkState {
  device: string;
  up: boolean;
  reason: LinkReason;
}

/**
 * State from a read of `carrier` (pure): its text, or the error code of the read. The kernel
 * refuses (EINVAL) to read the carrier of an interface that is administratively down.
 */
export function linkStateOf(device: string, carrier: { text: string } | { error: string }): LinkState {
  if ('text' in carrier) {
    const up = carrier.text.trim() === '1';
    return { device, up, reason: up ? 'carrier' : 'no-carrier' };
  }
  return { device, up: false, reason: carrier.error === 'EINVAL' ? 'admin-down' : 'absent' };
}

export interface LinkWatchOptions {
  pollMs: number;
  /** Directory of interfaces; tests point it elsewhere. */
  sysfs?: string;
}

type Events = { change: [LinkState] };

export class LinkWatch extends EventEmitter<Events> {
  private readonly states = new Map<string, LinkState>();
  private devices: string[] = [];
  private timer?: NodeJS.Timeout;
  private polling?: Promise<void>;

  constructor(private readonly opts: LinkWatchOptions) {
    super();
  }

  /** Sets the interfaces to watch and reads them at once (emits `change` for each new one). */
  async watch(devices: Iterable<string>): Promise<void> {
    const next = [...new Set(devices)];
    for (const d of this.states.keys()) if (!next.includes(d)) this.states.delete(d);
    this.devices = next;
    await this.poll();
  }

  state(device: string): LinkState | undefined {
    return this.states.get(device);
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      // A slow read (a loaded sysfs) must not stack polls.
      this.polling ??= this.poll().finally(() => (this.polling = undefined));
    }, this.opts.pollMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.polling;
  }

  private async poll(): Promise<void> {
    const root = this.opts.sysfs ?? '/sys/class/net';
    await Promise.all(
      this.devices.map(async (device) => {
        // Schema names cannot hold '/', but a path built from config must never leave the root.
        if (device.includes('/') || device === '.' || device === '..') return;
        let s: LinkState;
        try {
          s = linkStateOf(device, { text: await readFile(join(root, device, 'carrier'), 'utf8') });
        } catch (e) {
          s = linkStateOf(device, { error: (e as NodeJS.ErrnoException).code ?? 'EIO' });
        }
        const before = this.states.get(device);
        if (!this.devices.includes(device)) return;
        this.states.set(device, s);
        if (!before || before.up !== s.up || before.reason !== s.reason) this.emit('change', s);
      }),
    );
  }
}
