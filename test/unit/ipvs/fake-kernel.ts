/**
 * A simulated director for unit tests: ipvsadm (restore, the three -Ln layouts, one service),
 * /proc/net/ip_vs, conntrack -D, net.ipv4.vs.* files and modules, behaving as the Debian 6.1
 * kernel and ipvsadm 1.31 were seen to behave in the VM lab: new destinations go to the head of
 * the service's list, `ipvsadm -R` carries on after a failing line and exits 0 with the error
 * on stderr, conntrack exits 1 when it deletes nothing.
 */
import type { ExecOptions, ExecResult } from '../../../src/util/exec.js';
import type { Runner } from '../../../src/ipvs/kernel.js';
import type { RestoreSession } from '../../../src/ipvs/restore.js';

export interface FakeDest {
  addr: string;
  port: number;
  fwd: 'Route' | 'Masq' | 'Tunnel';
  weight: number;
  upper: number;
  lower: number;
  active: number;
  inactive: number;
}

export interface FakeService {
  proto: 'TCP' | 'UDP' | 'SCTP' | 'FWM';
  addr: string;
  port: number;
  mark: number;
  v6: boolean;
  sched: string;
  flags: number;
  persistent?: number;
  mask?: string;
  ops: boolean;
  /** Kernel list order: newest first. */
  dests: FakeDest[];
}

export interface FakeFlow {
  v6: boolean;
  origDst: string;
  origPort: number;
  replySrc: string;
  replyPort: number;
}

export interface Call {
  file: string;
  args: string[];
  input?: string;
}

const ok = (stdout = '', stderr = '', code = 0): ExecResult => ({ code, signal: null, stdout, stderr, durationMs: 1 });
const hp = (a: string, p: number): string => (a.includes(':') ? `[${a}]:${p}` : `${a}:${p}`);

function expand6(a: string): string {
  const [head = '', tail] = a.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.map((g) => g.padStart(4, '0')).join(':');
}

function hex(a: string, p: number): string {
  const port = p.toString(16).toUpperCase().padStart(4, '0');
  if (a.includes(':')) return `[${expand6(a)}]:${port}`;
  return `${a
    .split('.')
    .map((o) => Number(o).toString(16).toUpperCase().padStart(2, '0'))
    .join('')}:${port}`;
}

const FLAG_NAMES: Record<string, [string, string, string]> = {
  mh: ['mh-fallback', 'mh-port', 'flag-3'],
  sh: ['sh-fallback', 'sh-port', 'flag-3'],
};

export class FakeKernel implements Runner {
  services: FakeService[] = [];
  sysctls: Record<string, number> = { conntrack: 0, conn_reuse_mode: 1, expire_nodest_conn: 0, expire_quiescent_template: 0, sloppy_tcp: 0, schedule_icmp: 0 };
  modules = new Set<string>(['ip_vs', 'ip_vs_rr', 'ip_vs_wrr']);
  flows: FakeFlow[] = [];
  calls: Call[] = [];
  /** Lines for which this returns a message fail with it (the rest of the batch still applies). */
  failLine: (line: string) => string | undefined = () => undefined;
  /** Makes every spawn of this program fail as if not installed. */
  missing = new Set<string>();

  spawns(file?: string): number {
    return this.calls.filter((c) => file === undefined || c.file === file).length;
  }

  find(id: string): FakeService | undefined {
    return this.services.find((s) => this.sid(s) === id);
  }

  dest(svcId: string, destId: string): FakeDest | undefined {
    return this.find(svcId)?.dests.find((d) => hp(d.addr, d.port) === destId);
  }

  sid(s: FakeService): string {
    if (s.proto === 'FWM') return s.v6 ? `fwm ${s.mark} ipv6` : `fwm ${s.mark}`;
    return `${s.proto.toLowerCase()} ${hp(s.addr, s.port)}`;
  }

  /** A hand-made service, as if created by another tool. */
  add(line: string): void {
    const err = this.command(line.split(/\s+/));
    if (err) throw new Error(`fake: ${line}: ${err}`);
  }

  exec(file: string, args: readonly string[], opts: ExecOptions): Promise<ExecResult> {
    this.calls.push(opts.input === undefined ? { file, args: [...args] } : { file, args: [...args], input: String(opts.input) });
    if (this.missing.has(file)) return Promise.reject(Object.assign(new Error(`spawn ${file} ENOENT`), { code: 'ENOENT' }));
    if (file === 'modprobe') {
      this.modules.add(args[0] ?? '');
      return Promise.resolve(ok());
    }
    if (file === 'conntrack') return Promise.resolve(this.conntrack(args));
    if (args[0] === '-R') {
      const errors: string[] = [];
      for (const line of String(opts.input ?? '').split('\n')) {
        if (!line.trim()) continue;
        const e = this.failLine(line) ?? this.command(line.trim().split(/\s+/));
        if (e) errors.push(e);
      }
      return Promise.resolve(ok('', errors.map((e) => `${e}\n`).join('')));
    }
    if (args[0] === '-Ln') return Promise.resolve(this.list(args.slice(1)));
    return Promise.resolve(ok('', `fake ipvsadm: unsupported ${args.join(' ')}`, 2));
  }

  restore(file: string): RestoreSession {
    return {
      run: (input, opts) => this.exec(file, ['-R'], { timeoutMs: opts.timeoutMs, input: [...input].join('') }),
      close: () => Promise.resolve(),
      pid: undefined,
    };
  }

  readFile(path: string): Promise<string> {
    if (path === '/proc/net/ip_vs') return Promise.resolve(this.proc());
    const m = /^\/proc\/sys\/net\/ipv4\/vs\/(\w+)$/.exec(path);
    const v = m ? this.sysctls[m[1] as string] : undefined;
    if (v === undefined) return Promise.reject(new Error(`ENOENT: ${path}`));
    return Promise.resolve(`${v}\n`);
  }

  writeFile(path: string, data: string): Promise<void> {
    const m = /^\/proc\/sys\/net\/ipv4\/vs\/(\w+)$/.exec(path);
    if (!m || !(m[1] as string in this.sysctls)) return Promise.reject(new Error(`ENOENT: ${path}`));
    this.sysctls[m[1] as string] = Number(data.trim());
    return Promise.resolve();
  }

  exists(path: string): Promise<boolean> {
    const m = /^\/sys\/module\/(\w+)$/.exec(path);
    return Promise.resolve(m !== null && this.modules.has(m[1] as string));
  }

  private parseService(a: string[]): { match: (s: FakeService) => boolean; make: () => FakeService } | string {
    const v6 = a.includes('-6');
    for (const [flag, proto] of [
      ['-t', 'TCP'],
      ['-u', 'UDP'],
      ['--sctp-service', 'SCTP'],
    ] as const) {
      const i = a.indexOf(flag);
      if (i < 0) continue;
      const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(a[i + 1] ?? '');
      if (!m) return 'bad service address';
      const addr = m[1] as string;
      const port = Number(m[2]);
      return {
        match: (s: FakeService) => s.proto === proto && s.addr === addr && s.port === port,
        make: () => ({ proto, addr, port, mark: 0, v6: addr.includes(':'), sched: 'wlc', flags: 0, ops: false, dests: [] }),
      };
    }
    const f = a.indexOf('-f');
    if (f < 0) return 'no service';
    const mark = Number(a[f + 1]);
    return {
      match: (s: FakeService) => s.proto === 'FWM' && s.mark === mark && s.v6 === v6,
      make: () => ({ proto: 'FWM', addr: '', port: 0, mark, v6, sched: 'wlc', flags: 0, ops: false, dests: [] }),
    };
  }

  private opt(a: string[], name: string): string | undefined {
    const i = a.indexOf(name);
    return i >= 0 ? a[i + 1] : undefined;
  }

  /** One ipvsadm command; returns the error text, or undefined on success. */
  private command(a: string[]): string | undefined {
    const cmd = a[0];
    const svcSel = this.parseService(a);
    if (typeof svcSel === 'string') return svcSel;
    const svc = this.services.find(svcSel.match);
    if (cmd === '-A' || cmd === '-E') {
      if (cmd === '-A' && svc) return 'Service already exists';
      if (cmd === '-E' && !svc) return 'No such service';
      const s = svc ?? svcSel.make();
      s.sched = this.opt(a, '-s') ?? 'wlc';
      const p = this.opt(a, '-p');
      if (p !== undefined) s.persistent = Number(p);
      else delete s.persistent;
      const mask = this.opt(a, '-M');
      if (mask !== undefined && mask !== '255.255.255.255' && mask !== '128') s.mask = mask;
      else delete s.mask;
      s.ops = a.includes('-o');
      s.flags = 0;
      for (const f of (this.opt(a, '-b') ?? '').split(',').filter(Boolean)) {
        s.flags |= /fallback|flag-1/.test(f) ? 1 : /port|flag-2/.test(f) ? 2 : 4;
      }
      if (!svc) this.services.push(s);
      return undefined;
    }
    if (cmd === '-D') {
      if (!svc) return 'No such service';
      this.services = this.services.filter((s) => s !== svc);
      return undefined;
    }
    if (!svc) return 'Service not defined';
    const r = /^\[?([^\]]+?)\]?:(\d+)$/.exec(this.opt(a, '-r') ?? '');
    if (!r) return 'bad destination';
    const addr = r[1] as string;
    const port = Number(r[2]);
    const d = svc.dests.find((x) => x.addr === addr && x.port === port);
    if (cmd === '-d') {
      if (!d) return 'No such destination';
      svc.dests = svc.dests.filter((x) => x !== d);
      return undefined;
    }
    if (cmd === '-a' && d) return 'Destination already exists';
    if (cmd === '-e' && !d) return 'No such destination';
    const fwd = a.includes('-m') ? 'Masq' : a.includes('-i') ? 'Tunnel' : 'Route';
    const attrs = { fwd, weight: Number(this.opt(a, '-w') ?? 1), upper: Number(this.opt(a, '-x') ?? 0), lower: Number(this.opt(a, '-y') ?? 0) } as const;
    if (d) Object.assign(d, attrs);
    else svc.dests.unshift({ addr, port, ...attrs, active: 0, inactive: 0 });
    return undefined;
  }

  private serviceLine(s: FakeService, mode: string): string {
    const name = s.proto === 'FWM' ? `FWM  ${s.mark}${s.v6 ? ' IPv6' : ''}` : `${s.proto.padEnd(4)} ${hp(s.addr, s.port)}`;
    if (mode === 'stats') return `${name.padEnd(33)}        0        0        0        0        0`;
    let line = `${name} ${s.sched}`;
    if (s.flags) {
      const names = FLAG_NAMES[s.sched] ?? ['flag-1', 'flag-2', 'flag-3'];
      line += ` (${names.filter((_, i) => s.flags & (1 << i)).join(',')})`;
    }
    if (s.persistent !== undefined) line += ` persistent ${s.persistent}${s.mask ? ` mask ${s.mask}` : ''}`;
    if (s.ops) line += ' ops';
    return line;
  }

  private list(a: string[]): ExecResult {
    const mode = a.includes('--thresholds') ? 'thresholds' : a.includes('--stats') ? 'stats' : 'weights';
    const one = a.some((x) => ['-t', '-u', '--sctp-service', '-f'].includes(x));
    let services = this.services;
    if (one) {
      const sel = this.parseService(a);
      const s = typeof sel === 'string' ? undefined : this.services.find(sel.match);
      if (!s) return ok('', 'No such service\n', 1);
      services = [s];
    }
    const sorted = !a.includes('--nosort');
    const out: string[] = [];
    if (!one) out.push('IP Virtual Server version 1.2.1 (size=4096)');
    if (mode === 'weights') out.push('Prot LocalAddress:Port Scheduler Flags', '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn');
    if (mode === 'thresholds') out.push('Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn ', '  -> RemoteAddress:Port');
    if (mode === 'stats') out.push('Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes', '  -> RemoteAddress:Port');
    for (const s of services) {
      out.push(this.serviceLine(s, mode));
      const dests = sorted ? [...s.dests].sort((x, y) => (hp(x.addr, x.port) < hp(y.addr, y.port) ? -1 : 1)) : s.dests;
      for (const d of dests) {
        const h = `  -> ${hp(d.addr, d.port).padEnd(28)} `;
        if (mode === 'weights') out.push(`${h}${d.fwd.padEnd(7)} ${String(d.weight).padEnd(6)} ${String(d.active).padEnd(10)} ${String(d.inactive).padEnd(10)}`);
        if (mode === 'thresholds') out.push(`${h}${String(d.upper).padEnd(10)} ${String(d.lower).padEnd(10)} ${String(d.active).padEnd(10)} ${String(d.inactive).padEnd(10)}`);
        if (mode === 'stats') out.push(`  -> ${hp(d.addr, d.port).padEnd(33)} 0        0        0        0        0`);
      }
    }
    return ok(`${out.join('\n')}\n`);
  }

  private proc(): string {
    const out = ['IP Virtual Server version 1.2.1 (size=4096)', 'Prot LocalAddress:Port Scheduler Flags', '  -> RemoteAddress:Port Forward Weight ActiveConn InActConn'];
    for (const s of this.services) {
      out.push(s.proto === 'FWM' ? `FWM  ${s.mark.toString(16).toUpperCase().padStart(8, '0')} ${s.sched} ` : `${s.proto}  ${hex(s.addr, s.port)} ${s.sched} `);
      for (const d of s.dests) {
        out.push(`  -> ${hex(d.addr, d.port)}      ${d.fwd.padEnd(7)} ${String(d.weight).padEnd(6)} ${String(d.active).padEnd(10)} ${String(d.inactive).padEnd(10)}`);
      }
    }
    return `${out.join('\n')}\n`;
  }

  private conntrack(a: readonly string[]): ExecResult {
    const get = (n: string): string | undefined => {
      const i = a.indexOf(n);
      return i >= 0 ? a[i + 1] : undefined;
    };
    if (a[0] !== '-D') return ok('', 'fake conntrack: unsupported', 2);
    const v6 = get('-f') === 'ipv6';
    const before = this.flows.length;
    this.flows = this.flows.filter(
      (f) =>
        !(
          f.v6 === v6 &&
          f.origDst === get('--orig-dst') &&
          String(f.origPort) === get('--orig-port-dst') &&
          (get('--reply-src') === undefined || f.replySrc === get('--reply-src')) &&
          (get('--reply-port-src') === undefined || String(f.replyPort) === get('--reply-port-src'))
        ),
    );
    const n = before - this.flows.length;
    return ok('', `conntrack v1.4.7 (conntrack-tools): ${n} flow entries have been deleted.\n`, n > 0 ? 0 : 1);
  }
}
