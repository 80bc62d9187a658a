import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../../lab/netns.js';
import { BLACKHOLE, check, healthLab, RS, RS6, signal, type HealthLab } from './harness.js';

const verdicts = async (h: HealthLab, ids: string[]): Promise<Record<string, string>> =>
  Object.fromEntries([...(await h.monitor.firstVerdicts(ids, 5000))].map(([id, e]) => [id, `${e.up ? 'up' : 'down'}: ${e.reason}`]));

describe('health: UDP and DNS checks against real servers', () => {
  let h: HealthLab;
  let udp: Daemon;
  let dns: Daemon;
  beforeAll(async () => {
    h = await healthLab();
    udp = await h.server('udp', [JSON.stringify({ hosts: [RS, RS6], port: 7007 })]);
    dns = await h.server('dns', [JSON.stringify({ host: RS, port: 53 })]);
  });
  afterAll(async () => {
    await h?.cleanup();
  });

  it('passes and fails UDP: reply, pattern, binary payload, silence, port unreachable', async () => {
    const t = (id: string, address: string, port: number, fields: Parameters<typeof check<'udp'>>[1]) => ({ id, address, port, check: check('udp', { timeout: 300, ...fields }) });
    await h.monitor.update([
      t('any-reply', RS, 7007, { payload: 'ping' }),
      t('pattern', RS, 7007, { payload: 'ping', expect: '^pong ping$' }),
      t('ipv6', RS6, 7007, { payload: 'ping', expect: '^pong ping$' }),
      t('binary', RS, 7007, { payload: 'hex:00ff0a', expect: '^pong \\x00\\xff\\n$' }),
      t('empty-payload', RS, 7007, { payload: '' }),
      t('wrong-reply', RS, 7007, { payload: 'ping', expect: '^PONG' }),
      t('silent', RS, 7007, { payload: 'silent please' }),
      t('unreachable', RS, 7008, { payload: 'ping' }),
      t('blackhole', BLACKHOLE, 7007, { payload: 'ping' }),
      t('bad-hex', RS, 7007, { payload: 'hex:xyz' }),
    ]);
    expect(
      await verdicts(h, ['any-reply', 'pattern', 'ipv6', 'binary', 'empty-payload', 'wrong-reply', 'silent', 'unreachable', 'blackhole', 'bad-hex']),
    ).toEqual({
      'any-reply': 'up: reply 9 bytes',
      pattern: 'up: reply 9 bytes',
      ipv6: 'up: reply 9 bytes',
      binary: 'up: reply 8 bytes',
      'empty-payload': 'up: reply 5 bytes',
      'wrong-reply': 'down: reply "pong ping" does not match /^PONG/',
      silent: 'down: timeout after 300 ms',
      unreachable: 'down: recvmsg ECONNREFUSED',
      blackhole: 'down: timeout after 300 ms',
      'bad-hex': 'down: invalid check: payload "hex:xyz" is not hex',
    });
  });

  it('follows a UDP server that stops answering', async () => {
    const from = h.monitor.events.length;
    await signal(udp, 'SIGUSR1', /silent/);
    expect(await h.monitor.waitFor((e) => e.event === 'transition' && e.id === 'pattern', 3000, from)).toMatchObject({
      up: false,
      reason: 'timeout after 300 ms',
    });
    await signal(udp, 'SIGUSR2', /answering/);
    await h.monitor.waitFor((e) => e.event === 'transition' && e.id === 'pattern' && e.up, 3000, from);
  });

  it('passes and fails DNS: rcode, answers, transports, malformed replies', async () => {
    const t = (id: string, fields: Partial<Parameters<typeof check<'dns'>>[1]>, port = 53) => ({
      id,
      address: RS,
      port,
      check: check('dns', { query: 'ok.example', qtype: 'A', expectRcode: 'NOERROR', transport: 'udp', timeout: 300, ...fields }),
    });
    await h.monitor.update([
      t('a', { expectAnswer: '192.0.2.53' }),
      t('a-tcp', { expectAnswer: '192.0.2.53', transport: 'tcp' }),
      t('aaaa', { qtype: 'AAAA', expectAnswer: '2001:DB8:0::53' }),
      t('mx', { qtype: 'MX', expectAnswer: '10 mail.example.' }),
      t('txt', { qtype: 'TXT', expectAnswer: 'v=ok' }),
      t('cname-chain', { query: 'www.example', expectAnswer: '192.0.2.53' }),
      t('no-expectation', { query: 'wrong.example' }),
      t('wrong-answer', { query: 'wrong.example', expectAnswer: '192.0.2.53' }),
      t('wrong-answer-tcp', { query: 'wrong.example', expectAnswer: '192.0.2.53', transport: 'tcp' }),
      t('nxdomain', { query: 'nx.example' }),
      t('nxdomain-expected', { query: 'nx.example', expectRcode: 'NXDOMAIN' }),
      t('servfail', { query: 'fail.example' }),
      t('refused', { query: 'refused.example' }),
      t('badlen', { query: 'badlen.example' }),
      t('badlen-tcp', { query: 'badlen.example', transport: 'tcp' }),
      t('loop', { query: 'loop.example' }),
      t('short', { query: 'short.example' }),
      t('other-question', { query: 'other.example' }),
      t('silent', { query: 'silent.example' }),
      t('unreachable', {}, 54),
      t('tcp-refused', { transport: 'tcp' }, 54),
      t('bad-name', { query: `${'x'.repeat(64)}.example` }),
    ]);
    const ids = [
      'a', 'a-tcp', 'aaaa', 'mx', 'txt', 'cname-chain', 'no-expectation', 'wrong-answer', 'wrong-answer-tcp', 'nxdomain', 'nxdomain-expected',
      'servfail', 'refused', 'badlen', 'badlen-tcp', 'loop', 'short', 'other-question', 'silent', 'unreachable', 'tcp-refused', 'bad-name',
    ];
    expect(await verdicts(h, ids)).toEqual({
      a: 'up: DNS NOERROR, 192.0.2.53',
      'a-tcp': 'up: DNS NOERROR, 192.0.2.53',
      aaaa: 'up: DNS NOERROR, 2001:db8::53',
      mx: 'up: DNS NOERROR, 10 mail.example',
      txt: 'up: DNS NOERROR, v=ok',
      'cname-chain': 'up: DNS NOERROR, 192.0.2.53',
      'no-expectation': 'up: DNS NOERROR, 192.0.2.99',
      'wrong-answer': 'down: DNS NOERROR, 192.0.2.99 (expected 192.0.2.53)',
      'wrong-answer-tcp': 'down: DNS NOERROR, 192.0.2.99 (expected 192.0.2.53)',
      nxdomain: 'down: DNS NXDOMAIN (expected NOERROR)',
      'nxdomain-expected': 'up: DNS NXDOMAIN, no answer',
      servfail: 'down: DNS SERVFAIL (expected NOERROR)',
      refused: 'down: DNS REFUSED (expected NOERROR)',
      badlen: 'down: DNS: malformed reply (record data of 200 bytes runs past the end of the message)',
      'badlen-tcp': 'down: DNS: malformed reply (record data of 200 bytes runs past the end of the message)',
      loop: 'down: DNS: malformed reply (name pointer does not point backwards)',
      short: 'down: DNS: malformed reply (message of 5 bytes is shorter than a header)',
      'other-question': 'down: DNS: reply is for a different question',
      silent: 'down: timeout after 300 ms',
      unreachable: 'down: recvmsg ECONNREFUSED',
      'tcp-refused': 'down: connect ECONNREFUSED',
      'bad-name': `down: invalid check: bad label in DNS name "${'x'.repeat(64)}.example"`,
    });
  });

  it('follows a DNS server that starts failing', async () => {
    const from = h.monitor.events.length;
    await signal(dns, 'SIGUSR1', /servfail/);
    expect(await h.monitor.waitFor((e) => e.event === 'transition' && e.id === 'a-tcp', 3000, from)).toMatchObject({
      up: false,
      reason: 'DNS SERVFAIL (expected NOERROR)',
    });
    await signal(dns, 'SIGUSR2', /ok/);
    await h.monitor.waitFor((e) => e.event === 'transition' && e.id === 'a-tcp' && e.up, 3000, from);
  });
});
