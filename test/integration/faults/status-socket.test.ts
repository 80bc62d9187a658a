/**
 * Regressions found by the fault suite on the status socket (no VM needed): connections held
 * open without a request used to fill the 64 slots and lock every operator out until the idle
 * timeout, and a slow answer used to be cut off by that timeout.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { StatusServer } from '../../../src/coordinator/status-server.js';
import { logger } from '../../../src/log/logger.js';

const dir = mkdtempSync(join(tmpdir(), 'vipd-faults-'));
const servers: StatusServer[] = [];

async function serve(name: string, idleTimeoutMs: number): Promise<string> {
  const socket = join(dir, `${name}.sock`);
  const server = new StatusServer(
    { socket, idleTimeoutMs, maxConnections: 64 },
    {
      status: () => ({ value: 'fine' }),
      slow: async () => {
        await new Promise((r) => setTimeout(r, 3 * idleTimeoutMs));
        return { value: 'late but complete' };
      },
    },
    logger('faults'),
  );
  servers.push(server);
  await server.start();
  return socket;
}

function ask(socket: string, method: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(socket);
    let buf = '';
    s.on('connect', () => s.write(`${JSON.stringify({ method })}\n`));
    s.on('data', (b) => {
      buf += b.toString();
      if (buf.includes('\n')) {
        s.destroy();
        resolve(buf.trim());
      }
    });
    s.on('close', () => reject(new Error(`closed without an answer (${buf})`)));
    s.on('error', reject);
  });
}

afterAll(async () => {
  for (const s of servers) await s.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('status socket under hostile clients', () => {
  it('serves a new client while 1,000 idle connections are held open', async () => {
    // An idle timeout far longer than the test: only eviction can make room.
    const socket = await serve('held', 60_000);
    const held: Socket[] = [];
    let closedByServer = 0;
    for (let i = 0; i < 1000; i++) {
      const s = connect(socket);
      s.on('error', () => undefined);
      s.on('close', () => closedByServer++);
      held.push(s);
    }
    await Promise.all(held.map((s) => new Promise((r) => (s.connecting ? s.once('connect', r).once('close', r) : r(null)))));
    try {
      expect(await ask(socket, 'status')).toBe('{"ok":true,"result":"fine"}');
      expect(closedByServer).toBeGreaterThanOrEqual(1000 - 64);
    } finally {
      for (const s of held) s.destroy();
    }
  });

  it('does not cut off an answer that takes longer than the idle timeout', async () => {
    expect(await ask(await serve('slow', 300), 'slow')).toBe('{"ok":true,"result":"late but complete"}');
  });
});
