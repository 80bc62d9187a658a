import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../../lab/netns.js';
import type { AgentEvent } from '../../../src/health/index.js';
import { BLACKHOLE, check, healthLab, RS, signal, sleep, type HealthLab } from './harness.js';

describe('health: script checks and node agents', () => {
  let h: HealthLab;
  let agent: Daemon;
  beforeAll(async () => {
    h = await healthLab();
    agent = await h.server('agent', [
      JSON.stringify({
        host: RS,
        replies: { 9001: 'up', 9002: 'drain', 9003: '50%', 9004: 'down', 9005: 'banana', 9006: '<close>', 9007: '<silent>', 9008: 'up 75% # ok' },
        cycle: { port: 9100, replies: ['up', 'drain', '50%', 'down'] },
      }),
    ]);
  });
  afterAll(async () => {
    await h?.cleanup();
  });

  it('runs scripts without a shell: exit 0 is up, anything else says why', async () => {
    const marker = h.lab.path('shell-ran');
    const injection = `$(touch ${marker})`;
    const t = (id: string, command: string, args: string[], port = 8080, timeout = 2000) => ({
      id,
      address: RS,
      port,
      check: check('script', { command, args, timeout }),
    });
    await h.monitor.update([
      t('no-shell', '/usr/bin/test', [injection, '=', injection]),
      t('false', '/bin/false', []),
      t('stderr', '/bin/sh', ['-c', 'echo disk full >&2; exit 2']),
      t('env', '/bin/sh', ['-c', 'test "$VIPD_CHECK_ADDRESS:$VIPD_CHECK_PORT" = "203.0.113.10:8080"']),
      t('network', '/bin/bash', ['-c', 'echo > /dev/tcp/$VIPD_CHECK_ADDRESS/$VIPD_CHECK_PORT'], 9001),
      t('network-refused', '/bin/bash', ['-c', 'echo > /dev/tcp/$VIPD_CHECK_ADDRESS/$VIPD_CHECK_PORT'], 9009),
      t('timeout', '/bin/sleep', ['30'], 8080, 300),
      t('missing', '/nonexistent/check', []),
      t('killed', '/bin/sh', ['-c', 'kill -TERM $$']),
    ]);
    const ids = ['no-shell', 'false', 'stderr', 'env', 'network', 'network-refused', 'timeout', 'missing', 'killed'];
    const v = await h.monitor.firstVerdicts(ids, 5000);
    const got = Object.fromEntries([...v].map(([id, e]) => [id, `${e.up ? 'up' : 'down'}: ${e.reason}`]));
    expect(got).toMatchObject({
      'no-shell': 'up: exit 0',
      false: 'down: exit 1',
      stderr: 'down: exit 2: disk full',
      env: 'up: exit 0',
      network: 'up: exit 0',
      timeout: 'down: timeout after 300 ms',
      missing: 'down: spawn /nonexistent/check ENOENT',
      killed: 'down: killed by SIGTERM',
    });
    expect(got['network-refused']).toMatch(/^down: exit 1: .*Connection refused/);
    expect(existsSync(marker)).toBe(false);
    const timeouts = (await h.monitor.resultsAfter('timeout', 2, 5000)).map((r) => r.result.durationMs);
    expect(Math.max(...timeouts)).toBeLessThan(1500);
    // A timed-out script is killed: nothing but the checker itself lives in the director namespace.
    await h.monitor.update([]);
    await sleep(400);
    expect(await h.strays()).toEqual([]);
  });

  it('reads node agents: up, drain, weight, down, and replies that are not answers', async () => {
    const t = (id: string, port: number, address = RS, agentAddress?: string) => ({
      id,
      address,
      agent: { port, interval: 200, timeout: 300, ...(agentAddress ? { address: agentAddress } : {}) },
    });
    await h.monitor.update([
      t('up', 9001),
      t('drain', 9002),
      t('weight', 9003),
      t('down', 9004),
      t('garbage', 9005),
      t('closed', 9006),
      t('silent', 9007),
      t('up-weight-comment', 9008),
      t('refused', 9009),
      t('address-override', 9003, BLACKHOLE, RS),
    ]);
    const first = async (id: string): Promise<Omit<AgentEvent, 'at' | 'id'>> => {
      const { at: _at, id: _id, event: _e, ...rest } = (await h.monitor.waitFor((e) => e.event === 'agent' && e.id === id, 5000)) as AgentEvent & { event: string };
      return rest;
    };
    expect(await first('up')).toEqual({ answered: true, down: false, drain: false, reason: 'agent: up' });
    expect(await first('drain')).toEqual({ answered: true, down: false, drain: true, reason: 'agent: drain' });
    expect(await first('weight')).toEqual({ answered: true, down: false, drain: false, weightPercent: 50, reason: 'agent: up 50%' });
    expect(await first('down')).toEqual({ answered: true, down: true, drain: false, reason: 'agent: down' });
    expect(await first('garbage')).toEqual({ answered: false, down: false, drain: false, reason: 'agent: unrecognised reply "banana"' });
    expect(await first('closed')).toEqual({ answered: false, down: false, drain: false, reason: 'agent: empty reply' });
    expect(await first('silent')).toEqual({ answered: false, down: false, drain: false, reason: 'timeout after 300 ms' });
    expect(await first('up-weight-comment')).toEqual({ answered: true, down: false, drain: false, weightPercent: 75, reason: 'agent: up 75%' });
    expect(await first('refused')).toEqual({ answered: false, down: false, drain: false, reason: 'connect ECONNREFUSED' });
    expect(await first('address-override')).toMatchObject({ answered: true, weightPercent: 50 });
    const s = await h.monitor.status('weight');
    expect(s).toMatchObject({ type: 'agent', address: RS, port: 9003, known: true, up: true, agent: { answered: true, weightPercent: 50 } });
    expect(s.history.at(-1)?.agent).toEqual({ down: false, drain: false, weightPercent: 50 });
    // Several polls later each agent has still reported once: events come only with changes.
    await h.monitor.resultsAfter('up', 4, 3000);
    expect(h.monitor.of('up', 'agent')).toHaveLength(1);
    expect(h.monitor.of('silent', 'agent')).toHaveLength(1);
  });

  it('reports each change of what an agent says', async () => {
    await h.monitor.update([{ id: 'cycle', address: RS, agent: { port: 9100, interval: 100, timeout: 300 } }]);
    await h.monitor.waitFor((e) => e.event === 'agent' && e.id === 'cycle', 3000);
    const seen: string[] = [];
    for (const [want, ack] of [
      ['agent: drain', /drain/],
      ['agent: up 50%', /50%/],
      ['agent: down', /down/],
      ['agent: up', /up/],
    ] as const) {
      const from = h.monitor.events.length;
      await signal(agent, 'SIGUSR1', ack);
      const e = (await h.monitor.waitFor((e) => e.event === 'agent' && e.id === 'cycle', 3000, from)) as AgentEvent;
      seen.push(e.reason);
      expect(e.reason).toBe(want);
    }
    expect(h.monitor.of('cycle', 'agent').map((e) => [e.drain, e.weightPercent ?? null, e.down])).toEqual([
      [false, null, false],
      [true, null, false],
      [false, 50, false],
      [false, null, true],
      [false, null, false],
    ]);
  });
});
