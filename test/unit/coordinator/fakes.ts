/** Seams the coordinator's unit tests share: a health monitor that emits what the test says, no presence ports, a seeded PRNG. */
import { EventEmitter } from 'node:events';
import type { PresencePorts } from '../../../src/coordinator/presence.js';
import type { HealthEvents } from '../../../src/health/index.js';
import { prng } from '../../lab/prng.mjs';

/** The health monitor's seam: targets in, transitions out. */
export class FakeHealth extends EventEmitter<HealthEvents> {
  update(): { added: string[]; changed: string[]; removed: string[]; kept: number } {
    return { added: [], changed: [], removed: [], kept: 0 };
  }
  status(): undefined {
    return undefined;
  }
  stop(): void {}
  flip(id: string, up: boolean): void {
    this.emit('transition', { id, up, first: false, reason: up ? 'ok' : 'connect ECONNREFUSED', pending: false, at: Date.now() });
  }
}

export const noPresence = { open: async () => undefined, close: async () => undefined } as unknown as PresencePorts;

/** Integers below n from a seeded sequence, so a failure can be replayed from its seed. */
export function rng(seed: number): (n: number) => number {
  const next = prng(seed);
  return (n) => Math.floor(next() * n);
}
