import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { follow, request, DaemonError, DaemonUnreachable } from '../../../src/cli/client.js';
import { StatusServer } from '../../../src/coordinator/status-server.js';
import { nullLogger } from '../../../src/log/logger.js';

const dir = mkdtempSync(join(tmpdir(), 'vipd-status-'));
const socket = join(dir, 'vipd.sock');
let server: StatusServer;
const listeners = new Set<(v: unknown) => void>();

beforeAll(async () => {
  server = new StatusServer({ socket, maxRequestBytes: 1024, idleTimeoutMs: 300, maxConnections: 8 }, {
    echo: (p) => ({ value: p }),
    fail: () => {
      throw new Error('nope');
    },
    tail: () => ({
      stream: (send) => {
        listeners.add(send);
        return () => listeners.delete(send);
      },
    }),
  }, nullLogger);
  await server.start();
});
afterAll(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

function raw(data: string | Buffer, waitMs = 1000): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(socket);
    let out = '';
    const t = setTimeout(() => {
      s.destroy();
      resolve(out);
    }, waitMs);
    s.on('data', (b) => (out += b.toString()));
    s.on('close', () => {
      clearTimeout(t);
      resolve(out);
    });
    s.on('error', () => undefined);
    s.write(data);
  });
}

describe('status API server', () => {
  it('is a 0660 unix socket', () => {
    const st = statSync(socket);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o660);
  });

  it('answers a request', async () => {
    expect(await request(socket, 'echo', { a: 1 })).toEqual({ a: 1 });
  });

  it('reports method errors and unknown methods as errors', async () => {
    await expect(request(socket, 'fail')).rejects.toThrow(DaemonError);
    await expect(request(socket, 'nope')).rejects.toThrow('unknown method "nope"');
    await expect(request(socket, 'constructor')).rejects.toThrow('unknown method');
  });

  it('answers malformed input with an error and keeps serving', async () => {
    expect(await raw('{not json\n')).toContain('request is not valid JSON');
    expect(await raw('[1,2]\n')).toContain(String.raw`request needs a \"method\" string`);
    expect(await raw('{"method":"echo","params":5}\n')).toContain(String.raw`\"params\" must be an object`);
    expect(await raw(Buffer.from([0xff, 0x00, 0x13, 0x0a]))).toContain('not valid JSON');
    expect(await request(socket, 'echo', { still: 'alive' })).toEqual({ still: 'alive' });
  });

  it('closes oversized requests without buffering them', async () => {
    const out = await raw('x'.repeat(10_000));
    expect(out).toContain('request larger than 1024 bytes');
    expect(await request(socket, 'echo', {})).toEqual({});
  });

  it('drops idle connections', async () => {
    const started = Date.now();
    await raw('', 5000);
    expect(Date.now() - started).toBeLessThan(4000);
  });

  it('streams to followers until they leave', async () => {
    const got: unknown[] = [];
    const ac = new AbortController();
    const done = follow(socket, 'tail', {}, (v) => {
      got.push(v);
      if (got.length === 2) ac.abort();
    }, ac.signal);
    while (listeners.size === 0) await new Promise((r) => setTimeout(r, 10));
    for (const l of listeners) l({ n: 1 });
    await new Promise((r) => setTimeout(r, 500));
    for (const l of listeners) l({ n: 2 });
    await done;
    expect(got).toEqual([{ n: 1 }, { n: 2 }]);
    await new Promise((r) => setTimeout(r, 50));
    expect(listeners.size).toBe(0);
  });

  it('says the daemon is unreachable when nothing listens', async () => {
    await expect(request(join(dir, 'none.sock'), 'echo')).rejects.toThrow(DaemonUnreachable);
  });
});
