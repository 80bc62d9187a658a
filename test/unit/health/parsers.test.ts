import { describe, expect, it } from 'vitest';
import { parseAgentReply } from '../../../src/health/checks/agent.js';
import { parseStatusRanges } from '../../../src/health/checks/http.js';
import { parsePayload } from '../../../src/health/checks/udp.js';

describe('agent replies', () => {
  it.each([
    ['up', { down: false, drain: false }],
    ['ready', { down: false, drain: false }],
    ['drain', { down: false, drain: true }],
    ['down', { down: true, drain: false }],
    ['stopped', { down: true, drain: false }],
    ['maint', { down: true, drain: false }],
    ['fail', { down: true, drain: false }],
    ['50%', { down: false, drain: false, weightPercent: 50 }],
    ['0%', { down: false, drain: false, weightPercent: 0 }],
    ['UP 75%', { down: false, drain: false, weightPercent: 75 }],
    ['up,100%\r', { down: false, drain: false, weightPercent: 100 }],
    ['drain 10% # deploying', { down: false, drain: true, weightPercent: 10 }],
  ])('%j', (line, want) => {
    expect(parseAgentReply(line)).toEqual(want);
  });

  it.each([
    ['', 'agent: empty reply'],
    ['   # only a comment', 'agent: empty reply'],
    ['banana', 'agent: unrecognised reply "banana"'],
    ['up 150%', 'agent: unrecognised reply "up 150%"'],
    ['-5%', 'agent: unrecognised reply "-5%"'],
    ['SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3 and some more text', 'agent: unrecognised reply "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3 a…"'],
  ])('rejects %j', (line, error) => {
    expect(parseAgentReply(line)).toEqual({ error });
  });
});

describe('HTTP status ranges', () => {
  it('reads codes and ranges', () => {
    expect(parseStatusRanges([200, '301', '200-299', '500-503'])).toEqual([
      [200, 200],
      [301, 301],
      [200, 299],
      [500, 503],
    ]);
  });
});

describe('UDP payloads', () => {
  it('sends text as UTF-8 and hex: as bytes', () => {
    expect(parsePayload('ping')).toEqual(Buffer.from('ping'));
    expect(parsePayload('')).toEqual(Buffer.alloc(0));
    expect(parsePayload('hex:00ff 10')).toEqual(Buffer.from([0, 255, 16]));
    expect(() => parsePayload('hex:abc')).toThrow(/not hex/);
    expect(() => parsePayload('hex:zz')).toThrow(/not hex/);
  });
});
