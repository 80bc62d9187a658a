/**
 * Settings vipd reads only when it starts (the subsystems holding them are built once). A reload
 * that changes them applies everything else and names these, so none is ignored silently.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Config } from '../config/schema.js';

/** Sections whose every setting is read at start: node identity, the image's boot-time network, listeners, the health monitor, IPVS kernel settings. */
const AT_START = ['node', 'network', 'health', 'ipvs', 'status', 'journal', 'metrics'] as const;

/** What a running vipd has started that a reload cannot reconfigure in place. */
export interface Running {
  arp: boolean;
  bgp: boolean;
}

/** The settings (section.key) that changed from `cur` to `next` and take effect only at the next restart. */
export function restartOnly(cur: Config, next: Config, running: Running): string[] {
  const out: string[] = [];
  const sections: (keyof Config)[] = [...AT_START, ...(running.arp ? (['arp'] as const) : [])];
  for (const s of sections) out.push(...changedKeys(s, cur[s], next[s]));
  if (running.bgp && !next.bgp) out.push('bgp (removed: the sessions stay up, with no routes)');
  return out;
}

function changedKeys(section: string, a: unknown, b: unknown): string[] {
  if (isDeepStrictEqual(a, b)) return [];
  if (!isRecord(a) || !isRecord(b)) return [section];
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  return keys.filter((k) => !isDeepStrictEqual(a[k], b[k])).map((k) => `${section}.${k}`);
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}
