import { describe, expect, it } from 'vitest';
import { applySysctls, loadModules, sysctlProblem, wantedSysctls } from '../../../src/ipvs/sysctl.js';
import { FakeKernel } from './fake-kernel.js';

describe('kernel settings', () => {
  it('merges config over the director defaults', () => {
    expect(wantedSysctls({ conntrack: 1, sloppy_tcp: 0 })).toEqual({ conntrack: 1, conn_reuse_mode: 1, expire_nodest_conn: 1, expire_quiescent_template: 1, sloppy_tcp: 0, schedule_icmp: 1 });
  });

  it('validates names and ranges before anything becomes a path', () => {
    expect(sysctlProblem('conn_reuse_mode', 3)).toBeUndefined();
    expect(sysctlProblem('conn_reuse_mode', 4)).toBe('net.ipv4.vs.conn_reuse_mode must be 0..3');
    expect(sysctlProblem('../../kernel/panic', 1)).toMatch(/unknown setting/);
    expect(sysctlProblem('sloppy_tcp', 0.5)).toMatch(/0..1/);
  });

  it('writes only what differs, reads every value back and reports failures', async () => {
    const k = new FakeKernel();
    const r = await applySysctls(k, { conn_reuse_mode: 1, sloppy_tcp: 1, secure_tcp: 2, bogus: 1 });
    expect(r).toEqual([
      { name: 'bogus', wanted: 1, ok: false, error: 'unknown setting net.ipv4.vs.bogus' },
      { name: 'conn_reuse_mode', wanted: 1, before: 1, after: 1, ok: true },
      // Not a file of the simulated kernel: the write fails and nothing reads back.
      { name: 'secure_tcp', wanted: 2, ok: false, error: 'ENOENT: /proc/sys/net/ipv4/vs/secure_tcp' },
      { name: 'sloppy_tcp', wanted: 1, before: 0, after: 1, ok: true },
    ]);
    expect(k.calls).toEqual([]);
  });

  it('loads modules that are not present, with modprobe, and reports failures', async () => {
    const k = new FakeKernel();
    k.missing.add('modprobe');
    const r = await loadModules(k, ['ip_vs', 'ip_vs_mh', 'ip_vs_mh', 'Bad-Name'], 'modprobe', 1000);
    expect(r).toEqual([
      { name: 'ip_vs', state: 'present' },
      { name: 'ip_vs_mh', state: 'failed', error: 'modprobe ip_vs_mh: spawn modprobe ENOENT' },
      { name: 'Bad-Name', state: 'failed', error: 'not a module name' },
    ]);
  });
});
