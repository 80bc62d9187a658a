/**
 * HTTP and HTTPS checks: method, path, Host header, expected status codes or ranges, an
 * optional regular expression over the start of the body, TLS SNI and verification.
 * Reads are bounded: headers by the parser limit, the body by BODY_LIMIT, time by the signal.
 */
import http from 'node:http';
import https from 'node:https';
import type { CheckConfig } from '../../config/schema.js';
import type { Checker, CheckOutcome, Target } from '../types.js';
import { attempt, errorReason, fail } from './common.js';

type HttpCheckConfig = Extract<CheckConfig, { type: 'http' | 'https' }>;

/** The body regular expression sees at most this much of the body. */
const BODY_LIMIT = 64 * 1024;
const HEADER_LIMIT = 16 * 1024;

/** `[200, '300-399']` → [[200, 200], [300, 399]]. */
export function parseStatusRanges(expect: ReadonlyArray<number | string>): Array<readonly [number, number]> {
  return expect.map((e) => {
    if (typeof e === 'number') return [e, e] as const;
    const [lo, hi = lo] = e.split('-').map(Number);
    return [lo ?? 0, hi ?? 0] as const;
  });
}

/**
 * `TLS: certificate has expired`. OpenSSL failures give their short reason instead of the whole
 * error line: as `reason`, or inside the message of an EPROTO error (`...:ssl3_get_record:wrong
 * version number:...`).
 */
function tlsReason(e: Error): string {
  const { syscall, library, reason } = e as Error & { syscall?: string; library?: string; reason?: string };
  if (library && reason) return `TLS: ${reason}`;
  const openssl = /:error:[0-9A-Fa-f]+:[^:]*:[^:]*:([^:]+)/.exec(e.message);
  if (openssl) return `TLS: ${openssl[1]}`;
  if (syscall) return errorReason(e);
  return `TLS: ${e.message}`;
}

function httpErrorReason(e: Error): string {
  const code = (e as NodeJS.ErrnoException).code;
  return code?.startsWith('HPE_') ? `HTTP: bad response (${code})` : errorReason(e);
}

export class HttpChecker implements Checker {
  private readonly ranges: Array<readonly [number, number]>;
  private readonly body?: RegExp;

  constructor(private readonly cfg: HttpCheckConfig) {
    this.ranges = parseStatusRanges(cfg.expectStatus);
    if (cfg.expectBody !== undefined) this.body = new RegExp(cfg.expectBody);
  }

  run(target: Target, signal: AbortSignal): Promise<CheckOutcome> {
    const cfg = this.cfg;
    const tls = cfg.type === 'https';
    const options: https.RequestOptions = {
      host: target.address,
      port: target.port,
      method: cfg.method,
      path: cfg.path,
      // No pooling: every check is a fresh connection, closed when the check ends.
      agent: false,
      maxHeaderSize: HEADER_LIMIT,
      headers: { 'user-agent': 'vipd-health', accept: '*/*', connection: 'close', ...(cfg.host ? { host: cfg.host } : {}) },
    };
    if (cfg.type === 'https') {
      // Without `sni`, node derives SNI and the verified name from the Host header (none for an IP).
      if (cfg.sni !== undefined) options.servername = cfg.sni;
      options.rejectUnauthorized = cfg.verifyTls;
    }
    return attempt(signal, (done) => {
      const req = (tls ? https : http).request(options);
      let phase: 'connect' | 'tls' | 'http' = 'connect';
      req.on('socket', (s) => {
        s.once('connect', () => {
          if (phase === 'connect') phase = tls ? 'tls' : 'http';
        });
        if (tls) s.once('secureConnect', () => (phase = 'http'));
      });
      req.on('error', (e) => done(fail(phase === 'tls' ? tlsReason(e) : httpErrorReason(e))));
      req.on('response', (res) => {
        const status = res.statusCode ?? 0;
        const head = `HTTP ${status}`;
        if (!this.ranges.some(([lo, hi]) => status >= lo && status <= hi)) return done(fail(head));
        const re = this.body;
        if (!re) return done({ ok: true, reason: head });
        const chunks: Buffer[] = [];
        let len = 0;
        const judge = (): void => {
          const text = Buffer.concat(chunks, len).toString('utf8');
          done(re.test(text) ? { ok: true, reason: head } : fail(`${head}, body does not match /${re.source}/`));
        };
        res.on('data', (chunk: Buffer) => {
          const take = Math.min(chunk.length, BODY_LIMIT - len);
          chunks.push(take < chunk.length ? chunk.subarray(0, take) : chunk);
          len += take;
          if (len >= BODY_LIMIT) judge();
        });
        res.on('end', judge);
        res.on('error', (e) => done(fail(`${head}, body ${errorReason(e)}`)));
      });
      req.end();
      return () => req.destroy();
    });
  }
}
