/**
 * The local status API: newline-delimited JSON over a unix socket (mode 0660, optional group),
 * never TCP. Requests are `{"method": "...", "params": {...}}`; responses are
 * `{"ok": true, "result": ...}` or `{"ok": false, "error": "..."}`. Oversized, malformed or
 * idle requests get an error or a closed connection; nothing a client sends can crash vipd
 * or grow memory past the per-connection limit × the connection limit.
 */
import { chmodSync, chownSync, readFileSync, rmSync, mkdirSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from '../log/logger.js';

/** A method either answers once, or (for follow-style calls) streams until the client leaves. */
export type MethodResult = { stream: (send: (value: unknown) => void) => () => void } | { value: unknown };
export type Method = (params: Record<string, unknown>) => Promise<MethodResult> | MethodResult;

export interface StatusServerOptions {
  socket: string;
  group?: string;
  maxRequestBytes?: number;
  idleTimeoutMs?: number;
  maxConnections?: number;
}

export class RequestError extends Error {}

function groupId(name: string): number | undefined {
  if (/^\d+$/.test(name)) return Number(name);
  try {
    for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
      const [g, , gid] = line.split(':');
      if (g === name && gid) return Number(gid);
    }
  } catch {
    /* no /etc/group: only numeric groups work */
  }
  return undefined;
}

export class StatusServer {
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  /** Connections waiting for a request, oldest first: evicted to admit a new one when full. */
  private readonly idle = new Set<Socket>();
  private readonly maxRequest: number;
  private readonly idleMs: number;
  private readonly maxConns: number;

  constructor(
    private readonly opts: StatusServerOptions,
    private readonly methods: Readonly<Record<string, Method>>,
    private readonly log: Logger,
  ) {
    this.maxRequest = opts.maxRequestBytes ?? 64 * 1024;
    this.idleMs = opts.idleTimeoutMs ?? 10_000;
    this.maxConns = opts.maxConnections ?? 64;
  }

  async start(): Promise<void> {
    mkdirSync(dirname(this.opts.socket), { recursive: true });
    rmSync(this.opts.socket, { force: true });
    const server = createServer((s) => this.admit(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.socket, () => resolve());
    });
    server.on('error', (e) => this.log.error('status socket error', { error: e.message }));
    chmodSync(this.opts.socket, 0o660);
    if (this.opts.group) {
      const gid = groupId(this.opts.group);
      if (gid === undefined) this.log.warn('status socket group not found; socket stays root-only', { group: this.opts.group });
      else chownSync(this.opts.socket, 0, gid);
    }
    this.server = server;
  }

  /**
   * At the limit the oldest idle connection makes room, so connections held open without a
   * request cannot lock operators out; only requests in progress and followers are kept.
   */
  private admit(s: Socket): void {
    if (this.sockets.size >= this.maxConns) {
      const oldest = this.idle.values().next().value;
      if (!oldest) {
        s.destroy();
        return;
      }
      this.idle.delete(oldest);
      this.sockets.delete(oldest);
      oldest.destroy();
    }
    this.accept(s);
  }

  private accept(s: Socket): void {
    this.sockets.add(s);
    this.idle.add(s);
    s.setTimeout(this.idleMs);
    let buf = '';
    let busy = false;
    let unsubscribe: (() => void) | undefined;
    const close = (): void => {
      unsubscribe?.();
      unsubscribe = undefined;
      this.sockets.delete(s);
      this.idle.delete(s);
      s.destroy();
    };
    const reply = (v: unknown): void => {
      if (!s.destroyed) s.write(`${JSON.stringify(v)}\n`);
    };
    s.on('timeout', () => {
      // A follower waits for events on purpose, and a slow answer is not idleness; anyone else is dropped.
      if (!unsubscribe && !busy) close();
    });
    s.on('error', close);
    s.on('close', close);
    s.on('data', (chunk: Buffer) => {
      if (busy || unsubscribe) return;
      buf += chunk.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl < 0) {
        if (buf.length > this.maxRequest) {
          reply({ ok: false, error: `request larger than ${this.maxRequest} bytes` });
          close();
        }
        return;
      }
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.length > this.maxRequest) {
        reply({ ok: false, error: `request larger than ${this.maxRequest} bytes` });
        close();
        return;
      }
      busy = true;
      this.idle.delete(s);
      const waiting = (): void => {
        busy = false;
        if (!s.destroyed) this.idle.add(s);
      };
      void this.handle(line).then(
        (r) => {
          if ('stream' in r) {
            busy = false;
            unsubscribe = r.stream((v) => reply({ ok: true, result: v }));
          } else {
            waiting();
            reply({ ok: true, result: r.value });
          }
        },
        (e: unknown) => {
          waiting();
          reply({ ok: false, error: e instanceof Error ? e.message : String(e) });
        },
      );
    });
  }

  private async handle(line: string): Promise<MethodResult> {
    let req: unknown;
    try {
      req = JSON.parse(line);
    } catch {
      throw new RequestError('request is not valid JSON');
    }
    if (typeof req !== 'object' || req === null || typeof (req as { method?: unknown }).method !== 'string') {
      throw new RequestError('request needs a "method" string');
    }
    const { method, params } = req as { method: string; params?: unknown };
    const fn = Object.hasOwn(this.methods, method) ? this.methods[method] : undefined;
    if (!fn) throw new RequestError(`unknown method ${JSON.stringify(method.slice(0, 64))}`);
    if (params !== undefined && (typeof params !== 'object' || params === null || Array.isArray(params))) {
      throw new RequestError('"params" must be an object');
    }
    return fn((params ?? {}) as Record<string, unknown>);
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    this.idle.clear();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(this.opts.socket, { force: true });
  }
}
