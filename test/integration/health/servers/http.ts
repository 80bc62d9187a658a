/**
 * HTTP and HTTPS realserver with one path per way a check can pass or fail:
 *   /ok               200 "status: healthy"
 *   /status/NNN       NNN
 *   /toggle           200 "healthy", or 503 after SIGUSR1 (SIGUSR2 restores)
 *   /vhost            200 for Host: www.example, else 421
 *   /method           200 for POST, else 405
 *   /slow?ms=N        200 after N ms
 *   /hang             never answers
 *   /trickle-head     the status line, one byte per 100 ms
 *   /trickle-body     headers at once, then the body one byte per 100 ms
 *   /big              100 MB body that starts "BEGIN healthy"
 *   /garbage          not HTTP at all
 * SIGHUP prints `STATS {json}` (requests, concurrency maxima, bytes /big sent) and resets them.
 * HTTPS listeners pick their certificate by SNI; without a match they use their default one.
 * Usage: http.ts '{"host":"203.0.113.10","http":8080,"https":[{"port":8443,"cert":"a.pem","key":"a.key","sni":{"www.example":{"cert":...,"key":...}}}]}'
 */
import { readFileSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import { createSecureContext, type SecureContext } from 'node:tls';

interface KeyPair {
  cert: string;
  key: string;
}
interface Options {
  host: string;
  http?: number;
  https?: Array<KeyPair & { port: number; sni?: Record<string, KeyPair> }>;
}
const opts = JSON.parse(process.argv[2] ?? '{}') as Options;

const BIG = 100 * 1024 * 1024;
let failing = false;
let changes = 0;
let stats = { requests: 0, maxConcurrent: 0, maxConcurrentByPath: {} as Record<string, number>, bigBytesSent: [] as number[] };
let concurrent = 0;
const byPath = new Map<string, number>();

function track(key: string, res: ServerResponse): void {
  stats.requests++;
  concurrent++;
  byPath.set(key, (byPath.get(key) ?? 0) + 1);
  stats.maxConcurrent = Math.max(stats.maxConcurrent, concurrent);
  stats.maxConcurrentByPath[key] = Math.max(stats.maxConcurrentByPath[key] ?? 0, byPath.get(key) ?? 0);
  res.once('close', () => {
    concurrent--;
    byPath.set(key, (byPath.get(key) ?? 1) - 1);
  });
}

/** Writes `total` bytes as fast as the client reads them; stops when it goes away. */
function big(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': BIG });
  const chunk = Buffer.alloc(64 * 1024, 'x');
  const first = Buffer.from(chunk);
  first.write('BEGIN healthy ');
  let sent = 0;
  let closed = false;
  res.once('close', () => {
    closed = true;
    stats.bigBytesSent.push(sent);
  });
  const pump = (): void => {
    while (!closed && sent < BIG) {
      const c = sent === 0 ? first : chunk;
      sent += c.length;
      if (!res.write(c)) return void res.once('drain', pump);
    }
    if (!closed) res.end();
  };
  pump();
}

/** Writes `text` one byte per 100 ms straight to the socket; stops when it goes away. */
function trickle(write: (b: string) => boolean, onClose: (f: () => void) => void, text: string): void {
  let i = 0;
  const t = setInterval(() => {
    if (i < text.length) write(text[i++] ?? '');
  }, 100);
  onClose(() => clearInterval(t));
}

function handler(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://x');
  track(url.pathname + url.search, res);
  const reply = (status: number, body: string): void => {
    res.writeHead(status, { 'content-type': 'text/plain' });
    res.end(body);
  };
  const status = /^\/status\/(\d{3})$/.exec(url.pathname);
  if (status) return reply(Number(status[1]), `status ${status[1]}`);
  switch (url.pathname) {
    case '/ok':
      return reply(200, 'status: healthy');
    case '/toggle':
      return failing ? reply(503, 'unhealthy') : reply(200, 'healthy');
    case '/vhost':
      return req.headers.host === 'www.example' ? reply(200, 'vhost ok') : reply(421, `wrong host ${req.headers.host ?? ''}`);
    case '/method':
      return req.method === 'POST' ? reply(200, 'posted') : reply(405, `method ${req.method ?? ''}`);
    case '/slow': {
      const t = setTimeout(() => reply(200, 'slow but healthy'), Number(url.searchParams.get('ms') ?? 1000));
      res.once('close', () => clearTimeout(t));
      return;
    }
    case '/hang':
      return;
    case '/trickle-head':
      return trickle((b) => req.socket.write(b), (f) => req.socket.once('close', f), 'HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\nhealthy');
    case '/trickle-body':
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 1000 });
      return trickle((b) => res.write(b), (f) => res.once('close', f), 'healthy'.padEnd(1000, '.'));
    case '/big':
      return big(res);
    case '/garbage':
      req.socket.end('SSH-2.0-OpenSSH_9.2p1\r\n');
      return;
    default:
      return reply(404, 'not found');
  }
}

const pair = (p: KeyPair): { cert: Buffer; key: Buffer } => ({ cert: readFileSync(p.cert), key: readFileSync(p.key) });
const listening: Array<Promise<void>> = [];
const listen = (s: http.Server, port: number): void => {
  listening.push(new Promise((r) => s.listen(port, opts.host, r)));
};
if (opts.http) listen(http.createServer(handler), opts.http);
for (const h of opts.https ?? []) {
  const contexts = new Map<string, SecureContext>(Object.entries(h.sni ?? {}).map(([name, p]) => [name, createSecureContext(pair(p))]));
  const server = https.createServer({ ...pair(h), SNICallback: (name, cb) => cb(null, contexts.get(name)) }, handler);
  // A client that gives up during the handshake is expected here.
  server.on('tlsClientError', () => undefined);
  listen(server, h.port);
}
await Promise.all(listening);

process.on('SIGUSR1', () => {
  failing = true;
  console.log(`mode ${++changes} failing`);
});
process.on('SIGUSR2', () => {
  failing = false;
  console.log(`mode ${++changes} healthy`);
});
process.on('SIGHUP', () => {
  console.log(`STATS ${JSON.stringify(stats)}`);
  stats = { requests: 0, maxConcurrent: 0, maxConcurrentByPath: {}, bigBytesSent: [] };
});
console.log('ready');
