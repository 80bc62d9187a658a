import { EventEmitter } from 'node:events';
import type * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { GobgpClient } from '../../../src/bgp/client.js';
import { TYPE, type PathMsg } from '../../../src/bgp/messages.js';
import type { GobgpStub } from '../../../src/bgp/proto.js';

/** One AddPathStream call as the stub saw it. */
class FakeCall extends EventEmitter {
  readonly written: unknown[] = [];
  ended = false;
  cancelled = false;
  constructor(
    readonly opts: grpc.CallOptions,
    readonly reply: (err: grpc.ServiceError | null) => void,
  ) {
    super();
  }
  write(m: unknown): boolean {
    this.written.push(m);
    return true;
  }
  end(): void {
    this.ended = true;
  }
  cancel(): void {
    this.cancelled = true;
    this.reply(Object.assign(new Error('Cancelled'), { code: 1, details: 'Cancelled', metadata: undefined }) as unknown as grpc.ServiceError);
  }
}

function fakeStub(): { stub: GobgpStub; calls: FakeCall[] } {
  const calls: FakeCall[] = [];
  const stub = {
    AddPathStream: (_meta: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null) => void) => {
      const c = new FakeCall(opts, cb);
      calls.push(c);
      return c;
    },
    close: () => undefined,
  } as unknown as GobgpStub;
  return { stub, calls };
}

const path = { family: { afi: 'AFI_IP', safi: 'SAFI_UNICAST' } } as unknown as PathMsg;
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('GobgpClient.addPathStream', () => {
  it('hands out the call opened when the previous stream ended: a change costs a write, not a call set-up', async () => {
    const { stub, calls } = fakeStub();
    const c = new GobgpClient('/nonexistent', { stub });
    const a = c.addPathStream();
    a.write([path]);
    const ended = a.end();
    calls[0]!.reply(null);
    await ended;
    await tick();
    // The next stream is open before anyone asks for it, and carries no deadline while it waits.
    expect(calls).toHaveLength(2);
    expect(calls[1]!.opts.deadline).toBeUndefined();
    const b = c.addPathStream();
    expect(calls).toHaveLength(2);
    b.write([path]);
    expect(calls[1]!.written).toHaveLength(1);
    c.close();
  });

  it('writes a request encoded ahead as it is', () => {
    const { stub, calls } = fakeStub();
    const c = new GobgpClient('/nonexistent', { stub });
    const encoded = c.encode([{ ...path, nlri: { '@type': TYPE.prefix, prefix: '198.51.100.1', prefix_len: 32 }, pattrs: [], is_withdraw: true }]);
    c.addPathStream().write(encoded);
    expect(calls[0]!.written).toEqual([encoded]);
    c.close();
  });

  it('close() cancels the spare waiting for use', async () => {
    const { stub, calls } = fakeStub();
    const c = new GobgpClient('/nonexistent', { stub });
    const ended = c.addPathStream().end();
    calls[0]!.reply(null);
    await ended;
    await tick();
    c.close();
    expect(calls.map((x) => x.cancelled)).toEqual([false, true]);
  });

  it('replaces a spare whose call failed while it waited', async () => {
    const { stub, calls } = fakeStub();
    const c = new GobgpClient('/nonexistent', { stub });
    const a = c.addPathStream();
    const ended = a.end();
    calls[0]!.reply(null);
    await ended;
    await tick();
    calls[1]!.reply(Object.assign(new Error('Unavailable'), { code: 14, details: 'gobgpd went away' }) as unknown as grpc.ServiceError);
    c.addPathStream().write([path]);
    expect(calls).toHaveLength(3);
    expect(calls[2]!.written).toHaveLength(1);
    c.close();
  });

  it('cancels a stream in use that gobgpd does not finish within 6 × deadlineMs', async () => {
    const { stub, calls } = fakeStub();
    const c = new GobgpClient('/nonexistent', { stub, deadlineMs: 20 });
    const s = c.addPathStream();
    s.write([path]);
    await expect(s.end()).rejects.toThrow(/AddPathStream: Cancelled/);
    expect(calls[0]!.cancelled).toBe(true);
    c.close();
  });
});
