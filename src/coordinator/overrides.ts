/**
 * Runtime overrides (drain, disable) set through vipctl: they take effect in one reconcile,
 * survive reloads, and persist across restarts in the state directory. A state directory that
 * is full or read-only is reported, never fatal: the overrides still apply in memory.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { canonicalAddress } from '../util/ip.js';
import { isIP } from 'node:net';
import type { Config } from '../config/schema.js';
import type { Overrides } from './desired.js';
import type { OverridesView } from './api.js';

interface Stored {
  drained: string[];
  disabled: string[];
}

/** `203.0.113.5`, `203.0.113.5:80`, `[2001:db8::5]:80` or a node name, in canonical form. */
export function canonicalTarget(t: string): string {
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(t);
  if (v6?.[1] && isIP(v6[1]) === 6) return v6[2] ? `${canonicalAddress(v6[1])}:${v6[2]}` : canonicalAddress(v6[1]);
  if (isIP(t)) return canonicalAddress(t);
  const v4 = /^([\d.]+):(\d+)$/.exec(t);
  if (v4?.[1] && isIP(v4[1]) === 4) return `${v4[1]}:${v4[2]}`;
  return t;
}

/**
 * Why `kind target` cannot apply to `config`, or undefined when it can. Drain and disable must
 * name something configured (a typo must not pass as done); undrain and enable may also name
 * anything still stored, such as a realserver removed from config since.
 */
export function overrideProblem(
  config: Pick<Config, 'vips' | 'services' | 'nodes'>,
  stored: OverridesView,
  kind: 'drain' | 'undrain' | 'disable' | 'enable',
  target: string,
): string | undefined {
  const t = canonicalTarget(target);
  if (kind === 'disable' || kind === 'enable') {
    if (config.vips.some((v) => canonicalAddress(v.address) === t) || (kind === 'enable' && stored.disabled.includes(t))) return undefined;
    return `${target} is not a VIP in the running config`;
  }
  const known =
    config.nodes.some((n) => n.name === t) ||
    // The same forms desired.ts matches: the address, or `address:port` (IPv6 without brackets).
    config.services.some((s) => s.realservers.some((r) => {
      const addr = canonicalAddress(r.address);
      return addr === t || `${addr}:${r.port ?? s.port ?? 0}` === t;
    }));
  if (known || (kind === 'undrain' && stored.drained.includes(t))) return undefined;
  return `${target} is not a realserver address, ADDRESS:PORT or node name in the running config`;
}

export class OverrideStore {
  private drained = new Set<string>();
  private disabled = new Set<string>();
  /** Last persistence error, for status. */
  writeError?: string;
  /** Counts changes: what the coordinator derived with stays valid while it stands still. */
  private changes = 0;

  constructor(private readonly file?: string) {
    if (!file) return;
    try {
      const s = JSON.parse(readFileSync(file, 'utf8')) as Partial<Stored>;
      for (const d of s.drained ?? []) if (typeof d === 'string') this.drained.add(d);
      for (const d of s.disabled ?? []) if (typeof d === 'string') this.disabled.add(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.writeError = `read ${file}: ${(e as Error).message}`;
    }
  }

  /** Returns false when nothing changed. */
  set(kind: 'drain' | 'undrain' | 'disable' | 'enable', target: string): boolean {
    const t = canonicalTarget(target);
    const set = kind === 'drain' || kind === 'undrain' ? this.drained : this.disabled;
    const had = set.has(t);
    if (kind === 'drain' || kind === 'disable') set.add(t);
    else set.delete(t);
    if (had === set.has(t)) return false;
    this.changes++;
    this.persist();
    return true;
  }

  private persist(): void {
    if (!this.file) return;
    try {
      mkdirSync(dirname(this.file), { recursive: true });
      writeFileSync(`${this.file}.tmp`, JSON.stringify(this.view()));
      renameSync(`${this.file}.tmp`, this.file);
      this.writeError = undefined;
    } catch (e) {
      this.writeError = `${this.file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
    }
  }

  get version(): number {
    return this.changes;
  }

  view(): OverridesView {
    return { drained: [...this.drained].sort(), disabled: [...this.disabled].sort() };
  }

  /** Drain targets split into realservers and nodes by what the config knows as node names. */
  overrides(nodeNames: ReadonlySet<string>): Overrides {
    const nodes = new Set<string>();
    const rs = new Set<string>();
    for (const d of this.drained) (nodeNames.has(d) ? nodes : rs).add(d);
    return { drainedRealservers: rs, drainedNodes: nodes, disabledVips: new Set(this.disabled) };
  }
}
