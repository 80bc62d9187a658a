/** Picks the checker for a check definition. */
import type { CheckConfig } from '../../config/schema.js';
import type { Checker } from '../types.js';
import { fail } from './common.js';
import { DnsChecker } from './dns.js';
import { HttpChecker } from './http.js';
import { ScriptChecker } from './script.js';
import { TcpChecker } from './tcp.js';
import { UdpChecker } from './udp.js';

export { AgentChecker } from './agent.js';

/** TCP checks carry no settings, so every TCP target shares one checker. */
const tcp = new TcpChecker();

/**
 * A definition the checker cannot use (a payload that is not hex, a DNS name with a 64-byte
 * label) yields a checker that always fails with the reason, so one bad target never stops
 * the others from being checked.
 */
export function createChecker(check: CheckConfig): Checker {
  try {
    switch (check.type) {
      case 'tcp':
        return tcp;
      case 'http':
      case 'https':
        return new HttpChecker(check);
      case 'udp':
        return new UdpChecker(check);
      case 'dns':
        return new DnsChecker(check);
      case 'script':
        return new ScriptChecker(check);
    }
  } catch (e) {
    const outcome = fail(`invalid check: ${(e as Error).message}`);
    return { run: () => Promise.resolve(outcome) };
  }
}
