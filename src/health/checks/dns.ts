/**
 * DNS check: one query over UDP or TCP, up when the rcode is the expected one and, if
 * configured, an answer of the queried type equals `expectAnswer`.
 */
import { randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { connect, isIP } from 'node:net';
import type { CheckConfig } from '../../config/schema.js';
import { canonicalAddress } from '../../util/ip.js';
import type { Checker, CheckOutcome, Target } from '../types.js';
import { attempt, errorReason, fail } from './common.js';
import { decodeMessage, encodeQuery, QTYPES, rcodeName, type DnsMessage } from './dns-wire.js';

type DnsCheckConfig = Extract<CheckConfig, { type: 'dns' }>;

/** A DNS message over TCP is at most 65535 bytes after its length prefix. */
const TCP_LIMIT = 2 + 65535;

/** Case, trailing dots and spacing do not matter; addresses compare in canonical form. */
function normalise(s: string): string {
  const t = s.trim();
  if (isIP(t)) return canonicalAddress(t).toLowerCase();
  return t
    .split(/\s+/)
    .map((w) => w.replace(/\.$/, '').toLowerCase())
    .join(' ');
}

export class DnsChecker implements Checker {
  private readonly qtype: number;
  private readonly expected?: string;
  /** The query with ID 0; each run copies it and sets a fresh ID. Throws here on a bad name. */
  private readonly template: Buffer;

  constructor(private readonly cfg: DnsCheckConfig) {
    this.qtype = QTYPES[cfg.qtype];
    this.template = encodeQuery(0, cfg.query, this.qtype);
    if (cfg.expectAnswer !== undefined) this.expected = normalise(cfg.expectAnswer);
  }

  run(target: Target, signal: AbortSignal): Promise<CheckOutcome> {
    const id = randomInt(0, 65536);
    const query = Buffer.from(this.template);
    query.writeUInt16BE(id, 0);
    return this.cfg.transport === 'tcp' ? this.overTcp(target, signal, id, query) : this.overUdp(target, signal, id, query);
  }

  private overUdp(target: Target, signal: AbortSignal, id: number, query: Buffer): Promise<CheckOutcome> {
    return attempt(signal, (done) => {
      const sock = createSocket(isIP(target.address) === 6 ? 'udp6' : 'udp4');
      sock.on('error', (e) => done(fail(errorReason(e))));
      sock.on('message', (msg) => {
        // Not ours (a late reply to an earlier query): keep waiting for the right one.
        if (msg.length >= 2 && msg.readUInt16BE(0) !== id) return;
        done(this.judge(msg, id));
      });
      sock.connect(target.port, target.address, () => sock.send(query));
      return () => {
        try {
          sock.close();
        } catch {
          // already closed by an error
        }
      };
    });
  }

  private overTcp(target: Target, signal: AbortSignal, id: number, query: Buffer): Promise<CheckOutcome> {
    return attempt(signal, (done) => {
      const sock = connect({ host: target.address, port: target.port });
      const prefix = Buffer.alloc(2);
      prefix.writeUInt16BE(query.length);
      sock.on('connect', () => sock.write(Buffer.concat([prefix, query])));
      sock.on('error', (e) => done(fail(errorReason(e))));
      const chunks: Buffer[] = [];
      let len = 0;
      sock.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        len += chunk.length;
        if (len < 2) return;
        const all = Buffer.concat(chunks, Math.min(len, TCP_LIMIT));
        const want = 2 + all.readUInt16BE(0);
        if (all.length >= want) done(this.judge(all.subarray(2, want), id));
      });
      sock.on('end', () => done(fail(`DNS: connection closed after ${len} bytes`)));
      return () => sock.destroy();
    });
  }

  private judge(msg: Buffer, id: number): CheckOutcome {
    let m: DnsMessage;
    try {
      m = decodeMessage(msg);
    } catch (e) {
      return fail(`DNS: malformed reply (${(e as Error).message})`);
    }
    if (m.id !== id || !m.response) return fail('DNS: reply does not answer the query');
    const q = m.questions[0];
    if (m.questions.length > 1 || (q && (q.type !== this.qtype || normalise(q.name) !== normalise(this.cfg.query)))) {
      return fail('DNS: reply is for a different question');
    }
    const rcode = rcodeName(m.rcode);
    if (rcode !== this.cfg.expectRcode) return fail(`DNS ${rcode} (expected ${this.cfg.expectRcode})`);
    const answers = m.answers.filter((a) => a.type === this.qtype).map((a) => a.data);
    const shown = answers.length ? answers.slice(0, 3).join(', ') + (answers.length > 3 ? ', …' : '') : 'no answer';
    if (this.expected !== undefined && !answers.some((a) => normalise(a) === this.expected)) {
      return fail(`DNS ${rcode}, ${shown} (expected ${this.cfg.expectAnswer ?? ''})`);
    }
    return { ok: true, reason: `DNS ${rcode}, ${shown}` };
  }
}
