/**
 * Wire format of ownership adverts (pure). One UDP datagram is compact JSON:
 * `{"v":1,"id":"192.0.2.11","b":BOOT,"s":SEQ,"e":[["198.51.100.1",PRIORITY,FLAGS],...]}` with FLAGS
 * bit 1 preempt, 2 eligible, 4 owner. Many VIPs are split over several datagrams of at most
 * `perDatagram` entries, each with its own sequence number, so none needs IP fragmentation.
 * With a shared secret every datagram starts with its 32-byte HMAC-SHA256.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import type { Advert, AdvertEntry } from './ownership.js';

const VERSION = 1;
const MAC_BYTES = 32;
const PREEMPT = 1;
const ELIGIBLE = 2;
const OWNER = 4;

function mac(secret: string, body: Buffer): Buffer {
  return createHmac('sha256', secret).update(body).digest();
}

export function encodeAdverts(
  header: { id: string; boot: number },
  firstSeq: number,
  entries: readonly AdvertEntry[],
  secret?: string,
  perDatagram = 16,
): { datagrams: Buffer[]; nextSeq: number } {
  const datagrams: Buffer[] = [];
  let seq = firstSeq;
  // An advert with no VIP still says "alive", so there is always at least one datagram.
  for (let i = 0; i === 0 || i < entries.length; i += perDatagram) {
    const e = entries.slice(i, i + perDatagram).map((x) => [x.address, x.priority, (x.preempt ? PREEMPT : 0) | (x.eligible ? ELIGIBLE : 0) | (x.owner ? OWNER : 0)]);
    const body = Buffer.from(JSON.stringify({ v: VERSION, id: header.id, b: header.boot, s: seq++, e }));
    datagrams.push(secret ? Buffer.concat([mac(secret, body), body]) : body);
  }
  return { datagrams, nextSeq: seq };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

/** Parses and authenticates one datagram; the reason when it is refused. */
export function decodeAdvert(buf: Buffer, secret?: string): Advert | { error: string } {
  let body = buf;
  if (secret) {
    if (buf.length <= MAC_BYTES) return { error: 'short' };
    body = buf.subarray(MAC_BYTES);
    if (!timingSafeEqual(buf.subarray(0, MAC_BYTES), mac(secret, body))) return { error: 'bad-mac' };
  }
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    return { error: secret ? 'malformed' : 'malformed (signed by a peer with a secret?)' };
  }
  if (!isRecord(doc) || doc.v !== VERSION) return { error: 'version' };
  const { id, b, s, e } = doc;
  if (typeof id !== 'string' || typeof b !== 'number' || typeof s !== 'number' || !Array.isArray(e)) return { error: 'malformed' };
  const entries: AdvertEntry[] = [];
  for (const x of e) {
    if (!Array.isArray(x) || typeof x[0] !== 'string' || isIP(x[0]) === 0 || typeof x[1] !== 'number' || typeof x[2] !== 'number') {
      return { error: 'malformed entry' };
    }
    const flags = x[2];
    entries.push({ address: x[0], priority: x[1], preempt: (flags & PREEMPT) !== 0, eligible: (flags & ELIGIBLE) !== 0, owner: (flags & OWNER) !== 0 });
  }
  return { id, boot: b, seq: s, entries };
}
