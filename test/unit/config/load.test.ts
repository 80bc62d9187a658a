import { mkdtempSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import { checkConfigFiles } from '../../../src/config/check.js';

const dir = mkdtempSync(join(tmpdir(), 'vipd-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const yaml = `
node: { name: from-file }
log: { level: warn }
vipRanges: [198.51.100.0/24]
bgp:
  asn: 64513
  routerId: 192.0.2.10
  peers: [{ address: 192.0.2.1, asn: 64512 }]
`;

describe('layered loading', () => {
  it('takes the file over the defaults', () => {
    const r = loadConfig({ file: file('a.yaml', yaml), env: {} });
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.config.node.name).toBe('from-file');
      expect(r.config.log.level).toBe('warn');
      expect(r.config.log.format).toBe('auto');
    }
  });

  it('takes the environment over the file, and the command line over both', () => {
    const f = file('b.yaml', yaml);
    const env = { VIPD_NODE__NAME: 'from-env', VIPD_LOG__LEVEL: 'debug', VIPD_BGP__ROUTER_ID: '192.0.2.99', VIPD_BGP__LISTEN_PORT: '179', VIPD_GOBGP_PROTO_DIR: '/x', VIPD_CACHE: '/y', PATH: '/bin' };
    const r = loadConfig({ file: f, env, set: ['node.name=from-argv'] });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.config.node.name).toBe('from-argv');
    expect(r.config.log.level).toBe('debug');
    expect(r.config.bgp!.routerId).toBe('192.0.2.99');
    expect(r.config.bgp!.listenPort).toBe(179);
    expect(r.config.bgp!.peers).toHaveLength(1);
  });

  it('takes JSON values from the environment for whole lists', () => {
    const r = loadConfig({ file: file('c.yaml', yaml), env: { VIPD_BGP__PEERS: '[{"address":"192.0.2.2","asn":64514}]' } });
    expect(r.ok && r.config.bgp!.peers.map((p) => p.address)).toEqual(['192.0.2.2']);
  });

  it('finds the file through VIPD_CONFIG', () => {
    const r = loadConfig({ env: { VIPD_CONFIG: file('d.yaml', yaml) } });
    expect(r.ok).toBe(true);
  });

  it('validates values from the environment like any other', () => {
    const r = loadConfig({ file: file('e.yaml', yaml), env: { VIPD_BGP__ASN: '0' } });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problems.map((p) => `${p.path}: ${p.message}`)).toContain('bgp.asn: ASN must be 1..4294967294');
  });

  it('refuses a malformed --set', () => {
    const r = loadConfig({ file: file('f.yaml', yaml), env: {}, set: ['nonsense'] });
    expect(r.ok).toBe(false);
  });

  it('names a missing file', () => {
    const r = loadConfig({ file: join(dir, 'missing.yaml'), env: {} });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problems[0]!.message).toBe('cannot read config file: ENOENT');
  });
});

describe('examples', () => {
  const examples = readdirSync(new URL('../../../examples/', import.meta.url)).filter((f) => /\.ya?ml$/.test(f));
  it('has examples', () => expect(examples.length).toBeGreaterThan(0));
  it.each(examples)('examples/%s is valid', (name) => {
    const [report] = checkConfigFiles([new URL(`../../../examples/${name}`, import.meta.url).pathname]);
    expect(report?.problems).toEqual([]);
    expect(report?.ok).toBe(true);
  });
});
