/** Small value types shared by the config schema: durations, addresses, prefixes, communities. */
import { isIP } from 'node:net';
import { z } from 'zod';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses `250ms`, `2s`, `1.5m`, `1h` or a bare number of milliseconds. */
export function parseDuration(v: string | number): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? v : undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(v);
  if (!m) return undefined;
  return Math.round(Number(m[1]) * (UNITS[m[2] ?? 'ms'] ?? 1));
}

/** A duration in config (`"2s"`, `"500ms"` or milliseconds); parsed to milliseconds. */
export const duration = (min = 0, max = 86_400_000) =>
  z.union([z.number(), z.string()]).transform((v, ctx) => {
    const ms = parseDuration(v);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `not a duration (use e.g. 500ms, 2s, 5m): ${JSON.stringify(v)}` });
      return z.NEVER;
    }
    if (ms < min || ms > max) {
      ctx.addIssue({ code: 'custom', message: `duration ${ms} ms out of range ${min}..${max} ms` });
      return z.NEVER;
    }
    return ms;
  });

export const ipAddress = z.string().refine((s) => isIP(s) !== 0, 'not an IPv4 or IPv6 address');
export const ipv4Address = z.string().refine((s) => isIP(s) === 4, 'not an IPv4 address');
export const ipv6Address = z.string().refine((s) => isIP(s) === 6, 'not an IPv6 address');

export function ipFamily(addr: string): 4 | 6 {
  return isIP(addr) === 6 ? 6 : 4;
}

/** Parses `198.51.100.0/24` or `2001:db8::/64`; undefined when malformed. */
export function parsePrefix(s: string): { address: string; length: number; family: 4 | 6 } | undefined {
  const [addr, len, ...rest] = s.split('/');
  if (rest.length || addr === undefined || len === undefined || !/^\d+$/.test(len)) return undefined;
  const fam = isIP(addr);
  const n = Number(len);
  if (fam === 0 || n > (fam === 4 ? 32 : 128)) return undefined;
  return { address: addr, length: n, family: fam === 4 ? 4 : 6 };
}

export const prefix = z.string().refine((s) => parsePrefix(s) !== undefined, 'not a prefix like 198.51.100.0/24 or 2001:db8::/64');

export const port = z.number().int().min(1).max(65535);

/** 4-byte ASNs are allowed; 0 and 65535/4294967295 (reserved) are not. */
export const asn = z
  .number()
  .int('ASN must be an integer')
  .min(1, 'ASN must be 1..4294967294')
  .max(4294967294, 'ASN must be 1..4294967294')
  .refine((n) => n !== 65535 && n !== 23456, 'ASN 65535 and 23456 are reserved');

/** Standard community `ASN:VALUE` (16-bit each), kept as the 32-bit number gobgpd takes. */
export const community = z.string().transform((s, ctx) => {
  const m = /^(\d+):(\d+)$/.exec(s);
  const hi = m ? Number(m[1]) : NaN;
  const lo = m ? Number(m[2]) : NaN;
  if (!m || hi > 65535 || lo > 65535) {
    ctx.addIssue({ code: 'custom', message: `not a community ASN:VALUE with 16-bit parts: ${JSON.stringify(s)}` });
    return z.NEVER;
  }
  return hi * 65536 + lo;
});

/** Large community `GLOBAL:LOCAL1:LOCAL2` (32-bit each). */
export const largeCommunity = z.string().transform((s, ctx) => {
  const m = /^(\d+):(\d+):(\d+)$/.exec(s);
  const parts = m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [];
  if (!m || parts.some((p) => p > 4294967295)) {
    ctx.addIssue({ code: 'custom', message: `not a large community GLOBAL:LOCAL1:LOCAL2 with 32-bit parts: ${JSON.stringify(s)}` });
    return z.NEVER;
  }
  const [globalAdmin, localData1, localData2] = parts as [number, number, number];
  return { globalAdmin, localData1, localData2 };
});

/** `60%` or a fraction 0..1, parsed to a fraction. */
export const fraction = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const n = typeof v === 'number' ? v : /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.test(v) ? Number.parseFloat(v) / 100 : NaN;
  if (!(n >= 0 && n <= 1)) {
    ctx.addIssue({ code: 'custom', message: `not a fraction 0..1 or a percentage like 50%: ${JSON.stringify(v)}` });
    return z.NEVER;
  }
  return n;
});
