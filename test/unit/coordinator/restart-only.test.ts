import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../../src/config/load.js';
import type { Config } from '../../../src/config/schema.js';
import { restartOnly } from '../../../src/coordinator/restart-only.js';

function config(more: Record<string, unknown> = {}): Config {
  const r = validateConfig({
    vipRanges: ['198.51.100.0/24'],
    bgp: { asn: 64513, routerId: '192.0.2.10', peers: [{ address: '192.0.2.1', asn: 64512 }] },
    vips: [{ address: '198.51.100.10' }],
    services: [{ vip: '198.51.100.10', port: 80, realservers: [{ address: '203.0.113.1' }] }],
    ...more,
  });
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.config;
}

const running = { arp: false, bgp: true };

describe('settings a reload cannot apply in place', () => {
  it('names nothing when only live settings change (VIPs, services, peers, ranges, batching, log)', () => {
    const next = config({
      vipRanges: ['198.51.100.0/24', '203.0.113.128/25'],
      vips: [{ address: '198.51.100.10' }, { address: '198.51.100.11', mode: 'arp', interface: 'eth0' }],
      services: [{ vip: '198.51.100.10', port: 80, realservers: [{ address: '203.0.113.1', weight: 5 }] }],
      bgp: { asn: 64513, routerId: '192.0.2.10', peers: [{ address: '192.0.2.2', asn: 64512 }] },
      coordinator: { batchDelay: '20ms' },
      log: { level: 'debug' },
    });
    expect(restartOnly(config(), next, running)).toEqual([]);
  });

  it('names each changed start-only setting as section.key', () => {
    const next = config({
      ipvs: { sysctls: { conn_reuse_mode: 2 } },
      metrics: { enabled: false, listen: '192.0.2.10:9100' },
      status: { socket: '/run/other.sock' },
      node: { name: 'other' },
    });
    expect(restartOnly(config(), next, running).sort()).toEqual(['ipvs.sysctls', 'metrics.enabled', 'metrics.listen', 'node.name', 'status.socket']);
  });

  it('names ARP settings only while ARP runs (a first ARP-mode VIP starts it with the new ones)', () => {
    const next = config({ arp: { interval: '5s' } });
    expect(restartOnly(config(), next, running)).toEqual([]);
    expect(restartOnly(config(), next, { arp: true, bgp: true })).toEqual(['arp.interval']);
  });

  it('says that a removed bgp section leaves the sessions up until the restart', () => {
    const next = config({ bgp: undefined, vips: [], services: [] });
    expect(restartOnly(config(), next, running)).toEqual(['bgp (removed: the sessions stay up, with no routes)']);
  });
});
