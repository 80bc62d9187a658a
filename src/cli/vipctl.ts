/**
 * `vipctl`: the local operator CLI, talking to vipd's status socket.
 * Exit codes: 0 ok; 1 the answer is "no" (invalid config, refused request);
 * 2 usage error; 3 vipd unreachable.
 */
import { Command, Option } from 'commander';
import { checkConfigFiles, printCheckReport } from '../config/check.js';
import type { EventsReport, PeerView, PlanReport, ReloadReport, ServiceView, StatusReport } from '../coordinator/api.js';
import type { JournalEvent } from '../coordinator/journal.js';
import { VERSION } from '../version.js';
import { DaemonError, DaemonUnreachable, follow, request } from './client.js';
import { table } from './table.js';

const DEFAULT_SOCKET = '/run/vipd/vipd.sock';

const program = new Command('vipctl')
  .description('inspect and steer the local vipd')
  .version(VERSION)
  .addOption(new Option('-s, --socket <path>', 'vipd status socket').env('VIPCTL_SOCKET').default(DEFAULT_SOCKET))
  .showHelpAfterError()
  .exitOverride((err) => {
    // commander's own exits: help and version are success, anything else is a usage error.
    process.exit(err.code === 'commander.helpDisplayed' || err.code === 'commander.version' ? 0 : 2);
  });

const socket = (): string => program.opts<{ socket: string }>().socket;
const out = (s: string): void => void process.stdout.write(`${s}\n`);
const json = (v: unknown): void => out(JSON.stringify(v, null, 2));

function age(s: number | null): string {
  if (s === null) return '-';
  if (s < 120) return `${Math.round(s)}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}

function rate(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(Math.round(n));
}

function peersTable(peers: PeerView[]): string {
  return table(
    ['PEER', 'ASN', 'STATE', 'UPTIME', 'ADV', 'RCV', 'LAST ERROR'],
    peers.map((p) => [p.address, p.asn, p.state, age(p.uptimeS), p.advertised, p.received, p.lastError || '-']),
  );
}

function printStatus(s: StatusReport): void {
  const h = s.host;
  out(`node      ${s.node}  vipd ${s.version}  up ${age(s.uptimeS)}  ${s.serving ? 'serving' : 'NOT SERVING'}`);
  if (h) {
    out(`host      load ${h.load1.toFixed(2)}  memory ${h.memUsedPct.toFixed(0)}%`);
    const nics = h.nics.map((n) => `${n.iface} ${n.up ? 'up' : 'DOWN'}${n.speedMbps ? ` ${n.speedMbps}Mb/s` : ''}`).join(', ');
    if (nics) out(`nics      ${nics}`);
  }
  const r = s.config.lastReload;
  out(`config    ${s.config.file} version ${s.config.version}`);
  out(`reload    ${r.at} ${r.ok ? 'ok' : 'REFUSED'}${r.version && r.version !== s.config.version ? ` (version ${r.version})` : ''}`);
  for (const p of r.problems.slice(0, 5)) out(`          ${p}`);
  if (r.atRestart?.length) out(`          at the next restart: ${r.atRestart.join(', ')}`);
  for (const p of s.problems) out(`problem   ${p}`);
  if (s.overrides.drained.length || s.overrides.disabled.length) {
    out(`overrides drained: ${s.overrides.drained.join(', ') || '-'}; disabled: ${s.overrides.disabled.join(', ') || '-'}`);
  }
  out('');
  if (s.peers.length) {
    out(peersTable(s.peers));
    out('');
  }
  out(
    table(
      ['VIP', 'MODE', 'STATE', 'CAP', 'ANNOUNCED', 'WHY'],
      s.vips.map((v) => [v.address, v.mode, v.state, `${v.capacityPct}%`, v.announced ? 'yes' : 'no', v.reason]),
    ),
  );
  out('');
  out(table(['SERVICE', 'HEALTHY'], s.services.map((v) => [v.id, `${v.healthy}/${v.total}`])));
}

function printServices(services: ServiceView[]): void {
  for (const s of services) {
    out(`${s.id}  ${s.scheduler}${s.flags.length ? ` (${s.flags.join(',')})` : ''}  ${s.healthy}/${s.total} healthy`);
    out(
      table(
        ['REALSERVER', 'FWD', 'HEALTH', 'CFG', 'NODE', 'AGENT', 'EFF', 'ACT', 'INACT', 'PPS IN/OUT', 'REASON'],
        s.realservers.map((r) => [
          `${r.address.includes(':') ? `[${r.address}]` : r.address}:${r.port}`,
          r.forwarding,
          r.healthy ? 'up' : 'down',
          r.configuredWeight,
          `${r.nodeWeight}%`,
          `${r.agentWeight}%`,
          r.weight,
          r.activeConns,
          r.inactiveConns,
          `${rate(r.inPps)}/${rate(r.outPps)}`,
          r.reason,
        ]),
      )
        .split('\n')
        .map((l) => `  ${l}`)
        .join('\n'),
    );
    out('');
  }
}

function eventLine(e: JournalEvent): string {
  const f = e.fields ? ` ${Object.entries(e.fields).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ')}` : '';
  return `${e.at} ${e.kind.padEnd(8)} ${e.message}${f}`;
}

function printPlan(p: PlanReport): void {
  if (!p.ok) {
    for (const x of p.problems) out(x);
    return;
  }
  const section = (title: string, lines: string[]): void => {
    out(`${title}: ${lines.length ? '' : 'none'}`);
    for (const l of lines) out(`  ${l}`);
  };
  section('ipvs operations', p.ipvs);
  section('routes announced', p.routes.announce);
  section('routes withdrawn', p.routes.withdraw);
  section('routes changed', p.routes.change);
  section('checks added', p.checks.added);
  section('checks removed', p.checks.removed);
  section('peers added', p.peers.added);
  section('peers removed', p.peers.removed);
  section('peers changed', p.peers.changed);
  section('at the next restart', p.atRestart);
}

type JsonOpt = { json?: boolean };

/** Calls the daemon, prints JSON or text, and maps failures to exit codes. */
function call<T>(method: string, params: (args: string[]) => Record<string, unknown>, text: (v: T) => void) {
  return async (...args: unknown[]): Promise<void> => {
    const positional = args.filter((a): a is string => typeof a === 'string');
    const opts = (args.find((a) => typeof a === 'object' && a !== null && !(a instanceof Command)) ?? {}) as JsonOpt;
    const v = (await request(socket(), method, params(positional), 30_000)) as T;
    if (opts.json) json(v);
    else text(v);
  };
}

program.command('status').description('node, config, peers, VIPs and services on one screen').option('--json', 'JSON output')
  .action(call<StatusReport>('status', () => ({}), printStatus));

program.command('services').description('IPVS view per service, with each realserver').argument('[vip]', 'only this VIP').option('--json', 'JSON output')
  .action(call<ServiceView[]>('services', ([vip]) => (vip ? { vip } : {}), printServices));

program.command('peers').description('BGP peers').option('--json', 'JSON output')
  .action(call<PeerView[]>('peers', () => ({}), (p) => out(peersTable(p))));

program
  .command('events')
  .description('the event journal')
  .option('--since <seq>', 'only events after this sequence number', '0')
  .option('-n, --limit <n>', 'at most this many', '100')
  .option('-f, --follow', 'keep printing new events')
  .option('--json', 'JSON lines output')
  .action(async (opts: { since: string; limit: string; follow?: boolean; json?: boolean }) => {
    const params = { since: Number(opts.since), limit: Number(opts.limit) };
    const print = (e: JournalEvent): void => out(opts.json ? JSON.stringify(e) : eventLine(e));
    if (opts.follow) {
      const ac = new AbortController();
      process.once('SIGINT', () => ac.abort());
      await follow(socket(), 'events', { ...params, follow: true }, (v) => print(v as JournalEvent), ac.signal);
      return;
    }
    const events = (await request(socket(), 'events', params)) as EventsReport;
    if (opts.json) json(events);
    else for (const e of events) print(e);
  });

for (const [name, method, what] of [
  ['drain', 'drain', 'drain a realserver (ADDRESS or ADDRESS:PORT) or a node (NAME): weight 0, kept until undrained'],
  ['undrain', 'undrain', 'undo drain'],
  ['disable', 'disable', 'withdraw a VIP and stop ARPing it until enabled'],
  ['enable', 'enable', 'undo disable'],
] as const) {
  program.command(name).description(`${what}; survives reload and restart`).argument('<target>').option('--json', 'JSON output')
    .action(call<{ overrides: { drained: string[]; disabled: string[] } }>(method, ([target]) => ({ target }), (r) =>
      out(`ok; drained: ${r.overrides.drained.join(', ') || '-'}; disabled: ${r.overrides.disabled.join(', ') || '-'}`)));
}

program.command('plan').description('what applying FILE would change, without applying anything').argument('<file>').option('--json', 'JSON output')
  .action(async (file: string, opts: JsonOpt) => {
    const p = (await request(socket(), 'plan', { file: new URL(file, `file://${process.cwd()}/`).pathname }, 60_000)) as PlanReport;
    if (opts.json) json(p);
    else printPlan(p);
    if (!p.ok) process.exitCode = 1;
  });

program.command('reload').description('apply the config file on disk (same as SIGHUP)').option('--json', 'JSON output')
  .action(async (opts: JsonOpt) => {
    const r = (await request(socket(), 'reload', {}, 60_000)) as ReloadReport;
    if (opts.json) json(r);
    else if (r.ok) out(`reloaded: version ${r.version}${r.atRestart?.length ? `; at the next restart: ${r.atRestart.join(', ')}` : ''}`);
    else for (const p of r.problems) out(p);
    if (!r.ok) process.exitCode = 1;
  });

program
  .command('check-config')
  .description('validate config files offline; exit 0 when all are valid, 1 otherwise')
  .argument('<files...>', 'config files')
  .option('--json', 'JSON output')
  .action((files: string[], opts: JsonOpt) => {
    process.exitCode = printCheckReport(checkConfigFiles(files), opts.json === true);
  });

try {
  await program.parseAsync(process.argv);
} catch (e) {
  process.stderr.write(`vipctl: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = e instanceof DaemonUnreachable ? 3 : e instanceof DaemonError ? 1 : 2;
}
