/** vipctl's side of the status API: one request, one JSON answer (or a stream for follow). */
import { connect } from 'node:net';

export class DaemonUnreachable extends Error {}
export class DaemonError extends Error {}

/** Sends one request and resolves with its result; rejects with DaemonUnreachable or DaemonError. */
export function request(socket: string, method: string, params: Record<string, unknown> = {}, timeoutMs = 10_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const s = connect(socket);
    let buf = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new DaemonUnreachable(`no answer from ${socket} within ${timeoutMs} ms`));
    }, timeoutMs);
    const done = (fn: () => void): void => {
      clearTimeout(timer);
      s.destroy();
      fn();
    };
    s.on('connect', () => s.write(`${JSON.stringify({ method, params })}\n`));
    s.on('error', (e: NodeJS.ErrnoException) => done(() => reject(new DaemonUnreachable(`cannot reach vipd at ${socket}: ${e.code ?? e.message}`))));
    s.on('data', (b: Buffer) => {
      buf += b.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      done(() => {
        try {
          const r = JSON.parse(line) as { ok: boolean; result?: unknown; error?: string };
          if (r.ok) resolve(r.result);
          else reject(new DaemonError(r.error ?? 'unknown error'));
        } catch {
          reject(new DaemonError('malformed answer from vipd'));
        }
      });
    });
    s.on('close', () => done(() => reject(new DaemonUnreachable(`vipd closed the connection at ${socket}`))));
  });
}

/** Streams results of a follow-style method until the connection closes or `signal` aborts. */
export function follow(socket: string, method: string, params: Record<string, unknown>, onValue: (v: unknown) => void, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = connect(socket);
    let buf = '';
    signal?.addEventListener('abort', () => s.destroy());
    s.on('connect', () => s.write(`${JSON.stringify({ method, params })}\n`));
    s.on('error', (e: NodeJS.ErrnoException) => reject(new DaemonUnreachable(`cannot reach vipd at ${socket}: ${e.code ?? e.message}`)));
    s.on('data', (b: Buffer) => {
      buf += b.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const r = JSON.parse(line) as { ok: boolean; result?: unknown; error?: string };
          if (!r.ok) {
            s.destroy();
            reject(new DaemonError(r.error ?? 'unknown error'));
            return;
          }
          onValue(r.result);
        } catch {
          s.destroy();
          reject(new DaemonError('malformed answer from vipd'));
          return;
        }
      }
    });
    s.on('close', () => resolve());
  });
}
