import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Guardian } from '../../../src/addr/guardian.js';
import { applySysctls } from '../../../src/addr/sysctl.js';
import { LinkWatch, linkStateOf, type LinkState } from '../../../src/arp/link.js';

const dir = mkdtempSync(join(tmpdir(), 'vipd-arp-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('applySysctls', () => {
  it('writes only what differs and reports before/after and failures', async () => {
    const root = join(dir, 'proc');
    mkdirSync(join(root, 'net/ipv4/conf/all'), { recursive: true });
    writeFileSync(join(root, 'net/ipv4/conf/all/arp_ignore'), '0\n');
    writeFileSync(join(root, 'net/ipv4/conf/all/arp_announce'), '2\n');
    const r = await applySysctls(
      [
        { path: 'net/ipv4/conf/all/arp_ignore', value: 1, why: 'x' },
        { path: 'net/ipv4/conf/all/arp_announce', value: 2, why: 'x' },
        { path: 'net/ipv4/conf/nope/rp_filter', value: 2, why: 'x' },
      ],
      root,
    );
    expect(r.map((x) => [x.path, x.before, x.changed, x.error === undefined])).toEqual([
      ['net/ipv4/conf/all/arp_ignore', 0, true, true],
      ['net/ipv4/conf/all/arp_announce', 2, false, true],
      ['net/ipv4/conf/nope/rp_filter', undefined, false, false],
    ]);
    expect(readFileSync(join(root, 'net/ipv4/conf/all/arp_ignore'), 'utf8')).toBe('1\n');
  });
});

describe('LinkWatch', () => {
  it('maps carrier reads to states', () => {
    expect(linkStateOf('eth0', { text: '1\n' })).toEqual({ device: 'eth0', up: true, reason: 'carrier' });
    expect(linkStateOf('eth0', { text: '0\n' })).toMatchObject({ up: false, reason: 'no-carrier' });
    expect(linkStateOf('eth0', { error: 'EINVAL' })).toMatchObject({ up: false, reason: 'admin-down' });
    expect(linkStateOf('eth0', { error: 'ENOENT' })).toMatchObject({ up: false, reason: 'absent' });
  });

  it('reports carrier changes within a poll interval', async () => {
    const sys = join(dir, 'sys');
    mkdirSync(join(sys, 'eth0'), { recursive: true });
    writeFileSync(join(sys, 'eth0', 'carrier'), '1\n');
    const w = new LinkWatch({ pollMs: 20, sysfs: sys });
    const seen: LinkState[] = [];
    w.on('change', (s) => seen.push(s));
    await w.watch(['eth0', 'eth9']);
    w.start();
    writeFileSync(join(sys, 'eth0', 'carrier'), '0\n');
    await sleep(80);
    await w.stop();
    const names = seen.map((s) => `${s.device}:${s.reason}`);
    expect(names.slice(0, 2).sort()).toEqual(['eth0:carrier', 'eth9:absent']);
    expect(names.slice(2)).toEqual(['eth0:no-carrier']);
    expect(w.state('eth0')?.up).toBe(false);
  });
});

describe('Guardian', () => {
  it('deletes what it holds when its pipe closes, through one ip -batch', async () => {
    const out = join(dir, 'ip-batch.txt');
    const fakeIp = join(dir, 'fake-ip');
    writeFileSync(fakeIp, `#!/bin/sh\necho "$@" > ${out}.args\ncat > ${out}\n`);
    chmodSync(fakeIp, 0o755);
    const g = new Guardian(fakeIp);
    g.start();
    g.hold([{ address: '198.51.100.1', device: 'eth0' }]);
    g.hold([
      { address: '198.51.100.2', device: 'eth0' },
      { address: '2001:db8:100::2', device: 'eth0.100' },
    ]);
    await g.stop();
    for (let i = 0; i < 50 && !existsSync(`${out}.args`); i++) await sleep(10);
    expect(readFileSync(`${out}.args`, 'utf8').trim()).toBe('-force -batch -');
    expect(readFileSync(out, 'utf8')).toBe('address del 198.51.100.2/32 dev eth0\naddress del 2001:db8:100::2/128 dev eth0.100\n');
  });
});
