/**
 * The coordinator's health verdicts by target (tracked, see tracked.ts). Equal verdicts share
 * one object: 200,000 targets hold a handful of distinct ones, mostly "up, ok".
 */
import type { TargetHealth } from './desired.js';
import { TrackedMap } from './tracked.js';

/** Distinct verdicts remembered for sharing; reasons that name an address or a count can be many. */
const SHARED_MAX = 4096;

export class Verdicts extends TrackedMap<string, TargetHealth> {
  private shared = new Map<string, TargetHealth>();

  override set(id: string, h: TargetHealth): this {
    const key = `${h.up ? 'u' : 'd'}${h.known ? 'k' : 'p'}${h.reason}`;
    let v = this.shared.get(key);
    if (!v) {
      if (this.shared.size >= SHARED_MAX) this.shared = new Map();
      v = { up: h.up, known: h.known, reason: h.reason };
      this.shared.set(key, v);
    }
    return super.set(id, v);
  }
}
