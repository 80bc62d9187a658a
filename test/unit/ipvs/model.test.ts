import { describe, expect, it } from 'vitest';
import { flagBit, flagNames, maskToPrefix, orderKey, prefixToMask, serviceId, sortDests, type Dest } from '../../../src/ipvs/model.js';

const dest = (address: string, port = 80): Dest => ({ id: `${address}:${port}`, address, port, fwd: 'dr', weight: 1, upper: 0, lower: 0 });

describe('model', () => {
  it('sorts destinations numerically by address, then port', () => {
    const sorted = sortDests([dest('203.0.113.10'), dest('203.0.113.9'), dest('203.0.113.9', 8), dest('203.0.113.100')]);
    expect(sorted.map((d) => d.id)).toEqual(['203.0.113.9:8', '203.0.113.9:80', '203.0.113.10:80', '203.0.113.100:80']);
  });

  it('sorts IPv6 destinations by value, not by text', () => {
    const a = ['2001:db8:203::10', '2001:db8:203::9', '2001:db8:203::a', '2001:db8:1::ffff'];
    const sorted = sortDests(a.map((x) => dest(x)));
    expect(sorted.map((d) => d.address)).toEqual(['2001:db8:1::ffff', '2001:db8:203::9', '2001:db8:203::a', '2001:db8:203::10']);
    expect(orderKey('2001:db8::1', 80)).toHaveLength(36);
  });

  it('names services and flags as ipvsadm does', () => {
    expect(serviceId({ kind: 'addr', protocol: 'udp', family: 6, address: '2001:db8:100::1', port: 53 })).toBe('udp [2001:db8:100::1]:53');
    expect(serviceId({ kind: 'fwmark', family: 4, fwmark: 7 })).toBe('fwm 7');
    expect(serviceId({ kind: 'fwmark', family: 6, fwmark: 7 })).toBe('fwm 7 ipv6');
    expect(flagNames(3, 'mh')).toEqual(['mh-fallback', 'mh-port']);
    expect(flagNames(2, 'sh')).toEqual(['sh-port']);
    expect(flagNames(4, 'fo')).toEqual(['flag-3']);
    expect(flagBit('mh-port')).toBe(2);
    expect(flagBit('nope')).toBeUndefined();
  });

  it('converts between prefix lengths and dotted masks', () => {
    expect(prefixToMask(24)).toBe('255.255.255.0');
    expect(prefixToMask(32)).toBe('255.255.255.255');
    expect(prefixToMask(0)).toBe('0.0.0.0');
    expect(maskToPrefix('255.255.240.0')).toBe(20);
    expect(maskToPrefix('255.255.255.255')).toBe(32);
  });
});
