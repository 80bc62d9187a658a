/**
 * DNS realserver over UDP and TCP with a fixed zone, including broken answers. Its message
 * builder is written here on purpose, apart from the checker's codec.
 *   ok.example        A 192.0.2.53, AAAA 2001:db8::53, MX 10 mail.example, TXT "v=ok"
 *   www.example       CNAME ok.example + A 192.0.2.53
 *   wrong.example     A 192.0.2.99
 *   nx.example        NXDOMAIN        fail.example   SERVFAIL       refused.example  REFUSED
 *   badlen.example    A record whose RDLENGTH runs past the end of the message
 *   loop.example      answer name that is a compression pointer to itself
 *   short.example     a 5-byte reply
 *   other.example     answers a different question
 *   silent.example    no answer
 * SIGUSR1 makes ok.example answer SERVFAIL, SIGUSR2 restores it.
 * Usage: dns.ts '{"host":"203.0.113.10","port":53}'
 */
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';

const { host, port } = JSON.parse(process.argv[2] ?? '{}') as { host: string; port: number };
let broken = false;
let changes = 0;

const u16 = (n: number): Buffer => Buffer.from([n >> 8, n & 0xff]);
const name = (s: string): Buffer => Buffer.concat([...s.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0])]);
/** A record whose owner is the question name (pointer to offset 12). */
const rr = (type: number, rdata: Buffer, rdlength = rdata.length): Buffer =>
  Buffer.concat([Buffer.from([0xc0, 12]), u16(type), u16(1), Buffer.from([0, 0, 0, 30]), u16(rdlength), rdata]);
const ip4 = (a: string): Buffer => Buffer.from(a.split('.').map(Number));

/** The question as asked: name labels, type, and the offset after it. */
function question(q: Buffer): { qname: string; qtype: number; end: number } {
  const labels: string[] = [];
  let off = 12;
  while (q[off]) {
    const len = q[off] ?? 0;
    labels.push(q.subarray(off + 1, off + 1 + len).toString('latin1'));
    off += len + 1;
  }
  return { qname: labels.join('.').toLowerCase(), qtype: q.readUInt16BE(off + 1), end: off + 5 };
}

function answer(q: Buffer): Buffer | undefined {
  const { qname, qtype, end } = question(q);
  const id = q.subarray(0, 2);
  const reply = (rcode: number, answers: Buffer[], qsection = q.subarray(12, end)): Buffer =>
    Buffer.concat([id, u16(0x8180 | rcode), u16(1), u16(answers.length), u16(0), u16(0), qsection, ...answers]);
  const A = 1;
  switch (qname) {
    case 'ok.example':
      if (broken) return reply(2, []);
      if (qtype === A) return reply(0, [rr(A, ip4('192.0.2.53'))]);
      if (qtype === 28) return reply(0, [rr(28, Buffer.from('20010db8000000000000000000000053', 'hex'))]);
      if (qtype === 15) return reply(0, [rr(15, Buffer.concat([u16(10), name('mail.example')]))]);
      if (qtype === 16) return reply(0, [rr(16, Buffer.from('\x04v=ok'))]);
      return reply(0, []);
    case 'www.example': {
      // The CNAME's target starts at offset 12 + question length + 12 (the CNAME record header).
      const target = name('ok.example');
      const at = end + 12;
      const a = Buffer.concat([Buffer.from([0xc0 | (at >> 8), at & 0xff]), u16(A), u16(1), Buffer.from([0, 0, 0, 30]), u16(4), ip4('192.0.2.53')]);
      return reply(0, [rr(5, target), a]);
    }
    case 'wrong.example':
      return reply(0, [rr(A, ip4('192.0.2.99'))]);
    case 'nx.example':
      return reply(3, []);
    case 'fail.example':
      return reply(2, []);
    case 'refused.example':
      return reply(5, []);
    case 'badlen.example':
      return reply(0, [rr(A, ip4('192.0.2.53'), 200)]);
    case 'loop.example': {
      const self = end;
      return reply(0, [Buffer.concat([Buffer.from([0xc0 | (self >> 8), self & 0xff]), u16(A), u16(1), Buffer.from([0, 0, 0, 30]), u16(4), ip4('192.0.2.53')])]);
    }
    case 'short.example':
      return Buffer.concat([id, Buffer.from([0x81, 0x80, 0])]);
    case 'other.example':
      return reply(0, [rr(A, ip4('192.0.2.53'))], Buffer.concat([name('elsewhere.example'), u16(A), u16(1)]));
    case 'silent.example':
      return undefined;
    default:
      return reply(3, []);
  }
}

const udp = createSocket('udp4');
udp.on('message', (q, from) => {
  const r = answer(q);
  if (r) udp.send(r, from.port, from.address);
});
await new Promise<void>((r) => udp.bind(port, host, r));

const tcp = createServer((c) => {
  c.on('error', () => undefined);
  let buf = Buffer.alloc(0);
  c.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
    const r = answer(buf.subarray(2, 2 + buf.readUInt16BE(0)));
    if (r) c.end(Buffer.concat([u16(r.length), r]));
  });
});
await new Promise<void>((r) => tcp.listen(port, host, r));

process.on('SIGUSR1', () => {
  broken = true;
  console.log(`mode ${++changes} servfail`);
});
process.on('SIGUSR2', () => {
  broken = false;
  console.log(`mode ${++changes} ok`);
});
console.log('ready');
