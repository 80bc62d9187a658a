/**
 * UDP check: send a payload, expect a reply (matching a pattern, when one is configured).
 * The socket is connected, so an ICMP port unreachable surfaces as ECONNREFUSED at once
 * instead of as a timeout.
 */
import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { CheckConfig } from '../../config/schema.js';
import type { Checker, CheckOutcome, Target } from '../types.js';
import { attempt, errorReason, excerpt, fail } from './common.js';

type UdpCheckConfig = Extract<CheckConfig, { type: 'udp' }>;

/** `hex:0a0b` is binary; anything else is sent as UTF-8 text. */
export function parsePayload(payload: string): Buffer {
  if (!payload.startsWith('hex:')) return Buffer.from(payload, 'utf8');
  const hex = payload.slice(4).replace(/\s+/g, '');
  if (!/^([0-9a-fA-F]{2})*$/.test(hex)) throw new Error(`payload ${excerpt(payload)} is not hex`);
  return Buffer.from(hex, 'hex');
}

export class UdpChecker implements Checker {
  private readonly payload: Buffer;
  private readonly expect?: RegExp;

  constructor(cfg: UdpCheckConfig) {
    this.payload = parsePayload(cfg.payload);
    if (cfg.expect !== undefined) this.expect = new RegExp(cfg.expect);
  }

  run(target: Target, signal: AbortSignal): Promise<CheckOutcome> {
    return attempt(signal, (done) => {
      const sock = createSocket(isIPv6(target.address) ? 'udp6' : 'udp4');
      sock.on('error', (e) => done(fail(errorReason(e))));
      sock.on('message', (msg) => {
        // latin1 maps bytes 1:1 to characters, so a pattern can match binary replies (\x00).
        const text = msg.toString('latin1');
        if (!this.expect || this.expect.test(text)) done({ ok: true, reason: `reply ${msg.length} bytes` });
        else done(fail(`reply ${excerpt(text)} does not match /${this.expect.source}/`));
      });
      sock.connect(target.port, target.address, () => sock.send(this.payload));
      return () => {
        try {
          sock.close();
        } catch {
          // already closed by an error
        }
      };
    });
  }
}
