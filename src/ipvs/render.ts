/**
 * Operations → `ipvsadm -R` restore lines, and conntrack arguments for UDP flushes (pure).
 * Every line states all attributes: ipvsadm fills anything left out with its defaults (wlc,
 * direct routing, no persistence, thresholds 0), so an `-E`/`-e` that omitted one would reset it.
 */
import { flagNames, hostPort, type Dest, type ServiceKey, type ServiceSpec } from './model.js';
import type { Op } from './plan.js';

const FWD_SWITCH = { dr: '-g', tunnel: '-i', nat: '-m' } as const;

/** The virtual-service part of an ipvsadm command line. */
export function serviceArgs(key: ServiceKey): string[] {
  if (key.kind === 'fwmark') return key.family === 6 ? ['-f', String(key.fwmark), '-6'] : ['-f', String(key.fwmark)];
  const flag = key.protocol === 'tcp' ? '-t' : key.protocol === 'udp' ? '-u' : '--sctp-service';
  return [flag, hostPort(key.address, key.port)];
}

function serviceLine(cmd: '-A' | '-E', s: ServiceSpec): string {
  const parts = [cmd, ...serviceArgs(s.key), '-s', s.scheduler];
  if (s.persistence) parts.push('-p', String(s.persistence.timeout), '-M', s.persistence.netmask);
  if (s.onePacket) parts.push('-o');
  if (s.flags) parts.push('-b', flagNames(s.flags, s.scheduler).join(','));
  return parts.join(' ');
}

function destLine(cmd: '-a' | '-e', s: ServiceSpec, d: Dest): string {
  const parts = [cmd, ...serviceArgs(s.key), '-r', hostPort(d.address, d.port), FWD_SWITCH[d.fwd], '-w', String(d.weight)];
  if (d.upper) parts.push('-x', String(d.upper));
  if (d.lower) parts.push('-y', String(d.lower));
  return parts.join(' ');
}

/** The ipvsadm restore line of a kernel op; undefined for ops that are not ipvsadm's (conntrack). */
export function renderOp(op: Op): string | undefined {
  switch (op.kind) {
    case 'add-service':
      return serviceLine('-A', op.svc);
    case 'edit-service':
      return serviceLine('-E', op.svc);
    case 'del-service':
      return ['-D', ...serviceArgs(op.svc.key)].join(' ');
    case 'add-dest':
      return destLine('-a', op.svc, op.dest);
    case 'edit-dest':
      return destLine('-e', op.svc, op.dest);
    case 'del-dest':
      return ['-d', ...serviceArgs(op.svc.key), '-r', hostPort(op.dest.address, op.dest.port)].join(' ');
    case 'flush-conntrack':
      return undefined;
  }
}

/** Restore lines of all ipvsadm ops, in order. */
export function renderScript(ops: readonly Op[]): string[] {
  const lines: string[] = [];
  for (const op of ops) {
    const l = renderOp(op);
    if (l !== undefined) lines.push(l);
  }
  return lines;
}

/**
 * `conntrack -D` arguments for a flush op: the UDP flows to the service whose replies come from
 * the removed NAT destination (or all flows to a removed service). Undefined for services
 * without an address (firewall marks), whose flows cannot be told apart.
 */
export function conntrackArgs(op: Op): string[] | undefined {
  if (op.kind !== 'flush-conntrack' || op.svc.key.kind !== 'addr') return undefined;
  const k = op.svc.key;
  const args = ['-D', '-f', k.family === 6 ? 'ipv6' : 'ipv4', '-p', 'udp', '--orig-dst', k.address, '--orig-port-dst', String(k.port)];
  if (op.dest) args.push('--reply-src', op.dest.address, '--reply-port-src', String(op.dest.port));
  return args;
}
