/** The fixtures are real output of ipvsadm 1.31 and /proc/net/ip_vs on Debian's 6.1 kernel (the VM lab). */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ParseError, parseList, parseProcCounts } from '../../../src/ipvs/parse.js';

const fixture = (f: string): string => readFileSync(join(dirname(fileURLToPath(import.meta.url)), 'fixtures', f), 'utf8');

describe('parseList', () => {
  it('reads every service attribute and destinations in kernel order', () => {
    const l = parseList(fixture('list-weights.txt'));
    expect(l.mode).toBe('weights');
    expect(l.services.map((s) => s.spec.id)).toEqual([
      'tcp 198.51.100.1:80',
      'udp 198.51.100.1:53',
      'udp 198.51.100.1:54',
      'tcp [2001:db8:100::1]:80',
      'sctp 198.51.100.3:9',
      'tcp 198.51.100.2:443',
      'fwm 7',
      'fwm 8 ipv6',
    ]);
    const web = l.services[0]!;
    expect(web.spec).toEqual({ id: 'tcp 198.51.100.1:80', key: { kind: 'addr', protocol: 'tcp', family: 4, address: '198.51.100.1', port: 80 }, scheduler: 'wrr', flags: 0, onePacket: false });
    // Newest first: added .1, .2, .3, .4.
    expect(web.dests.map((d) => [d.id, d.fwd, d.weight, d.counts?.active, d.counts?.inactive])).toEqual([
      ['203.0.113.4:80', 'tunnel', 0, 0, 0],
      ['203.0.113.3:8080', 'nat', 0, 0, 0],
      ['203.0.113.2:80', 'dr', 0, 0, 0],
      ['203.0.113.1:80', 'dr', 100, 1, 1],
    ]);
    const dns = l.services[1]!.spec;
    expect([dns.scheduler, dns.flags, dns.onePacket]).toEqual(['mh', 3, true]);
    expect(l.services[2]!.spec.flags).toBe(4);
    expect(l.services[3]!.spec.persistence).toEqual({ timeout: 30, netmask: '64' });
    expect(l.services[5]!.spec).toMatchObject({ scheduler: 'sh', flags: 3, persistence: { timeout: 300, netmask: '255.255.255.0' } });
    expect(l.services[6]!.spec).toMatchObject({ key: { kind: 'fwmark', family: 4, fwmark: 7 }, persistence: { timeout: 60, netmask: '255.255.255.255' } });
    expect(l.services[7]!.dests[0]).toMatchObject({ id: '[2001:db8:203::1]:0', fwd: 'dr', weight: 1 });
  });

  it('reads thresholds', () => {
    const l = parseList(fixture('list-thresholds.txt'));
    expect(l.mode).toBe('thresholds');
    expect(l.services[0]!.dests.map((d) => [d.id, d.upper, d.lower])).toEqual([
      ['203.0.113.4:80', 0, 0],
      ['203.0.113.3:8080', 0, 0],
      ['203.0.113.2:80', 1000, 10],
      ['203.0.113.1:80', 0, 0],
    ]);
    expect(l.services[0]!.spec.scheduler).toBe('wrr');
  });

  it('reads traffic counters', () => {
    const l = parseList(fixture('list-stats.txt'));
    expect(l.mode).toBe('stats');
    expect(l.services).toHaveLength(8);
    expect(l.services[7]!.spec.id).toBe('fwm 8 ipv6');
    expect(l.services[0]!.dests[3]!.stats).toEqual({ conns: 0, inPkts: 0, outPkts: 0, inBytes: 0, outBytes: 0 });
  });

  it('reads a single-service listing (no version line)', () => {
    const l = parseList(fixture('list-one.txt'));
    expect(l.services.map((s) => s.spec.id)).toEqual(['tcp [2001:db8:100::1]:80']);
    expect(l.services[0]!.dests[0]).toMatchObject({ id: '[2001:db8:203::1]:80', fwd: 'nat', weight: 3 });
  });

  it('reads an empty table', () => {
    expect(parseList('IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n').services).toEqual([]);
  });

  it('refuses what it does not understand, naming the line', () => {
    const head = 'Prot LocalAddress:Port Scheduler Flags\n';
    expect(() => parseList(`${head}TCP  198.51.100.1:80 wrr (flag-9)\n`)).toThrow(ParseError);
    expect(() => parseList(`${head}TCP  198.51.100.1:80 wrr\n  -> 203.0.113.1:80 Bogus 1 0 0\n`)).toThrow(/line 3: unknown forwarding Bogus/);
    expect(() => parseList(`${head}  -> 203.0.113.1:80 Route 1 0 0\n`)).toThrow(/destination before any service/);
    expect(() => parseList('TCP  198.51.100.1:80 wrr\n')).toThrow(/no header/);
    expect(() => parseList(`${head}something else\n`)).toThrow(/line 2/);
  });
});

describe('parseProcCounts', () => {
  it('reads counts from hex addresses, firewall-mark families from their destinations', () => {
    const c = parseProcCounts(fixture('proc-ip_vs.txt'));
    expect([...c.keys()]).toEqual(['tcp 198.51.100.1:80', 'udp 198.51.100.1:53', 'udp 198.51.100.1:54', 'tcp [2001:db8:100::1]:80', 'sctp 198.51.100.3:9', 'tcp 198.51.100.2:443', 'fwm 8 ipv6']);
    expect(c.get('tcp 198.51.100.1:80')?.get('203.0.113.1:80')).toEqual({ active: 1, inactive: 1 });
    expect(c.get('tcp 198.51.100.1:80')?.get('203.0.113.3:8080')).toEqual({ active: 0, inactive: 0 });
    expect(c.get('fwm 8 ipv6')?.get('[2001:db8:203::1]:0')).toEqual({ active: 0, inactive: 0 });
  });

  it('refuses garbage', () => {
    expect(() => parseProcCounts('TCP  ZZZ:0050 wrr\n')).toThrow(ParseError);
  });
});
