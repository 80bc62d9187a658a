/**
 * Minimal DNS wire format (RFC 1035): encode one query, decode a reply's header, question and
 * answer section. Every length and pointer is checked against the message, so a malformed
 * reply raises DnsFormatError instead of reading out of bounds or looping.
 */
import { canonicalAddress } from '../../util/ip.js';

export const QTYPES = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33 } as const;

const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];

export function rcodeName(rcode: number): string {
  return RCODES[rcode] ?? `RCODE${rcode}`;
}

export class DnsFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DnsFormatError';
  }
}

export interface DnsQuestion {
  name: string;
  type: number;
  class: number;
}

export interface DnsRecord extends DnsQuestion {
  ttl: number;
  /** Presentation form: `192.0.2.1`, `10 mail.example`, TXT strings joined. */
  data: string;
}

export interface DnsMessage {
  id: number;
  response: boolean;
  truncated: boolean;
  rcode: number;
  questions: DnsQuestion[];
  answers: DnsRecord[];
}

/** `www.example.` → length-prefixed labels; throws on an empty or oversized label or name. */
export function encodeName(name: string): Buffer {
  const trimmed = name.endsWith('.') ? name.slice(0, -1) : name;
  const parts: Buffer[] = [];
  if (trimmed !== '') {
    for (const label of trimmed.split('.')) {
      const b = Buffer.from(label, 'utf8');
      if (b.length === 0 || b.length > 63) throw new Error(`bad label in DNS name ${JSON.stringify(name)}`);
      parts.push(Buffer.from([b.length]), b);
    }
  }
  parts.push(Buffer.from([0]));
  const out = Buffer.concat(parts);
  if (out.length > 255) throw new Error(`DNS name longer than 255 bytes: ${JSON.stringify(name)}`);
  return out;
}

/** A standard query with recursion desired, one question, class IN. */
export function encodeQuery(id: number, name: string, qtype: number): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2);
  header.writeUInt16BE(1, 4);
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(qtype, 0);
  tail.writeUInt16BE(1, 2);
  return Buffer.concat([header, encodeName(name), tail]);
}

class Reader {
  constructor(private readonly buf: Buffer) {}

  need(off: number, n: number, what: string): void {
    if (off < 0 || off + n > this.buf.length) throw new DnsFormatError(`${what} runs past the end of the message`);
  }

  u8(off: number, what: string): number {
    this.need(off, 1, what);
    return this.buf.readUInt8(off);
  }

  u16(off: number, what: string): number {
    this.need(off, 2, what);
    return this.buf.readUInt16BE(off);
  }

  u32(off: number, what: string): number {
    this.need(off, 4, what);
    return this.buf.readUInt32BE(off);
  }

  bytes(off: number, n: number, what: string): Buffer {
    this.need(off, n, what);
    return this.buf.subarray(off, off + n);
  }

  /** A possibly compressed name at `off`; `next` is the offset after it in place. */
  name(off: number): { name: string; next: number } {
    const labels: string[] = [];
    let pos = off;
    let next = -1;
    let total = 1;
    // Each pointer must point before where this name (or the last jump) began: no loops.
    let limit = off;
    for (;;) {
      const len = this.u8(pos, 'name');
      if ((len & 0xc0) === 0xc0) {
        const ptr = ((len & 0x3f) << 8) | this.u8(pos + 1, 'name pointer');
        if (next < 0) next = pos + 2;
        if (ptr >= limit) throw new DnsFormatError('name pointer does not point backwards');
        pos = limit = ptr;
        continue;
      }
      if (len & 0xc0) throw new DnsFormatError('unsupported label type');
      if (len === 0) break;
      total += len + 1;
      if (total > 255) throw new DnsFormatError('name longer than 255 bytes');
      labels.push(this.bytes(pos + 1, len, 'label').toString('latin1'));
      pos += len + 1;
    }
    return { name: labels.join('.'), next: next >= 0 ? next : pos + 1 };
  }
}

function ipv6Text(b: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  return canonicalAddress(groups.join(':'));
}

/** RDATA in presentation form; names inside must end within the RDATA. */
function rdataText(r: Reader, type: number, off: number, len: number): string {
  const end = off + len;
  const nameIn = (at: number): { name: string; next: number } => {
    const n = r.name(at);
    if (n.next > end) throw new DnsFormatError('name runs past its record');
    return n;
  };
  const exact = (want: number): void => {
    if (len !== want) throw new DnsFormatError(`record length ${len}, expected ${want}`);
  };
  switch (type) {
    case QTYPES.A:
      exact(4);
      return [...r.bytes(off, 4, 'A record')].join('.');
    case QTYPES.AAAA:
      exact(16);
      return ipv6Text(r.bytes(off, 16, 'AAAA record'));
    case QTYPES.CNAME:
    case QTYPES.NS:
    case QTYPES.PTR:
      return nameIn(off).name;
    case QTYPES.MX: {
      const pref = r.u16(off, 'MX preference');
      return `${pref} ${nameIn(off + 2).name}`;
    }
    case QTYPES.SRV: {
      const head = [r.u16(off, 'SRV'), r.u16(off + 2, 'SRV'), r.u16(off + 4, 'SRV')];
      return `${head.join(' ')} ${nameIn(off + 6).name}`;
    }
    case QTYPES.SOA: {
      const m = nameIn(off);
      const rn = nameIn(m.next);
      if (rn.next + 20 !== end) throw new DnsFormatError('SOA record has the wrong length');
      const nums = [0, 4, 8, 12, 16].map((i) => r.u32(rn.next + i, 'SOA'));
      return `${m.name} ${rn.name} ${nums.join(' ')}`;
    }
    case QTYPES.TXT: {
      const strings: string[] = [];
      for (let p = off; p < end; ) {
        const n = r.u8(p, 'TXT string');
        if (p + 1 + n > end) throw new DnsFormatError('TXT string runs past its record');
        strings.push(r.bytes(p + 1, n, 'TXT string').toString('utf8'));
        p += 1 + n;
      }
      return strings.join('');
    }
    default:
      // RFC 3597 form for types this checker has no reason to understand.
      return `\\# ${len} ${r.bytes(off, len, 'record').toString('hex')}`;
  }
}

/** Decodes header, questions and answers; authority and additional sections are not read. */
export function decodeMessage(buf: Buffer): DnsMessage {
  if (buf.length < 12) throw new DnsFormatError(`message of ${buf.length} bytes is shorter than a header`);
  const r = new Reader(buf);
  const flags = buf.readUInt16BE(2);
  const qd = buf.readUInt16BE(4);
  const an = buf.readUInt16BE(6);
  let off = 12;
  const questions: DnsQuestion[] = [];
  for (let i = 0; i < qd; i++) {
    const n = r.name(off);
    questions.push({ name: n.name, type: r.u16(n.next, 'question'), class: r.u16(n.next + 2, 'question') });
    off = n.next + 4;
  }
  const answers: DnsRecord[] = [];
  for (let i = 0; i < an; i++) {
    const n = r.name(off);
    const type = r.u16(n.next, 'record header');
    const cls = r.u16(n.next + 2, 'record header');
    const ttl = r.u32(n.next + 4, 'record header');
    const len = r.u16(n.next + 8, 'record header');
    const data = n.next + 10;
    r.need(data, len, `record data of ${len} bytes`);
    answers.push({ name: n.name, type, class: cls, ttl, data: rdataText(r, type, data, len) });
    off = data + len;
  }
  return { id: buf.readUInt16BE(0), response: (flags & 0x8000) !== 0, truncated: (flags & 0x0200) !== 0, rcode: flags & 0x0f, questions, answers };
}
