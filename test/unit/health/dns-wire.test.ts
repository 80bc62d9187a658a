import { describe, expect, it } from 'vitest';
import { decodeMessage, DnsFormatError, encodeName, encodeQuery, QTYPES, rcodeName } from '../../../src/health/checks/dns-wire.js';

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

/** A reply to `ok.example A` (question at offset 12), with the given answer records appended. */
function reply(answers: Buffer[], opts: { id?: number; flags?: number; an?: number } = {}): Buffer {
  const header = Buffer.concat([u16(opts.id ?? 0x1234), u16(opts.flags ?? 0x8180), u16(1), u16(opts.an ?? answers.length), u16(0), u16(0)]);
  return Buffer.concat([header, encodeName('ok.example'), u16(1), u16(1), ...answers]);
}

/** One answer record: name pointer to the question, type, class IN, TTL 60, RDATA. */
function rr(type: number, rdata: Buffer, rdlength = rdata.length): Buffer {
  return Buffer.concat([Buffer.from([0xc0, 12]), u16(type), u16(1), Buffer.from([0, 0, 0, 60]), u16(rdlength), rdata]);
}

describe('DNS wire format', () => {
  it('encodes a query with recursion desired and one question', () => {
    const q = encodeQuery(0xbeef, 'www.example.', QTYPES.AAAA);
    expect(q.toString('hex')).toBe(
      'beef' + '0100' + '0001' + '0000' + '0000' + '0000' + '03777777' + '076578616d706c65' + '00' + '001c' + '0001',
    );
  });

  it('rejects names it cannot encode', () => {
    expect(() => encodeName('a..b')).toThrow(/bad label/);
    expect(() => encodeName(`${'x'.repeat(64)}.example`)).toThrow(/bad label/);
    expect(() => encodeName(Array(50).fill('abcdef').join('.'))).toThrow(/255/);
    expect(encodeName('.')).toEqual(Buffer.from([0]));
  });

  it('decodes answers of every supported type, following compression pointers', () => {
    const mx = Buffer.concat([u16(10), Buffer.from([4]), Buffer.from('mail'), Buffer.from([0xc0, 12])]);
    const srv = Buffer.concat([u16(1), u16(2), u16(443), Buffer.from([0xc0, 12])]);
    const soa = Buffer.concat([Buffer.from([2]), Buffer.from('ns'), Buffer.from([0xc0, 12]), Buffer.from([0xc0, 12]), ...[1, 2, 3, 4, 5].map((n) => Buffer.from([0, 0, 0, n]))]);
    const txt = Buffer.from([5, ...Buffer.from('hello'), 6, ...Buffer.from(' world')]);
    const aaaa = Buffer.from('20010db8000000000000000000000035', 'hex');
    const m = decodeMessage(
      reply([
        rr(QTYPES.A, Buffer.from([192, 0, 2, 53])),
        rr(QTYPES.AAAA, aaaa),
        rr(QTYPES.CNAME, Buffer.from([0xc0, 12])),
        rr(QTYPES.MX, mx),
        rr(QTYPES.SRV, srv),
        rr(QTYPES.SOA, soa),
        rr(QTYPES.TXT, txt),
        rr(99, Buffer.from([1, 2])),
      ]),
    );
    expect(m.id).toBe(0x1234);
    expect([m.response, m.truncated, rcodeName(m.rcode)]).toEqual([true, false, 'NOERROR']);
    expect(m.questions).toEqual([{ name: 'ok.example', type: 1, class: 1 }]);
    expect(m.answers.map((a) => a.data)).toEqual([
      '192.0.2.53',
      '2001:db8::35',
      'ok.example',
      '10 mail.ok.example',
      '1 2 443 ok.example',
      'ns.ok.example ok.example 1 2 3 4 5',
      'hello world',
      '\\# 2 0102',
    ]);
    expect(m.answers[0]).toMatchObject({ name: 'ok.example', type: 1, class: 1, ttl: 60 });
  });

  it('reads the rcode and the truncation flag', () => {
    const m = decodeMessage(reply([], { flags: 0x8383 }));
    expect([rcodeName(m.rcode), m.truncated]).toEqual(['NXDOMAIN', true]);
    expect(rcodeName(9)).toBe('RCODE9');
  });

  const malformed: Array<[string, Buffer, RegExp]> = [
    ['a message shorter than a header', Buffer.from([0x12, 0x34, 0x81]), /shorter than a header/],
    ['an RDLENGTH past the end of the message', reply([rr(QTYPES.A, Buffer.from([192, 0, 2, 53]), 200)]), /record data of 200 bytes runs past the end/],
    ['an A record of 5 bytes', reply([rr(QTYPES.A, Buffer.from([192, 0, 2, 53, 1]))]), /record length 5, expected 4/],
    ['more answers counted than present', reply([rr(QTYPES.A, Buffer.from([192, 0, 2, 53]))], { an: 3 }), /runs past the end/],
    ['a label past the end', Buffer.concat([reply([]).subarray(0, 12), Buffer.from([40, 0x61, 0x62])]), /label runs past the end/],
    ['a pointer to itself', Buffer.concat([reply([]).subarray(0, 12), Buffer.from([0xc0, 12])]), /does not point backwards/],
    ['a pointer loop between two names', reply([Buffer.concat([Buffer.from([0xc0, 29]), Buffer.from([0xc0, 28])])]), /does not point backwards/],
    ['a forward pointer in RDATA', reply([rr(QTYPES.CNAME, Buffer.from([0xc0, 200]))]), /does not point backwards/],
    ['a name in RDATA longer than its record', reply([rr(QTYPES.CNAME, Buffer.from([3, 0x61, 0x62, 0x63, 0]), 2)]), /runs past its record/],
    ['a TXT string longer than its record', reply([rr(QTYPES.TXT, Buffer.from([9, 0x61]))]), /TXT string runs past its record/],
    ['a reserved label type', Buffer.concat([reply([]).subarray(0, 12), Buffer.from([0x40, 0])]), /unsupported label type/],
  ];
  it.each(malformed)('rejects %s with a DnsFormatError', (_what, buf, re) => {
    expect(() => decodeMessage(buf)).toThrow(DnsFormatError);
    expect(() => decodeMessage(buf)).toThrow(re);
  });

  it('rejects a name longer than 255 bytes built from pointers to earlier names', () => {
    // Five questions, each a 63-byte label followed by a pointer to the previous question's name.
    const parts: Buffer[] = [Buffer.concat([u16(1), u16(0x8180), u16(5), u16(0), u16(0), u16(0)])];
    let prev = -1;
    let off = 12;
    for (let i = 0; i < 5; i++) {
      const name = Buffer.concat([Buffer.from([63]), Buffer.alloc(63, 0x61), prev < 0 ? Buffer.from([0]) : Buffer.from([0xc0, prev])]);
      parts.push(name, u16(1), u16(1));
      prev = off;
      off += name.length + 4;
    }
    expect(() => decodeMessage(Buffer.concat(parts))).toThrow(/longer than 255 bytes/);
  });
});
