import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exec } from '../../src/util/exec.js';
import { Lab } from '../lab/netns.js';
import { REPO_ROOT, Vm, VmExecError } from '../lab/vm.js';

/** PIDs of qemu processes that are this test process's children or the given VM. */
async function ourQemus(vmPid: number): Promise<string[]> {
  const ps = await exec('ps', ['-eo', 'pid=,ppid=,comm='], { timeoutMs: 10_000 });
  return ps.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter(([pid, ppid, comm]) => comm?.startsWith('qemu-system') && (Number(ppid) === process.pid || Number(pid) === vmPid))
    .map(([pid]) => pid ?? '');
}

function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}

/** /proc/net/ip_vs prints addresses and ports as hex. */
function procHex(ip: string, port: number): string {
  const a = ip.split('.').map((o) => Number(o).toString(16).toUpperCase().padStart(2, '0'));
  return `${a.join('')}:${port.toString(16).toUpperCase().padStart(4, '0')}`;
}

describe('lab: VM with the Debian kernel (real IPVS)', () => {
  let vm: Vm;

  beforeAll(async () => {
    vm = await Vm.boot(undefined, {});
    console.info(`vm booted in ${Math.round(vm.bootMs)} ms`);
  });
  afterAll(async () => {
    if (!vm) return;
    await vm.shutdown();
    expect(gone(vm.pid)).toBe(true);
    expect(await ourQemus(vm.pid)).toEqual([]);
  });

  it('programs IPVS and reads the table back', async () => {
    await vm.run('ipvsadm -A -t 198.51.100.10:80 -s mh -b flag-1,flag-2');
    await vm.run('ipvsadm -a -t 198.51.100.10:80 -r 203.0.113.11:80 -g -w 100');
    const saved = (await vm.run('ipvsadm -Sn')).stdout;
    expect(saved).toContain('-A -t 198.51.100.10:80 -s mh -b mh-fallback,mh-port');
    expect(saved).toContain('-a -t 198.51.100.10:80 -r 203.0.113.11:80 -g -w 100');
    const proc = (await vm.run('cat /proc/net/ip_vs')).stdout;
    expect(proc).toMatch(new RegExp(`TCP  ${procHex('198.51.100.10', 80)} mh`));
    expect(proc).toMatch(new RegExp(`-> ${procHex('203.0.113.11', 80)}\\s+Route\\s+100`));
  });

  it('runs node: the same build as the host', async () => {
    const r = await vm.run(`node -e 'console.log(JSON.stringify({ v: process.version, exe: process.execPath }))'`);
    const out = JSON.parse(r.stdout) as { v: string; exe: string };
    expect(out.v).toBe(process.version);
    // Through fork(), node re-executes itself; that only works if execPath is node itself.
    const fork = await vm.run(
      `echo 'process.send(41 + 1)' >/tmp/child.cjs && ` +
        `node -e 'require("child_process").fork("/tmp/child.cjs").on("message", (m) => { console.log(m); process.exit(0); })'`,
    );
    expect(fork.stdout.trim()).toBe('42');
  });

  it('sees the repository at the same path', async () => {
    const r = await vm.run(`cat ${REPO_ROOT}/package.json`);
    expect(r.stdout).toBe(readFileSync(`${REPO_ROOT}/package.json`, 'utf8'));
  });

  it('runs commands concurrently, with input, timeouts and failures reported', async () => {
    const order: string[] = [];
    const slow = vm.exec('sleep 3; echo slow').then((r) => order.push(r.stdout.trim()));
    const fast = vm.exec('cat', { input: 'fast\n' }).then((r) => order.push(r.stdout.trim()));
    await Promise.all([slow, fast]);
    expect(order).toEqual(['fast', 'slow']);

    const t = await vm.exec('sleep 30', { timeoutMs: 1_000 });
    expect(t.signal).toBe('SIGKILL');
    expect(t.stderr).toMatch(/timeout after 1000 ms/);

    const err = await vm.run('echo to-stdout; echo to-stderr >&2; exit 3').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VmExecError);
    expect((err as Error).message).toMatch(/exit 3[\s\S]*to-stdout[\s\S]*to-stderr/);
  });

  it('measures the per-command overhead', async () => {
    const n = 20;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await vm.run('true');
    console.info(`per-exec round trip: ${((performance.now() - t0) / n).toFixed(1)} ms`);
    expect(vm.console()).toContain('VIPD-GUEST-READY');
  });
});

describe('lab: VM on a bridge in a namespace', () => {
  let lab: Lab;
  let ns: string;
  let vm: Vm;

  beforeAll(async () => {
    lab = await Lab.create();
    ns = await lab.ns('net');
    await lab.bridge(ns, 'br0', ['192.0.2.1/24', '2001:db8:0:1::1/64']);
    vm = await Vm.boot(lab, { netns: ns, bridge: 'br0', ip: '192.0.2.20/24', gateway: '192.0.2.1', ip6: '2001:db8:0:1::20/64', mac: '52:54:00:00:02:14' });
  });
  afterAll(async () => {
    // No vm.shutdown() first: lab.cleanup() alone must kill qemu.
    await lab?.cleanup();
    if (!vm) return;
    expect(gone(vm.pid)).toBe(true);
    expect(await ourQemus(vm.pid)).toEqual([]);
    await vm.shutdown(); // releases the rest; a no-op for qemu by now
    const list = await exec('ip', ['netns', 'list'], { timeoutMs: 10_000 });
    expect(list.stdout).not.toContain(lab.id);
  });

  it('has exactly the tap NIC, with the given MAC', async () => {
    const r = await vm.run('ls /sys/class/net; cat /sys/class/net/eth0/address');
    expect(r.stdout).toContain('52:54:00:00:02:14');
    expect(r.stdout.split(/\s+/)).not.toContain('eth1');
  });

  it('pings both ways over IPv4', async () => {
    const toGuest = await lab.exec(ns, 'ping', ['-c', '1', '-W', '5', '192.0.2.20']);
    expect(toGuest.code, toGuest.stdout + toGuest.stderr).toBe(0);
    await vm.run('ping -c 1 -W 5 192.0.2.1');
  });

  it('pings both ways over IPv6', async () => {
    const toGuest = await lab.exec(ns, 'ping', ['-c', '1', '-W', '5', '2001:db8:0:1::20']);
    expect(toGuest.code, toGuest.stdout + toGuest.stderr).toBe(0);
    await vm.run('ping -c 1 -W 5 2001:db8:0:1::1');
  });
});
