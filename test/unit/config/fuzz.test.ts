/**
 * Config fuzzing: generated configs, structural mutations of the examples, byte mutations of
 * their text, and hostile command-line/environment layers, all from one seeded PRNG
 * (VIPD_FUZZ_SEED to replay, VIPD_FUZZ_SCALE to run more). Each goes through what check-config
 * and a reload run: parse, validate, and for accepted configs the pure reload planners.
 * Nothing may throw, every rejection must name where (a path, or a line for syntax), and no
 * input may pollute Object.prototype. Counts are printed as one `FUZZ config ...` line.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { diffPeers, validateBgpConfig } from '../../../src/bgp/peers.js';
import { planRoutes } from '../../../src/bgp/routes.js';
import { checkConfigFiles, printCheckReport } from '../../../src/config/check.js';
import { formatProblem, type ConfigProblem } from '../../../src/config/errors.js';
import { loadConfig, parseConfigText, validateConfig, type LoadResult } from '../../../src/config/load.js';
import type { Config } from '../../../src/config/schema.js';
import { desiredState, NO_OVERRIDES } from '../../../src/coordinator/desired.js';
import { planReload } from '../../../src/coordinator/plan.js';
import { healthTargets } from '../../../src/coordinator/targets.js';
import { desiredTable } from '../../../src/ipvs/desired.js';
import { prng } from '../../lab/prng.mjs';

const SEED = Number(process.env.VIPD_FUZZ_SEED ?? 20261122);
const SCALE = Number(process.env.VIPD_FUZZ_SCALE ?? 1);
const EXAMPLES = ['minimal', 'full'].map((n) => readFileSync(new URL(`../../../examples/${n}.yaml`, import.meta.url), 'utf8'));
const PARSED = EXAMPLES.map((t) => parse(t) as Record<string, unknown>);
const dir = mkdtempSync(join(tmpdir(), 'vipd-fuzz-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const rnd = prng(SEED);
const int = (n: number): number => Math.floor(rnd() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
const chance = (p: number): boolean => rnd() < p;

// ------------------------------------------------------------------ values

const ADDRESSES = ['198.51.100.10', '198.51.100.11', '203.0.113.11', '203.0.113.12', '192.0.2.1', '192.0.2.10', '2001:db8:100::10', '2001:db8::1', '203.0.113.300', '::', '0.0.0.0', 'fe80::1%eth0', '198.51.100.10/32', 'localhost', ''];
const DURATIONS = ['500ms', '2s', '5m', '1h', 10, 0, -1, '0s', '1.5s', 'abc', '10 s', 1e12, '9999999999999ms'];
const PORTS = [80, 443, 53, 0, 1, 65535, 65536, -1, '80', 1.5];
const ODD: unknown[] = [null, true, false, 0, -1, 1e300, 2 ** 53 + 1, 0.5, Number.NaN, Number.POSITIVE_INFINITY, '', ' ', 'x'.repeat(5000), '💥', '\u0000', '${HOME}', [], {}, [[]], { a: { b: { c: {} } } }, '__proto__', 'constructor'];
const KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'bogus', 'Address', 'realServers', ''];

function odd(): unknown {
  const v = pick(ODD);
  return typeof v === 'object' && v !== null ? structuredClone(v) : v;
}
const maybe = <T>(v: () => T): T | unknown => (chance(0.08) ? odd() : v());

function check(): Record<string, unknown> {
  const type = pick(['tcp', 'http', 'https', 'udp', 'dns', 'script', 'icmp']);
  const c: Record<string, unknown> = { type, interval: maybe(() => pick(DURATIONS)), timeout: maybe(() => pick(DURATIONS)), rise: maybe(() => int(5)), fall: maybe(() => int(5)) };
  if (type === 'http' || type === 'https') Object.assign(c, { path: maybe(() => pick(['/', '/healthz', 'healthz'])), expectStatus: maybe(() => [pick([200, '200-299', 600, '2xx'])]), expectBody: maybe(() => pick(['ok', '(', '^a+$'])) });
  if (type === 'dns') Object.assign(c, { query: maybe(() => pick(['ok.example', 'x'.repeat(70)])), qtype: maybe(() => pick(['A', 'AAAA', 'ZZ'])) });
  if (type === 'script') c.command = maybe(() => pick([['/bin/true'], '/bin/true', []]));
  if (type === 'udp') c.send = maybe(() => pick(['ping', '']));
  return c;
}

function generated(): Record<string, unknown> {
  const vips = Array.from({ length: int(4) }, () => ({
    address: maybe(() => pick(ADDRESSES)),
    ...(chance(0.3) ? { mode: maybe(() => pick(['bgp', 'arp', 'ospf'])), interface: maybe(() => pick(['eth0', 'eth1', 'this-name-is-too-long'])) } : {}),
    ...(chance(0.3) ? { minHealthy: maybe(() => pick([0, 1, 2, '50%', '150%', 'half'])) } : {}),
    ...(chance(0.2) ? { softFail: { below: maybe(() => pick(['75%', 0.5, 2])), med: maybe(() => int(1000)) } } : {}),
    ...(chance(0.2) ? { communities: [maybe(() => pick(['64513:100', '65536:1', 'x']))] } : {}),
  }));
  const services = Array.from({ length: int(4) }, () => ({
    vip: maybe(() => pick(ADDRESSES)),
    port: maybe(() => pick(PORTS)),
    ...(chance(0.4) ? { protocol: maybe(() => pick(['tcp', 'udp', 'sctp', 'icmp'])) } : {}),
    ...(chance(0.5) ? { scheduler: maybe(() => pick(['wrr', 'mh', 'sh', 'rr', 'fancy'])), flags: maybe(() => [pick(['mh-fallback', 'mh-port', 'sh-port', 'x'])]) } : {}),
    ...(chance(0.3) ? { forwarding: maybe(() => pick(['dr', 'nat', 'tunnel', 'gre'])) } : {}),
    ...(chance(0.2) ? { fwmark: maybe(() => pick([1, 0, 2 ** 32])) } : {}),
    ...(chance(0.7) ? { check: maybe(check) } : {}),
    realservers: Array.from({ length: int(4) }, () => ({
      address: maybe(() => pick(ADDRESSES)),
      ...(chance(0.3) ? { port: maybe(() => pick(PORTS)) } : {}),
      ...(chance(0.3) ? { weight: maybe(() => pick([0, 1, 100, 65535, 65536, -5, 2.5])) } : {}),
      ...(chance(0.2) ? { node: maybe(() => pick(['n1', 'n2', '-bad'])) } : {}),
    })),
  }));
  const c: Record<string, unknown> = { vipRanges: maybe(() => [pick(['198.51.100.0/24', '2001:db8:100::/64', '198.51.100.0/33', '0.0.0.0/0'])]), vips, services };
  if (chance(0.7)) {
    c.bgp = {
      asn: maybe(() => pick([64513, 4200000001, 0, 2 ** 32, 'AS64513'])),
      routerId: maybe(() => pick(ADDRESSES)),
      ...(chance(0.3) ? { listenPort: maybe(() => pick([-1, 179, 70000])) } : {}),
      ...(chance(0.2) ? { gracefulRestart: { enabled: maybe(() => pick([true, false])), restartTime: maybe(() => pick(DURATIONS)) } } : {}),
      peers: Array.from({ length: int(3) }, () => ({
        address: maybe(() => pick(ADDRESSES)),
        asn: maybe(() => pick([64512, 64513, 0])),
        ...(chance(0.3) ? { holdTime: maybe(() => pick(DURATIONS)), keepalive: maybe(() => pick(DURATIONS)) } : {}),
        ...(chance(0.2) ? { password: maybe(() => pick(['s3cret', '', 'x'.repeat(81)])) } : {}),
        ...(chance(0.2) ? { families: maybe(() => [pick(['ipv4', 'ipv6', 'ipx'])]) } : {}),
        ...(chance(0.1) ? { passive: maybe(() => pick([true, false])) } : {}),
      })),
    };
  }
  if (chance(0.3)) c.nodes = Array.from({ length: int(3) }, () => ({ name: maybe(() => pick(['n1', 'n2', 'n1'])), ...(chance(0.5) ? { weight: maybe(() => pick([0, 50, 101])) } : {}), ...(chance(0.3) ? { agent: { port: maybe(() => pick(PORTS)) } } : {}) }));
  if (chance(0.2)) c.arp = { peers: [maybe(() => pick(ADDRESSES))], ...(chance(0.5) ? { secret: maybe(() => pick(['short', 'long-enough-secret'])) } : {}) };
  if (chance(0.2)) c.coordinator = { presencePorts: maybe(() => [pick(PORTS)]), batchDelay: maybe(() => pick(DURATIONS)), batchQuiet: maybe(() => pick(DURATIONS)) };
  if (chance(0.2)) c.metrics = { enabled: maybe(() => pick([true, false])), listen: maybe(() => pick(['127.0.0.1:9642', '[::1]:9642', ':9642', 'nowhere'])) };
  if (chance(0.2)) c.ipvs = { sysctls: maybe(() => ({ [pick(['conntrack', 'expire_nodest_conn', 'bogus'])]: pick([0, 1, 2, -1]) })) };
  return c;
}

// ------------------------------------------------------------------ mutations

type Tree = Record<string, unknown> | unknown[];
function containers(v: unknown, out: Tree[] = []): Tree[] {
  if (typeof v === 'object' && v !== null) {
    out.push(v as Tree);
    for (const x of Object.values(v)) containers(x, out);
  }
  return out;
}

function mutate(data: Record<string, unknown>, times: number): void {
  for (let i = 0; i < times; i++) {
    const all = containers(data);
    const node = pick(all);
    const keys = Object.keys(node);
    const key = keys.length ? pick(keys) : undefined;
    const o = node as Record<string, unknown>;
    switch (int(8)) {
      case 0:
        if (key !== undefined) {
          if (Array.isArray(node)) node.splice(Number(key), 1);
          else delete o[key];
        }
        break;
      case 1:
        if (key !== undefined) o[key] = odd();
        break;
      case 2:
        if (!Array.isArray(node)) Object.defineProperty(node, pick(KEYS), { value: odd(), enumerable: true, configurable: true, writable: true });
        break;
      case 3:
        if (Array.isArray(node) && node.length) node.push(structuredClone(pick(node)));
        break;
      case 4:
        if (key !== undefined) o[key] = [o[key]];
        break;
      case 5:
        if (key !== undefined) o[key] = pick([...ADDRESSES, ...DURATIONS, ...PORTS]);
        break;
      case 6:
        if (key !== undefined && typeof o[key] === 'number') o[key] = pick([-(o[key] as number), (o[key] as number) * 1e6, (o[key] as number) + 0.5]);
        break;
      default:
        if (key !== undefined && keys.length > 1 && !Array.isArray(node)) {
          const other = pick(keys);
          [o[key], o[other]] = [o[other], o[key]];
        }
    }
  }
}

const SYNTAX = [':', '{', '}', '[', ']', '&a ', '*a', '!!binary ', '|', '>', '- ', '#', '%', '@', '`', '\t', '\n', '"', "'", '\uFEFF', '\u0000', '<<: *a\n', '? '];
function mutateText(text: string, times: number): string {
  let t = text;
  for (let i = 0; i < times; i++) {
    const at = int(t.length + 1);
    switch (int(5)) {
      case 0:
        t = t.slice(0, at) + pick(SYNTAX) + t.slice(at);
        break;
      case 1:
        t = t.slice(0, at) + t.slice(at + 1 + int(20));
        break;
      case 2:
        t = t.slice(0, at) + t.slice(at, at + int(60)) + t.slice(at);
        break;
      case 3:
        t = t.slice(0, at) + String.fromCharCode(int(256)) + t.slice(at + 1);
        break;
      default:
        t = t.slice(0, at);
    }
  }
  return t;
}

// ------------------------------------------------------------------ the oracle

interface Tally {
  cases: number;
  accepted: number;
  rejected: number;
  problems: number;
  crashes: string[];
  unnamed: string[];
}
const tally = (): Tally => ({ cases: 0, accepted: 0, rejected: 0, problems: 0, crashes: [], unnamed: [] });
const protoKeys = Object.getOwnPropertyNames(Object.prototype).sort().join();
const sink = new Writable({ write: (_c, _e, cb) => cb() });

/** A problem names where it is: a path, or a line for syntax; only whole-file problems may name neither. */
function named(p: ConfigProblem): boolean {
  return p.path !== '' || p.line !== undefined || /the file must hold a mapping|cannot read config file|--set /.test(p.message);
}

/** What a reload does with an accepted config before touching anything: the pure planners. */
function planAccepted(config: Config, base: Config | undefined): void {
  healthTargets(config);
  desiredTable(config.services);
  desiredState({ config, health: new Map(), agents: new Map(), overrides: NO_OVERRIDES, linkDown: new Set(), previous: new Map() });
  if (config.bgp) {
    validateBgpConfig(config.bgp);
    diffPeers(base?.bgp, config.bgp);
    planRoutes(config.vips.map((vip) => ({ vip, state: 'up' as const })), config.bgp);
  }
  JSON.stringify(config);
}

let base: Config | undefined;
function judge(t: Tally, label: string, run: () => LoadResult): void {
  t.cases++;
  try {
    const r = run();
    if (r.ok) {
      t.accepted++;
      planAccepted(r.config, base);
    } else {
      t.rejected++;
      t.problems += r.problems.length;
      if (!r.problems.length) t.unnamed.push(`${label}: rejected without a problem`);
      for (const p of r.problems) {
        if (!named(p)) t.unnamed.push(`${label}: ${p.message}`);
        if (!formatProblem(r.file, p)) t.unnamed.push(`${label}: empty message`);
      }
      planReload(undefined, r, { arp: false, bgp: false });
    }
  } catch (e) {
    t.crashes.push(`${label}: ${(e as Error).stack?.split('\n').slice(0, 3).join(' | ') ?? String(e)}`);
  }
  const now = Object.getOwnPropertyNames(Object.prototype).sort().join();
  if (now !== protoKeys) {
    t.crashes.push(`${label}: Object.prototype polluted (${now})`);
    for (const k of Object.getOwnPropertyNames(Object.prototype)) if (!protoKeys.split(',').includes(k)) delete (Object.prototype as Record<string, unknown>)[k];
  }
}

/** A reload validates the parsed (and layered) data; the YAML parser has its own cases below. */
function fromData(data: unknown): LoadResult {
  return validateConfig(data);
}

function fromText(text: string): LoadResult {
  const p = parseConfigText(text);
  return p.ok ? validateConfig(p.file.data, p.file) : { ok: false, problems: p.problems };
}

let fileSeq = 0;
/** The check-config path: a file on disk, then the report printer. Must agree with the in-memory result. */
function viaCheckConfig(text: string): LoadResult {
  const f = join(dir, `c${fileSeq++ % 16}.yaml`);
  writeFileSync(f, text);
  const [rep] = checkConfigFiles([f]);
  printCheckReport([rep!], chance(0.5), sink);
  const mem = fromText(text);
  if (rep!.ok !== mem.ok) throw new Error(`check-config says ${rep!.ok}, validation says ${mem.ok}: ${JSON.stringify(text.slice(0, 400))}`);
  if (!rep!.ok && rep!.problems.length !== (mem.ok ? 0 : mem.problems.length)) {
    throw new Error(`check-config and validation disagree on the problems: ${JSON.stringify(rep!.problems)} vs ${JSON.stringify(mem.ok ? [] : mem.problems.map((p) => formatProblem(undefined, p)))}`);
  }
  return mem;
}

const summary: Record<string, Tally> = {};
const n = (x: number): number => Math.round(x * SCALE);

describe(`config fuzzing (seed ${SEED})`, () => {
  const ok = (t: Tally): void => {
    expect(t.crashes.slice(0, 5)).toEqual([]);
    expect(t.unnamed.slice(0, 5)).toEqual([]);
  };

  it('accepts the examples (the base of the mutations)', () => {
    for (const text of EXAMPLES) {
      const r = fromText(text);
      expect(r.ok).toBe(true);
      if (r.ok) base = r.config;
    }
  });

  it('regressions the fuzzer found', () => {
    // An alias before its anchor threw out of the YAML library (check-config crashed, a reload rejected unhandled).
    const alias = fromText('node: { name: *a }\nlog: &a { level: info }\n');
    expect(alias.ok ? [] : alias.problems).toEqual([{ path: '', line: 1, message: expect.stringMatching(/Unresolved alias.*: a/) as unknown as string }]);
    // A VIP range with a bad length reached the cross-field rules and threw on BigInt(NaN).
    const range = fromText('vipRanges: [198.51.100.0/x]\nvips: [{ address: 198.51.100.10 }]\n');
    expect(range.ok ? [] : range.problems.map((p) => p.path)).toContain('vipRanges[0]');
    // `--set node.__proto__.x=1` reached Object.prototype.
    const f = join(dir, 'proto.yaml');
    writeFileSync(f, EXAMPLES[0]!);
    const set = loadConfig({ file: f, env: {}, set: ['node.__proto__.polluted=1', '__proto__.polluted=1'] });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(set.ok ? [] : set.problems.map((p) => p.message)).toEqual(['--set node.__proto__.polluted=1: not a setting', '--set __proto__.polluted=1: not a setting']);
    // A `__proto__` key passed check-config and reload: nconf's merge dropped it before validation.
    const pf = join(dir, 'proto-key.yaml');
    writeFileSync(pf, 'node: { name: a }\nvips: [{ address: 198.51.100.10, __proto__: { x: 1 } }]\n');
    expect(checkConfigFiles([pf])[0]!.problems).toContain(`${pf}:2: vips[0].__proto__: unknown setting`);
    // An empty key was reported as `unknown setting` with no path at all.
    const empty = fromText('node: { "": 1 }\n"": 2\n');
    expect(empty.ok ? [] : empty.problems.map((p) => `${p.path}: ${p.message}`).sort()).toEqual(['[""]: unknown setting', 'node[""]: unknown setting']);
  });

  it('generated configs', () => {
    const t = (summary.generated = tally());
    for (let i = 0; i < n(2000); i++) {
      const data = generated();
      judge(t, `generated #${i}`, () => (i % 20 === 0 ? viaCheckConfig(chance(0.5) ? stringify(data) : JSON.stringify(data)) : fromData(data)));
    }
    ok(t);
    expect(t.accepted).toBeGreaterThan(0);
  });

  it('structural mutations of the examples', () => {
    const t = (summary.mutated = tally());
    for (let i = 0; i < n(2000); i++) {
      const data = structuredClone(pick(PARSED));
      mutate(data, 1 + int(4));
      judge(t, `mutated #${i}`, () => (i % 20 === 0 ? viaCheckConfig(chance(0.7) ? stringify(data) : JSON.stringify(data)) : fromData(data)));
    }
    ok(t);
    expect(t.accepted).toBeGreaterThan(0);
  });

  it('byte mutations of the example text', () => {
    const t = (summary.text = tally());
    for (let i = 0; i < n(800); i++) {
      // Mostly the short example: the YAML parser dominates the cost of these.
      const text = mutateText(chance(0.75) ? EXAMPLES[0]! : EXAMPLES[1]!, 1 + int(6));
      judge(t, `text #${i}`, () => (i % 20 === 0 ? viaCheckConfig(text) : fromText(text)));
    }
    ok(t);
  });

  it('hostile command-line and environment layers over a valid file', () => {
    const t = (summary.layers = tally());
    const f = join(dir, 'layers.yaml');
    writeFileSync(f, EXAMPLES[0]!);
    const paths = ['node.name', 'bgp.asn', 'bgp.peers', 'vips', 'log.level', 'node.__proto__.x', '__proto__.x', 'constructor.prototype.x', 'bgp.constructor.prototype.y', 'services.0.port', 'a..b', '.', 'node'];
    const values = ['x', '1', '-1', 'null', '[]', '{}', '{"__proto__":{"z":1}}', '"debug"', '[{"address":"198.51.100.99"}]', 'true', '', '='];
    for (let i = 0; i < n(400); i++) {
      const set = Array.from({ length: 1 + int(3) }, () => (chance(0.9) ? `${pick(paths)}=${pick(values)}` : pick(['noequals', '=x', ''])));
      const env: NodeJS.ProcessEnv = {};
      if (chance(0.5)) env[pick(['VIPD_NODE__NAME', 'VIPD_BGP__ASN', 'VIPD_VIPS', 'VIPD_NODE____PROTO__', 'VIPD_LOG__LEVEL', 'VIPD_BGP__PEERS'])] = pick(values);
      judge(t, `layers #${i} ${JSON.stringify(set)} ${JSON.stringify(env)}`, () => loadConfig({ file: f, env, set }));
    }
    ok(t);
  });

  afterAll(() => {
    const all = Object.values(summary);
    const sum = (k: 'cases' | 'accepted' | 'rejected' | 'problems'): number => all.reduce((s, t) => s + t[k], 0);
    const crashes = all.reduce((s, t) => s + t.crashes.length, 0);
    const unnamed = all.reduce((s, t) => s + t.unnamed.length, 0);
    const each = Object.entries(summary).map(([k, t]) => `${k}=${t.cases}`).join(' ');
    console.info(`FUZZ config seed=${SEED} cases=${sum('cases')} ${each} accepted=${sum('accepted')} rejected=${sum('rejected')} problems=${sum('problems')} crashes=${crashes} unnamed=${unnamed}`);
  });
});
