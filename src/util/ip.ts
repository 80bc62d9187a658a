/** Address arithmetic for prefix membership and canonical forms (pure). */
import { isIP } from 'node:net';

function v4ToBig(a: string): bigint {
  return a.split('.').reduce((acc, p) => (acc << 8n) | BigInt(Number(p)), 0n);
}

function v6ToBig(a: string): bigint {
  let s = a.toLowerCase();
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  // An embedded IPv4 tail (::ffff:192.0.2.1) becomes two hex groups.
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (tail?.[1]) {
    const n = v4ToBig(tail[1]);
    s = `${s.slice(0, -tail[1].length)}${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head = '', rest] = s.split('::');
  const h = head ? head.split(':') : [];
  const t = rest !== undefined && rest !== '' ? rest.split(':') : [];
  const groups = rest === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

export function addressToBigInt(a: string): bigint {
  return isIP(a) === 6 ? v6ToBig(a) : v4ToBig(a);
}

/** True when `addr` lies inside `prefix` (`198.51.100.0/24`); families must match. */
export function inPrefix(addr: string, prefix: string): boolean {
  const [net, lenStr] = prefix.split('/');
  if (net === undefined || lenStr === undefined) return false;
  const fam = isIP(addr);
  if (fam === 0 || fam !== isIP(net)) return false;
  const bits = fam === 4 ? 32 : 128;
  // Also called on prefixes that failed validation (cross-field rules run after field errors).
  if (!/^\d{1,3}$/.test(lenStr) || Number(lenStr) > bits) return false;
  const shift = BigInt(bits - Number(lenStr));
  return addressToBigInt(addr) >> shift === addressToBigInt(net) >> shift;
}

/** Canonical text of an address, so that `2001:DB8::0:1` and `2001:db8::1` compare equal. */
export function canonicalAddress(a: string): string {
  // Without a colon it cannot be IPv6: no parse (this runs for each of 200,000 realservers).
  if (!a.includes(':') || isIP(a) !== 6) return a;
  let n = v6ToBig(a);
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) {
    groups.unshift((n & 0xffffn).toString(16));
    n >>= 16n;
  }
  // Compress the longest run of zero groups (RFC 5952).
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}
