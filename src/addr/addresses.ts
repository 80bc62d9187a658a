/**
 * VIP addresses on local interfaces: brings the kernel to the union of what each source wants
 * (the BGP side: VIPs on lo/vipd0; the ARP side: owned VIPs on their L2 interface). Changes are
 * serialized, so a source's change is planned against what the other sources last asked for.
 */
import type { Logger } from '../log/logger.js';
import { IpCommand } from './ip.js';
import { batchLines, desiredSysctls, planAddresses, type HostAddress } from './plan.js';
import { applySysctls, type SysctlResult } from './sysctl.js';

export interface AddressChanges {
  added: HostAddress[];
  removed: HostAddress[];
  failed: { op: 'add' | 'del'; address: string; device: string; error: string }[];
  /** Outside every VIP range: never touched. */
  refused: HostAddress[];
}

export interface VipAddressesOptions {
  vipRanges: readonly string[];
  /**
   * Every source that will call reconcile. Nothing is removed until each has stated what it
   * wants once, so a restart does not strip addresses that a slower source still wants.
   */
  sources: readonly string[];
  ip?: IpCommand;
  /** Dummy interface for BGP-mode VIPs; lo when the kernel cannot create one. */
  dummy?: string;
  /** Root of the kernel settings (tests point it elsewhere). */
  procSys?: string;
}

/** Errors that mean the kernel already is as asked. */
const ALREADY = /File exists|already assigned|Address not found/i;

export class VipAddresses {
  private readonly ip: IpCommand;
  private readonly wanted = new Map<string, HostAddress[]>();
  private queue: Promise<unknown> = Promise.resolve();
  private vipRanges: readonly string[];

  constructor(
    private readonly opts: VipAddressesOptions,
    private readonly log: Logger,
  ) {
    this.ip = opts.ip ?? new IpCommand();
    this.vipRanges = opts.vipRanges;
  }

  /** A reload changed vipRanges: the next reconcile adds, keeps and removes within the new ones. */
  setVipRanges(ranges: readonly string[]): void {
    this.vipRanges = ranges;
  }

  /** Picks the interface for BGP-mode VIPs: the dummy if the kernel can create one, else lo. */
  async prepare(): Promise<{ bgpDevice: string }> {
    const dummy = this.opts.dummy ?? 'vipd0';
    const ok = await this.ip.ensureDummy(dummy);
    if (!ok) this.log.info('no dummy interface support in this kernel: BGP-mode VIPs go on lo', { dummy });
    return { bgpDevice: ok ? dummy : 'lo' };
  }

  /** Applies the ARP-related kernel settings for these L2 interfaces; logs and returns each. */
  async tune(devices: readonly { device: string; ipv6: boolean }[]): Promise<SysctlResult[]> {
    const results = await applySysctls(desiredSysctls(devices), this.opts.procSys);
    for (const r of results) {
      if (r.error) this.log.warn('kernel setting not applied', { setting: r.path, want: r.value, error: r.error });
      else if (r.changed) this.log.info('kernel setting applied', { setting: r.path, from: r.before, to: r.value, why: r.why });
    }
    return results;
  }

  /** Sets what `source` wants and brings the kernel there; resolves with what changed. */
  reconcile(source: string, desired: readonly HostAddress[]): Promise<AddressChanges> {
    const next = this.queue.then(() => this.apply(source, desired));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async apply(source: string, desired: readonly HostAddress[]): Promise<AddressChanges> {
    this.wanted.set(source, [...desired]);
    const current = await this.ip.addresses();
    const plan = planAddresses([...this.wanted.values()].flat(), current, this.vipRanges);
    if (!this.opts.sources.every((s) => this.wanted.has(s))) plan.remove = [];
    for (const r of plan.refused) this.log.warn('VIP outside vipRanges: not added', { address: r.address, device: r.device });
    const lines = batchLines(plan);
    const { errors } = await this.ip.batch(lines.map((l) => l.line));
    const changes: AddressChanges = { added: [], removed: [], failed: [], refused: plan.refused };
    lines.forEach((l, i) => {
      const err = errors.get(i + 1);
      if (err && !ALREADY.test(err)) {
        changes.failed.push({ op: l.op, address: l.target.address, device: l.target.device, error: err });
      } else {
        (l.op === 'add' ? changes.added : changes.removed).push(l.target);
      }
    });
    if (changes.added.length || changes.removed.length || changes.failed.length) {
      this.log.info('VIP addresses changed', {
        source,
        added: changes.added.map((a) => `${a.address}@${a.device}`),
        removed: changes.removed.map((a) => `${a.address}@${a.device}`),
        failed: changes.failed,
      });
    }
    return changes;
  }
}
