/**
 * One vipd ARP side in a process of its own, for the namespace tests and the benchmark: the
 * same wiring the coordinator does (VipAddresses + ArpManager), configured by one JSON argument.
 * Prints `EVT {json}` lines on stdout; SIGUSR1 marks every VIP unhealthy, SIGUSR2 healthy again;
 * SIGTERM stops in order.
 */
import { VipAddresses } from '../../../src/addr/addresses.js';
import { desiredVipAddresses } from '../../../src/addr/plan.js';
import { ArpManager } from '../../../src/arp/manager.js';
import { vipSchema, type VipConfig } from '../../../src/config/schema.js';
import { configureLogging, logger } from '../../../src/log/logger.js';

export interface DriverConfig {
  vips: { address: string; mode?: 'arp' | 'bgp'; interface?: string; priority?: number; preempt?: boolean }[];
  vipRanges: string[];
  peers: string[];
  intervalMs: number;
  concurrency: number;
  advertMs?: number;
  holdMs?: number;
  arping?: 'auto' | 'iputils' | 'busybox';
  arpingCommand?: string[];
  /** Leave out per-VIP arping results (the 1,000-VIP benchmark). */
  quiet?: boolean;
  logLevel?: 'error' | 'warn' | 'info' | 'debug';
}

const emit = (event: string, data: object = {}): void => {
  process.stdout.write(`EVT ${JSON.stringify({ event, t: Date.now(), ...data })}\n`);
};

async function main(): Promise<void> {
  const cfg = JSON.parse(process.argv[2] ?? '{}') as DriverConfig;
  configureLogging(cfg.logLevel ?? 'warn', 'json');
  const log = logger('arp-driver');
  const vips: VipConfig[] = cfg.vips.map((v) => vipSchema.parse(v));
  const addresses = new VipAddresses({ vipRanges: cfg.vipRanges, sources: ['bgp', 'arp'] }, log.child('addr'));
  const { bgpDevice } = await addresses.prepare();
  const bgp = await addresses.reconcile('bgp', desiredVipAddresses(vips.map((vip) => ({ vip, owned: false })), bgpDevice));
  const arp = new ArpManager(
    {
      addresses,
      intervalMs: cfg.intervalMs,
      concurrency: cfg.concurrency,
      arping: cfg.arping ?? 'auto',
      arpingCommand: cfg.arpingCommand,
      peers: cfg.peers,
      advertMs: cfg.advertMs,
      holdMs: cfg.holdMs,
    },
    log.child('arp'),
  );
  arp.on('owner', (e) => emit('owner', e));
  arp.on('link', (e) => emit('link', e));
  arp.on('round', (r) => emit('round', r));
  arp.on('sysctl', (r) => emit('sysctl', { settings: r.map((s) => ({ path: s.path, value: s.value, changed: s.changed, error: s.error })) }));
  if (!cfg.quiet) arp.on('arp', (r) => emit('arp', r));
  let up = true;
  const apply = (): void => arp.setVips(vips.map((vip) => ({ vip, up })));
  apply();
  await arp.start();
  process.on('SIGUSR1', () => {
    up = false;
    apply();
  });
  process.on('SIGUSR2', () => {
    up = true;
    apply();
  });
  process.once('SIGTERM', () => {
    void arp.stop().then(() => {
      emit('stopped', { counters: arp.counters() });
      process.exit(0);
    });
  });
  emit('ready', { bgpDevice, bgpAdded: bgp.added.length, pid: process.pid });
}

main().catch((e: unknown) => {
  emit('fatal', { error: e instanceof Error ? e.message : String(e) });
  process.exit(1);
});
