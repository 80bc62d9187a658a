/**
 * Hostile health-check targets, all reproducible from a seed:
 *   TLS ports (`tls`): random bytes then close, a record header announcing 16 KB then silence,
 *     an endless random stream, a fatal alert, silence.
 *   DNS on `dns` (UDP and TCP): the query `mN.example` gets a valid A answer damaged by mutation
 *     N (record lengths, counts, truncation, flipped bytes, pointer loops); over TCP `tN.example`
 *     gets a length prefix that lies.
 *   Agent ports (`agent`): replies that are not agent answers or carry weights out of range.
 * Usage: hostile.ts '{"host":"203.0.113.10","seed":1,"tls":8443,"dns":5353,"agent":9001,"agentReplies":["150%"]}'
 */
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { createServer, type Socket } from 'node:net';
import { prng } from '../../../lab/prng.mjs';

interface Options {
  host: string;
  seed: number;
  tls: number;
  dns: number;
  agent: number;
  agentReplies: string[];
}
const o = JSON.parse(process.argv[2] ?? '{}') as Options;


const listening: Promise<unknown>[] = [];
const tcp = (port: number, onConn: (c: Socket) => void): void => {
  const server = createServer((c) => {
    c.on('error', () => undefined);
    onConn(c);
  });
  listening.push(new Promise((r) => server.listen(port, o.host, () => r(null))));
};

// ---------------------------------------------------------------- TLS garbage
const TLS_MODES = [
  (c: Socket) => c.end(randomBytes(512)),
  (c: Socket) => c.write(Buffer.from([0x16, 0x03, 0x03, 0x40, 0x00, 0x01])),
  (c: Socket) => {
    const pump = (): void => {
      while (!c.destroyed && c.write(randomBytes(16 * 1024)));
      if (!c.destroyed) c.once('drain', pump);
    };
    pump();
  },
  (c: Socket) => c.end(Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28])),
  () => undefined,
];
TLS_MODES.forEach((mode, i) => tcp(o.tls + i, (c) => c.once('data', () => mode(c))));

// ---------------------------------------------------------------- DNS
/** A valid reply with one A record (198.51.100.53) to `query`. */
function answer(query: Buffer): Buffer {
  const header = Buffer.from(query.subarray(0, 12));
  header.writeUInt16BE(0x8180, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(1, 6);
  header.writeUInt32BE(0, 8);
  let end = 12;
  while (end < query.length && query[end] !== 0) end += query[end]! + 1;
  const question = query.subarray(12, end + 5);
  const rr = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 51, 100, 53]);
  return Buffer.concat([header, question, rr]);
}

function label(query: Buffer): string {
  const len = query[12] ?? 0;
  return query.subarray(13, 13 + len).toString('latin1');
}

function mutate(reply: Buffer, n: number): Buffer {
  const rnd = prng(o.seed * 1000 + n);
  const b = Buffer.from(reply);
  const rdlen = b.length - 6;
  switch (n % 8) {
    case 0:
      b.writeUInt16BE(Math.floor(rnd() * 65536), rdlen);
      return b;
    case 1:
      b.writeUInt16BE(Math.floor(rnd() * 65536), 6);
      return b;
    case 2:
      return b.subarray(0, Math.floor(rnd() * b.length));
    case 3:
      for (let i = 0; i < 1 + Math.floor(rnd() * 8); i++) b[12 + Math.floor(rnd() * (b.length - 12))] = Math.floor(rnd() * 256);
      return b;
    case 4:
      // The answer's name points at itself.
      b.writeUInt16BE(0xc000 | (b.length - 16), b.length - 16);
      return b;
    case 5:
      return Buffer.concat([b, randomBytes(Math.floor(rnd() * 2000))]);
    case 6:
      b.writeUInt16BE(Math.floor(rnd() * 65536), 4);
      return b;
    default:
      return Buffer.concat([b.subarray(0, 2), randomBytes(Math.floor(rnd() * 600))]);
  }
}

const udp = createSocket('udp4');
udp.on('message', (q, from) => {
  const n = Number(/^m(\d+)$/.exec(label(q))?.[1] ?? -1);
  if (n >= 0) udp.send(mutate(answer(q), n), from.port, from.address);
});
listening.push(new Promise((r) => udp.bind(o.dns, o.host, () => r(null))));

tcp(o.dns, (c) => {
  let buf = Buffer.alloc(0);
  c.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
    const q = buf.subarray(2, 2 + buf.readUInt16BE(0));
    const name = label(q);
    const m = /^([mt])(\d+)$/.exec(name);
    if (!m) return void c.destroy();
    const n = Number(m[2]);
    const reply = m[1] === 'm' ? mutate(answer(q), n) : answer(q);
    const prefix = Buffer.alloc(2);
    if (m[1] === 'm') {
      prefix.writeUInt16BE(reply.length);
      return void c.end(Buffer.concat([prefix, reply]));
    }
    switch (n % 4) {
      case 0:
        // Announces more than it sends, then closes.
        prefix.writeUInt16BE(reply.length + 100);
        return void c.end(Buffer.concat([prefix, reply]));
      case 1:
        // Announces the maximum and trickles.
        prefix.writeUInt16BE(65535);
        c.write(prefix);
        return void setInterval(() => c.destroyed || c.write(Buffer.from([0])), 50).unref();
      case 2:
        return void c.end(Buffer.from([0, 0]));
      default:
        return void c.end(Buffer.from([reply.length >> 8]));
    }
  });
});

// ---------------------------------------------------------------- agents
o.agentReplies.forEach((reply, i) => tcp(o.agent + i, (c) => c.end(Buffer.from(reply, 'latin1'))));

await Promise.all(listening);
console.log('ready');
