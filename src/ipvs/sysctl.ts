/**
 * Kernel settings for the director: loads modules (modprobe, with a timeout) and writes
 * net.ipv4.vs.* (defaults for a director merged with config), reading every value back so
 * the report shows what the kernel holds, not what was asked.
 */
import { DEFAULT_IPVS_SYSCTLS, IPVS_SYSCTLS } from '../config/schema.js';
import type { Runner } from './kernel.js';

export interface ModuleResult {
  name: string;
  /** `present`: already loaded or built in; `loaded`: modprobe just loaded it. */
  state: 'present' | 'loaded' | 'failed';
  error?: string;
}

export interface SysctlResult {
  /** Without the net.ipv4.vs. prefix. */
  name: string;
  wanted: number;
  before?: number;
  after?: number;
  ok: boolean;
  error?: string;
}

export interface SysctlReport {
  modules: ModuleResult[];
  sysctls: SysctlResult[];
}

const SYSCTL_DIR = '/proc/sys/net/ipv4/vs';

/** Director defaults overridden by config. */
export function wantedSysctls(configured: Readonly<Record<string, number>>): Record<string, number> {
  return { ...DEFAULT_IPVS_SYSCTLS, ...configured };
}

/** Why a setting may not be written, or undefined. Config validates too; this keeps a bad name from ever becoming a path. */
export function sysctlProblem(name: string, value: number): string | undefined {
  const range = IPVS_SYSCTLS[name];
  if (!range) return `unknown setting net.ipv4.vs.${name}`;
  if (!Number.isInteger(value) || value < range[0] || value > range[1]) return `net.ipv4.vs.${name} must be ${range[0]}..${range[1]}`;
  return undefined;
}

async function readValue(runner: Runner, name: string): Promise<number | undefined> {
  try {
    const v = Number((await runner.readFile(`${SYSCTL_DIR}/${name}`)).trim());
    return Number.isFinite(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

export async function applySysctls(runner: Runner, wanted: Readonly<Record<string, number>>): Promise<SysctlResult[]> {
  const out: SysctlResult[] = [];
  for (const [name, value] of Object.entries(wanted).sort(([a], [b]) => a.localeCompare(b))) {
    const problem = sysctlProblem(name, value);
    if (problem) {
      out.push({ name, wanted: value, ok: false, error: problem });
      continue;
    }
    const before = await readValue(runner, name);
    let error: string | undefined;
    if (before !== value) {
      try {
        await runner.writeFile(`${SYSCTL_DIR}/${name}`, `${value}\n`);
      } catch (e) {
        error = (e as Error).message;
      }
    }
    const after = await readValue(runner, name);
    const r: SysctlResult = { name, wanted: value, ok: after === value };
    if (before !== undefined) r.before = before;
    if (after !== undefined) r.after = after;
    if (error !== undefined || after !== value) r.error = error ?? `reads back ${after ?? 'nothing'}`;
    out.push(r);
  }
  return out;
}

/** Loads each module unless /sys/module shows it present (loaded or built in). */
export async function loadModules(runner: Runner, names: readonly string[], modprobe: string, timeoutMs: number): Promise<ModuleResult[]> {
  const out: ModuleResult[] = [];
  for (const name of new Set(names)) {
    if (!/^[a-z0-9_]+$/.test(name)) {
      out.push({ name, state: 'failed', error: 'not a module name' });
      continue;
    }
    if (await runner.exists(`/sys/module/${name}`)) {
      out.push({ name, state: 'present' });
      continue;
    }
    try {
      const r = await runner.exec(modprobe, [name], { timeoutMs });
      if (r.code === 0) out.push({ name, state: 'loaded' });
      else out.push({ name, state: 'failed', error: `${modprobe} ${name}: ${r.signal ? `killed by ${r.signal}` : `exit ${r.code}`}: ${r.stderr.trim().split('\n').slice(-2).join('; ')}` });
    } catch (e) {
      out.push({ name, state: 'failed', error: `${modprobe} ${name}: ${(e as Error).message}` });
    }
  }
  return out;
}
