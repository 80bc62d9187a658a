import { describe, expect, it } from 'vitest';
import type { Dest, ServiceSpec } from '../../../src/ipvs/model.js';
import { conntrackArgs, renderOp, renderScript } from '../../../src/ipvs/render.js';

const tcp: ServiceSpec = { id: 'tcp 198.51.100.10:80', key: { kind: 'addr', protocol: 'tcp', family: 4, address: '198.51.100.10', port: 80 }, scheduler: 'wrr', flags: 0, onePacket: false };
const udp6: ServiceSpec = {
  id: 'udp [2001:db8:100::1]:53',
  key: { kind: 'addr', protocol: 'udp', family: 6, address: '2001:db8:100::1', port: 53 },
  scheduler: 'mh',
  flags: 3,
  onePacket: true,
  persistence: { timeout: 30, netmask: '64' },
};
const fwm6: ServiceSpec = { id: 'fwm 8 ipv6', key: { kind: 'fwmark', family: 6, fwmark: 8 }, scheduler: 'sh', flags: 2, onePacket: false, persistence: { timeout: 300, netmask: '128' } };
const sctp: ServiceSpec = { id: 'sctp 198.51.100.3:9', key: { kind: 'addr', protocol: 'sctp', family: 4, address: '198.51.100.3', port: 9 }, scheduler: 'nq', flags: 0, onePacket: false };
const d = (address: string, port: number, more: Partial<Dest> = {}): Dest => ({ id: `${address}:${port}`, address, port, fwd: 'dr', weight: 100, upper: 0, lower: 0, ...more });

describe('render', () => {
  it('renders services with every attribute', () => {
    expect(renderOp({ kind: 'add-service', svc: tcp })).toBe('-A -t 198.51.100.10:80 -s wrr');
    expect(renderOp({ kind: 'edit-service', svc: udp6 })).toBe('-E -u [2001:db8:100::1]:53 -s mh -p 30 -M 64 -o -b mh-fallback,mh-port');
    expect(renderOp({ kind: 'add-service', svc: fwm6 })).toBe('-A -f 8 -6 -s sh -p 300 -M 128 -b sh-port');
    expect(renderOp({ kind: 'add-service', svc: sctp })).toBe('-A --sctp-service 198.51.100.3:9 -s nq');
    expect(renderOp({ kind: 'del-service', svc: fwm6 })).toBe('-D -f 8 -6');
  });

  it('renders destinations with forwarding, weight and thresholds', () => {
    expect(renderOp({ kind: 'add-dest', svc: tcp, dest: d('203.0.113.1', 80) })).toBe('-a -t 198.51.100.10:80 -r 203.0.113.1:80 -g -w 100');
    expect(renderOp({ kind: 'edit-dest', svc: tcp, dest: d('203.0.113.1', 8080, { fwd: 'nat', weight: 0, upper: 1000, lower: 10 }) })).toBe(
      '-e -t 198.51.100.10:80 -r 203.0.113.1:8080 -m -w 0 -x 1000 -y 10',
    );
    expect(renderOp({ kind: 'add-dest', svc: fwm6, dest: d('2001:db8:203::1', 0, { id: '[2001:db8:203::1]:0', fwd: 'tunnel', weight: 1 }) })).toBe(
      '-a -f 8 -6 -r [2001:db8:203::1]:0 -i -w 1',
    );
    expect(renderOp({ kind: 'del-dest', svc: udp6, dest: d('2001:db8:203::1', 53) })).toBe('-d -u [2001:db8:100::1]:53 -r [2001:db8:203::1]:53');
  });

  it('keeps conntrack flushes out of the ipvsadm script and renders their arguments', () => {
    const nat = d('203.0.113.5', 5353, { fwd: 'nat' });
    const udp4: ServiceSpec = { ...tcp, id: 'udp 198.51.100.10:53', key: { kind: 'addr', protocol: 'udp', family: 4, address: '198.51.100.10', port: 53 } };
    const ops = [
      { kind: 'del-dest', svc: udp4, dest: nat },
      { kind: 'flush-conntrack', svc: udp4, dest: nat },
    ] as const;
    expect(renderScript(ops)).toEqual(['-d -u 198.51.100.10:53 -r 203.0.113.5:5353']);
    expect(conntrackArgs(ops[1])).toEqual(['-D', '-f', 'ipv4', '-p', 'udp', '--orig-dst', '198.51.100.10', '--orig-port-dst', '53', '--reply-src', '203.0.113.5', '--reply-port-src', '5353']);
    expect(conntrackArgs({ kind: 'flush-conntrack', svc: udp6 })).toEqual(['-D', '-f', 'ipv6', '-p', 'udp', '--orig-dst', '2001:db8:100::1', '--orig-port-dst', '53']);
    expect(conntrackArgs(ops[0])).toBeUndefined();
  });
});
