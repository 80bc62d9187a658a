import { describe, expect, it } from 'vitest';
import { Kernel, KernelError, systemRunner } from '../../../src/ipvs/kernel.js';
import type { ServiceSpec } from '../../../src/ipvs/model.js';
import type { Op } from '../../../src/ipvs/plan.js';

describe('systemRunner.stream', () => {
  it('feeds a large input in chunks, with backpressure, and keeps stderr', async () => {
    const chunks = function* (): Generator<string> {
      for (let i = 0; i < 200; i++) yield `${'x'.repeat(65535)}\n`;
    };
    const r = await systemRunner.stream('/bin/sh', ['-c', 'wc -c >&2'], chunks(), { timeoutMs: 30_000 });
    expect(r.code).toBe(0);
    expect(r.stderr.trim()).toBe(String(200 * 65536));
  });

  it('kills a child that outlives its timeout', async () => {
    const r = await systemRunner.stream('/bin/sh', ['-c', 'exec sleep 30'], ['x\n'], { timeoutMs: 200 });
    expect(r.signal).toBe('SIGKILL');
    expect(r.stderr).toMatch(/timeout after 200 ms/);
  });

  it('rejects when the program does not exist', async () => {
    await expect(systemRunner.stream('/nonexistent/ipvsadm', ['-R'], ['x\n'], { timeoutMs: 1000 })).rejects.toThrow(/ENOENT/);
  });
});

describe('Kernel.apply', () => {
  const svc: ServiceSpec = { id: 'tcp 198.51.100.1:80', key: { kind: 'addr', protocol: 'tcp', family: 4, address: '198.51.100.1', port: 80 }, scheduler: 'rr', flags: 0, onePacket: false };
  const ops: Op[] = [{ kind: 'add-service', svc }, { kind: 'flush-conntrack', svc }];

  it('treats anything on stderr as a failure (ipvsadm -R exits 0 after failed lines)', async () => {
    // A stand-in for ipvsadm: prints its input, and an error like the real one.
    const k = new Kernel('/bin/sh', 'conntrack', { ...systemRunner, stream: (_f, _a, input, o) => systemRunner.stream('/bin/sh', ['-c', 'cat >&2'], input, o) });
    const err = await k.apply(ops, 1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KernelError);
    expect((err as Error).message).toBe('/bin/sh -R (1 operations): reported errors: -A -t 198.51.100.1:80 -s rr');
  });
});
