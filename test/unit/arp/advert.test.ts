import { describe, expect, it } from 'vitest';
import { decodeAdvert, encodeAdverts } from '../../../src/arp/advert.js';

const entries = Array.from({ length: 40 }, (_, i) => ({
  address: i % 2 ? `198.51.100.${i}` : `2001:db8:100::${i.toString(16)}`,
  priority: 100 + i,
  preempt: i % 3 === 0,
  eligible: i % 5 !== 0,
  owner: i === 7,
}));

describe('adverts on the wire', () => {
  it('round-trips, split into small datagrams with consecutive sequence numbers', () => {
    const { datagrams, nextSeq } = encodeAdverts({ id: '192.0.2.11', boot: 123 }, 10, entries);
    expect(datagrams).toHaveLength(3);
    expect(nextSeq).toBe(13);
    expect(Math.max(...datagrams.map((d) => d.length))).toBeLessThan(1200);
    const decoded = datagrams.map((d) => decodeAdvert(d));
    const all = decoded.flatMap((d) => ('error' in d ? [] : d.entries));
    expect(all).toEqual(entries);
    expect(decoded.map((d) => ('error' in d ? -1 : d.seq))).toEqual([10, 11, 12]);
  });

  it('still sends one datagram when there is no VIP (liveness)', () => {
    expect(encodeAdverts({ id: 'x', boot: 1 }, 1, []).datagrams).toHaveLength(1);
  });

  it('with a secret, accepts only datagrams signed with it', () => {
    const [signed] = encodeAdverts({ id: '192.0.2.11', boot: 1 }, 1, entries.slice(0, 2), 's3cret').datagrams;
    if (!signed) throw new Error('no datagram');
    expect(decodeAdvert(signed, 's3cret')).toMatchObject({ id: '192.0.2.11' });
    expect(decodeAdvert(signed, 'other')).toEqual({ error: 'bad-mac' });
    const [plain] = encodeAdverts({ id: '192.0.2.11', boot: 1 }, 1, entries.slice(0, 2)).datagrams;
    if (!plain) throw new Error('no datagram');
    expect(decodeAdvert(plain, 's3cret')).toHaveProperty('error');
    const tampered = Buffer.from(signed);
    tampered.writeUInt8(tampered.readUInt8(tampered.length - 5) ^ 1, tampered.length - 5);
    expect(decodeAdvert(tampered, 's3cret')).toEqual({ error: 'bad-mac' });
  });

  it('refuses malformed input', () => {
    expect(decodeAdvert(Buffer.from('nope'))).toHaveProperty('error');
    expect(decodeAdvert(Buffer.from(JSON.stringify({ v: 1, id: 'x', b: 1, s: 1, e: [['not-an-ip', 1, 0]] })))).toHaveProperty('error');
  });
});
