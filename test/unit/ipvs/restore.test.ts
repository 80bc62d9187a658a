import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Kernel, KernelError, systemRunner } from '../../../src/ipvs/kernel.js';
import type { ServiceSpec } from '../../../src/ipvs/model.js';
import type { Op } from '../../../src/ipvs/plan.js';
import { IpvsadmRestore } from '../../../src/ipvs/restore.js';

const STANDIN = join(import.meta.dirname, 'fixtures', 'restore-standin.sh');

describe('IpvsadmRestore (a stand-in for ipvsadm -R; the real one: test/integration/ipvs)', () => {
  let dir: string;
  let log: string;
  let r: IpvsadmRestore;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'vipd-restore-'));
    log = join(dir, 'lines');
    r = new IpvsadmRestore('/bin/sh', [STANDIN, log]);
  });
  afterEach(async () => {
    await r.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const lines = (): string[][] => readFileSync(log, 'utf8').trim().split('\n').map((l) => l.split(' '));

  it('applies batch after batch through one process, each ending when its marker is answered', async () => {
    const a = await r.run(['-e one\n', '-e two\n'], { timeoutMs: 10_000 });
    const pid = r.pid;
    const b = await r.run(['-e three\n'], { timeoutMs: 10_000 });
    expect([a.code, a.stderr, b.code, b.stderr]).toEqual([0, '', 0, '']);
    expect(r.pid).toBe(pid);
    // Every line was read (and so executed) before its batch resolved, markers after each batch.
    expect(lines().map(([p, ...l]) => [Number(p), l.join(' ')])).toEqual([
      [pid, '-e one'],
      [pid, '-e two'],
      [pid, '-Z --vipd-sync-1'],
      [pid, '-e three'],
      [pid, '-Z --vipd-sync-2'],
    ]);
  });

  it("reports a batch's errors with that batch only, then starts afresh", async () => {
    const a = await r.run(['-e ok\n', '-A bad\n', '-e ok\n'], { timeoutMs: 10_000 });
    const pid = r.pid;
    expect([a.code, a.stderr]).toEqual([0, 'Service already exists']);
    const b = await r.run(['-e fine\n'], { timeoutMs: 10_000 });
    expect([b.code, b.stderr]).toEqual([0, '']);
    expect(r.pid).not.toBe(pid);
  });

  it('fails the batch of a process that exits, and the next batch gets a new one', async () => {
    const a = await r.run(['-e ok\n', 'die\n', '-e never\n'], { timeoutMs: 10_000 });
    expect(a.code).toBe(2);
    expect(a.stderr).toBe('illegal weight specified');
    const b = await r.run(['-e again\n'], { timeoutMs: 10_000 });
    expect([b.code, b.stderr]).toEqual([0, '']);
    expect(lines().map((l) => l.slice(1).join(' '))).not.toContain('-e never');
  });

  it('kills a batch that outlives its timeout', async () => {
    const a = await r.run(['hang\n'], { timeoutMs: 200 });
    expect(a.signal).toBe('SIGKILL');
    expect(a.stderr).toMatch(/timeout after 200 ms/);
    expect(r.pid).toBeUndefined();
    expect((await r.run(['-e after\n'], { timeoutMs: 10_000 })).code).toBe(0);
  });

  it('reports a timeout, not a broken pipe, when the process stops reading mid-batch', async () => {
    const big = function* (): Generator<string> {
      yield 'hang\n';
      for (let i = 0; i < 5000; i++) yield `-e ${'x'.repeat(100)}\n`;
    };
    const a = await r.run(big(), { timeoutMs: 300 });
    expect(a.signal).toBe('SIGKILL');
    expect(a.stderr).toMatch(/timeout after 300 ms/);
    expect((await r.run(['-e after\n'], { timeoutMs: 10_000 })).code).toBe(0);
  });

  it('feeds input larger than a pipe with backpressure, as it is produced', async () => {
    let produced = 0;
    const input = function* (): Generator<string> {
      for (; produced < 2000; produced++) yield `-e ${'x'.repeat(100)}\n`;
    };
    const res = await r.run(input(), { timeoutMs: 60_000 });
    expect([res.code, res.stderr]).toEqual([0, '']);
    expect(lines()).toHaveLength(2001);
  });

  it('rejects when the program does not exist', async () => {
    const missing = new IpvsadmRestore('/nonexistent/ipvsadm');
    await expect(missing.run(['-e x\n'], { timeoutMs: 1000 })).rejects.toThrow(/ENOENT/);
  });

  it('close() ends the process; a later batch starts another', async () => {
    await r.run(['-e one\n'], { timeoutMs: 10_000 });
    const pid = r.pid as number;
    await r.close();
    expect(r.pid).toBeUndefined();
    expect(() => process.kill(pid, 0)).toThrow();
    expect((await r.run(['-e two\n'], { timeoutMs: 10_000 })).code).toBe(0);
  });
});

describe('Kernel.probe', () => {
  it('refuses an ipvsadm that does not answer the batch marker; a good one passes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vipd-restore-'));
    const good = new Kernel('ipvsadm', 'conntrack', { ...systemRunner, restore: () => new IpvsadmRestore('/bin/sh', [STANDIN, join(dir, 'lines')]) });
    // As if ipvsadm exited on an unknown option (as it does on a malformed line) instead of carrying on.
    const exits = new Kernel('ipvsadm', 'conntrack', {
      ...systemRunner,
      restore: () => new IpvsadmRestore('/bin/sh', ['-c', "read -r line; echo \"Try 'ipvsadm -h' for more information.\" >&2; exit 2"]),
    });
    // One that answers the marker, then exits: every batch would start a process of its own.
    const once = new Kernel('ipvsadm', 'conntrack', {
      ...systemRunner,
      restore: () => new IpvsadmRestore('/bin/sh', ['-c', 'read -r line; echo "${line##* }: unknown option" >&2; exit 0']),
    });
    try {
      await good.probe();
      await expect(exits.probe()).rejects.toThrow("ipvsadm -R: cannot apply batches (exit 2: Try 'ipvsadm -h' for more information.)");
      await expect(once.probe()).rejects.toThrow(/ipvsadm -R: cannot apply batches/);
    } finally {
      await good.close();
      await exits.close();
      await once.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Kernel.apply', () => {
  const svc: ServiceSpec = { id: 'tcp 198.51.100.1:80', key: { kind: 'addr', protocol: 'tcp', family: 4, address: '198.51.100.1', port: 80 }, scheduler: 'rr', flags: 0, onePacket: false };
  const ops: Op[] = [{ kind: 'add-service', svc }, { kind: 'flush-conntrack', svc }];

  it('treats anything on stderr as a failure (ipvsadm -R carries on after failed lines)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vipd-restore-'));
    const k = new Kernel('ipvsadm', 'conntrack', { ...systemRunner, restore: () => new IpvsadmRestore('/bin/sh', [STANDIN, join(dir, 'lines')]) });
    try {
      const err = await k.apply(ops, 1).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KernelError);
      expect((err as Error).message).toBe('ipvsadm -R (1 operations): reported errors: Service already exists');
    } finally {
      await k.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
