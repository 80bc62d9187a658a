/**
 * A stand-in for the vipd process in restart tests: runs a BgpSpeaker with the config in
 * the JSON file named by argv[2], announces its VIPs, prints READY, and on SIGTERM does a
 * deliberate stop (withdraw, wait, stop gobgpd). Tests SIGKILL it to play a vipd crash.
 * With `pendingMs`, the VIPs first go in as pending for that long, as the coordinator sends
 * them while their address and IPVS are being applied.
 */
import { readFileSync } from 'node:fs';
import { BgpSpeaker } from '../../../src/bgp/speaker.js';
import { bgpSchema, vipSchema } from '../../../src/config/schema.js';
import { configureLogging, logger } from '../../../src/log/logger.js';

export interface DriverInput {
  bgp: Record<string, unknown>;
  vips: Record<string, unknown>[];
  runDir: string;
  wrap: string[];
  pendingMs?: number;
}

const input = JSON.parse(readFileSync(process.argv[2] as string, 'utf8')) as DriverInput;
configureLogging('info', 'json', process.stderr);
const log = logger('vipd');
const speaker = new BgpSpeaker(bgpSchema.parse(input.bgp), log, { runDir: input.runDir, wrap: input.wrap });
process.once('SIGTERM', () => {
  speaker.stop({ withdraw: true }).then(
    () => process.exit(0),
    (e: unknown) => {
      log.error('stop failed', { error: String(e) });
      process.exit(1);
    },
  );
});
await speaker.start();
const vips = input.vips.map((v) => vipSchema.parse(v));
if (input.pendingMs) {
  await speaker.setRoutes(vips.map((vip) => ({ vip, state: 'up' as const, pending: true })));
  await new Promise((r) => setTimeout(r, input.pendingMs));
}
await speaker.setRoutes(vips.map((vip) => ({ vip, state: 'up' as const })));
process.stdout.write(`READY ${speaker.gobgpdPid}\n`);
