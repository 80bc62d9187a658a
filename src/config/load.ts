/**
 * Loads vipd's configuration in layers with nconf: schema defaults < file (YAML or JSON)
 * < environment (`VIPD_SECTION__KEY_NAME`) < command line (`--set section.key=value`),
 * then validates the merged result against the schema.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import nconf from 'nconf';
import { LineCounter, parseDocument, isNode, visit, type Document } from 'yaml';
import { configSchema, configShape, type Config } from './schema.js';
import { formatPath, problemsFromIssues, type ConfigProblem } from './errors.js';

export const DEFAULT_CONFIG_FILE = '/etc/vipd/vipd.yaml';

export interface LoadOptions {
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** `section.key=value` strings from the command line; values are JSON when they parse as JSON. */
  set?: readonly string[];
}

export type LoadResult =
  | { ok: true; config: Config; version: string; file?: string }
  | { ok: false; problems: ConfigProblem[]; file?: string };

interface ParsedFile {
  data: unknown;
  doc?: Document;
  lines?: LineCounter;
}

/** Parses YAML (JSON is a subset); syntax errors come back as problems with line numbers. */
export function parseConfigText(text: string): { ok: true; file: ParsedFile } | { ok: false; problems: ConfigProblem[] } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length) {
    return {
      ok: false,
      problems: doc.errors.map((e) => ({
        path: '',
        message: e.message.split('\n')[0] ?? e.message,
        line: lines.linePos(e.pos[0]).line,
      })),
    };
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 }) ?? {};
  } catch (e) {
    // An alias before its anchor, or one that expands past maxAliasCount, only shows up here.
    let line: number | undefined;
    visit(doc, {
      Alias(_, node) {
        if (line === undefined && node.range) line = lines.linePos(node.range[0]).line;
      },
    });
    return { ok: false, problems: [{ path: '', message: (e as Error).message.split('\n')[0] ?? 'bad alias', line: line ?? 1 }] };
  }
  if (typeof data !== 'object' || Array.isArray(data)) {
    return { ok: false, problems: [{ path: '', message: 'the file must hold a mapping of sections (node, bgp, vips, services, ...)' }] };
  }
  return { ok: true, file: { data, doc, lines } };
}

function camel(s: string): string {
  return s.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

const SECTIONS = new Set(Object.keys(configShape.shape));

/**
 * `VIPD_BGP__ROUTER_ID` -> `['bgp', 'routerId']`. Only names that start with a config section
 * are settings; other VIPD_ variables (VIPD_CONFIG, VIPD_CACHE, ...) belong to tools.
 */
function envKey(key: string): string[] | undefined {
  if (!key.startsWith('VIPD_')) return undefined;
  const path = key.slice(5).split('__').map(camel);
  return SECTIONS.has(path[0] ?? '') ? path : undefined;
}

function parseValue(v: string): unknown {
  try {
    return JSON.parse(v) as unknown;
  } catch {
    return v;
  }
}

/** Builds a nested object from `[['bgp','asn'], 65001]` pairs. */
function nest(pairs: readonly (readonly [string[], unknown])[]): Record<string, unknown> {
  const data: Record<string, unknown> = {};
  for (const [keys, value] of pairs) {
    let o = data;
    keys.slice(0, -1).forEach((k) => {
      const next = Object.hasOwn(o, k) ? o[k] : undefined;
      o = (o[k] = typeof next === 'object' && next !== null ? next : {}) as Record<string, unknown>;
    });
    o[keys[keys.length - 1] as string] = value;
  }
  return data;
}

function setToObject(set: readonly string[]): { data: Record<string, unknown>; problems: ConfigProblem[] } {
  const problems: ConfigProblem[] = [];
  const pairs: [string[], unknown][] = [];
  for (const s of set) {
    const eq = s.indexOf('=');
    const keys = s.slice(0, Math.max(eq, 0)).split('.');
    if (eq <= 0) problems.push({ path: '', message: `--set ${s}: expected section.key=value` });
    // Never a setting, and as a path they would reach Object.prototype.
    else if (keys.some((k) => k === '__proto__' || k === 'constructor' || k === 'prototype')) problems.push({ path: '', message: `--set ${s}: not a setting` });
    else pairs.push([keys, parseValue(s.slice(eq + 1))]);
  }
  return { data: nest(pairs), problems };
}

function lineOf(file: ParsedFile | undefined, path: readonly PropertyKey[]): number | undefined {
  if (!file?.doc || !file.lines) return undefined;
  for (let n = path.length; n > 0; n--) {
    const node: unknown = file.doc.getIn(path.slice(0, n) as unknown[], true);
    if (isNode(node) && node.range) return file.lines.linePos(node.range[0]).line;
  }
  return undefined;
}

/** nconf's merge drops some `__proto__` keys (at the top level), so they are found before it and reported like any unknown key. */
function protoKeyPaths(v: unknown, path: PropertyKey[] = [], out: PropertyKey[][] = []): PropertyKey[][] {
  if (typeof v !== 'object' || v === null) return out;
  for (const [k, x] of Object.entries(v)) {
    const here = [...path, Array.isArray(v) ? Number(k) : k];
    if (k === '__proto__') out.push(here);
    else protoKeyPaths(x, here, out);
  }
  return out;
}

/** Validates already-parsed config data (from any source); problems carry line numbers when `file` is given. */
export function validateConfig(data: unknown, file?: ParsedFile): LoadResult {
  const r = configSchema.safeParse(data);
  if (!r.success) {
    const problems = problemsFromIssues(r.error.issues).map(({ keys, ...p }) => ({ ...p, line: lineOf(file, keys ?? []) }));
    return { ok: false, problems };
  }
  return { ok: true, config: r.data, version: configVersion(r.data) };
}

/** Short, stable fingerprint of a validated config, shown in status and logs. */
export function configVersion(config: Config): string {
  return createHash('sha256').update(JSON.stringify(config)).digest('hex').slice(0, 12);
}

export function loadConfig(opts: LoadOptions = {}): LoadResult {
  const env = opts.env ?? process.env;
  const path = opts.file ?? env.VIPD_CONFIG ?? DEFAULT_CONFIG_FILE;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    return { ok: false, file: path, problems: [{ path: '', message: `cannot read config file: ${(e as NodeJS.ErrnoException).code ?? String(e)}` }] };
  }
  const parsed = parseConfigText(text);
  if (!parsed.ok) return { ok: false, file: path, problems: parsed.problems };
  const cli = setToObject(opts.set ?? []);
  if (cli.problems.length) return { ok: false, file: path, problems: cli.problems };

  // First store added wins: command line, then environment, then the file.
  const provider = new nconf.Provider();
  provider.use('argv', { type: 'literal', store: cli.data });
  provider.use('env', {
    type: 'literal',
    store: nest(
      Object.entries(env).flatMap(([k, v]) => {
        const key = envKey(k);
        return key === undefined || v === undefined ? [] : [[key, parseValue(v)] as const];
      }),
    ),
  });
  provider.use('file', { type: 'literal', store: parsed.file.data });
  const merged: unknown = provider.get();
  const result = validateConfig(merged, parsed.file);
  const reported = new Set(result.ok ? [] : result.problems.map((p) => p.path));
  const proto = protoKeyPaths(parsed.file.data)
    .map((keys) => ({ path: formatPath(keys), message: 'unknown setting', line: lineOf(parsed.file, keys) }))
    .filter((p) => !reported.has(p.path));
  if (proto.length) return { ok: false, file: path, problems: [...proto, ...(result.ok ? [] : result.problems)] };
  return { ...result, file: path };
}
