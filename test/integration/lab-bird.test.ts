import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab } from '../lab/netns.js';
import { startBird, type Bird } from '../lab/bird.js';

describe('lab: BIRD router in a namespace', () => {
  let lab: Lab;
  let bird: Bird;
  let router: string;
  let director: string;

  beforeAll(async () => {
    lab = await Lab.create();
    router = await lab.ns('r');
    director = await lab.ns('d');
    await lab.veth({ ns: router, dev: 'eth0', cidrs: ['192.0.2.1/24'] }, { ns: director, dev: 'eth0', cidrs: ['192.0.2.10/24'] });
    bird = await startBird(
      lab,
      router,
      'r1',
      `router id 192.0.2.1;
protocol device {}
protocol kernel { ipv4 { export none; }; }
protocol bgp director { local 192.0.2.1 as 64512; neighbor 192.0.2.10 as 64513; ipv4 { import all; export none; }; }
`,
    );
  });
  afterAll(async () => {
    await lab?.cleanup();
  });

  it('answers on its control socket and knows its BGP protocol', async () => {
    expect(await bird.cli('show status')).toMatch(/BIRD 2\.\d+.*\n.*Router ID is 192\.0\.2\.1/s);
    expect(await bird.cli('show protocols')).toMatch(/director\s+BGP/);
  });

  it('is reachable from the director namespace over the veth', async () => {
    const r = await lab.exec(director, 'ping', ['-c', '1', '-W', '2', '192.0.2.1']);
    expect(r.code).toBe(0);
  });

  it('leaves nothing behind after cleanup', async () => {
    const other = await Lab.create();
    const ns = await other.ns('x');
    const d = other.spawn(ns, 'sleep', ['60']);
    await other.cleanup();
    const list = await lab.exec(router, 'ip', ['netns', 'list']);
    expect(list.stdout).not.toContain(ns);
    expect(() => process.kill(d.pid, 0)).toThrow();
  });
});
