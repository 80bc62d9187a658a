import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../../src/config/load.js';
import { overrideProblem } from '../../../src/coordinator/overrides.js';

const r = validateConfig({
  vipRanges: ['198.51.100.0/24', '2001:db8:100::/64'],
  bgp: { asn: 64513, routerId: '192.0.2.10', peers: [{ address: '192.0.2.1', asn: 64512, families: ['ipv4', 'ipv6'] }] },
  nodes: [{ name: 'n1' }],
  vips: [{ address: '198.51.100.10' }, { address: '2001:db8:100::10', nextHop: '2001:db8:0:1::10' }],
  services: [
    { vip: '198.51.100.10', port: 80, realservers: [{ address: '203.0.113.1', node: 'n1' }] },
    { vip: '2001:db8:100::10', port: 443, realservers: [{ address: '2001:db8:203::1' }] },
  ],
});
if (!r.ok) throw new Error(JSON.stringify(r.problems));
const config = r.config;
const none = { drained: [], disabled: [] };

describe('overrideProblem', () => {
  it('accepts what the running config names, in any spelling vipd canonicalises', () => {
    for (const t of ['203.0.113.1', '203.0.113.1:80', 'n1', '2001:db8:203::1', '2001:DB8:203:0::1', '[2001:db8:203::1]:443']) {
      expect(overrideProblem(config, none, 'drain', t), t).toBeUndefined();
    }
    expect(overrideProblem(config, none, 'disable', '198.51.100.10')).toBeUndefined();
    expect(overrideProblem(config, none, 'disable', '2001:db8:100:0::10')).toBeUndefined();
  });

  it('refuses a typo with what and why', () => {
    expect(overrideProblem(config, none, 'drain', '203.0.113.2')).toBe('203.0.113.2 is not a realserver address, ADDRESS:PORT or node name in the running config');
    expect(overrideProblem(config, none, 'drain', '203.0.113.1:81')).toMatch(/not a realserver/);
    expect(overrideProblem(config, none, 'drain', 'n2')).toMatch(/not a realserver/);
    expect(overrideProblem(config, none, 'disable', '198.51.100.11')).toBe('198.51.100.11 is not a VIP in the running config');
    expect(overrideProblem(config, none, 'disable', '203.0.113.1')).toMatch(/not a VIP/);
  });

  it('lets an override stored earlier be undone after its target left the config', () => {
    const stored = { drained: ['203.0.113.9'], disabled: ['198.51.100.99'] };
    expect(overrideProblem(config, stored, 'undrain', '203.0.113.9')).toBeUndefined();
    expect(overrideProblem(config, stored, 'enable', '198.51.100.99')).toBeUndefined();
    expect(overrideProblem(config, stored, 'drain', '203.0.113.9')).toMatch(/not a realserver/);
  });
});
