// Hostile clients for the fault suite, plain JavaScript so the VM's node runs it without a
// build step. Prints one JSON summary line.
//   node abuse.mjs presence HOST PORT CONNECTIONS   flood a presence port with garbage
//   node abuse.mjs status SOCKET SEED                random, truncated, oversized, idle requests
//   node abuse.mjs ask SOCKET JSON-ARRAY             well-formed requests in one process (vipctl
//                                                    would start node once per request)
import { connect } from 'node:net';
import { prng } from '../../lab/prng.mjs';

const [mode, ...args] = process.argv.slice(2);
// A hard stop whatever happens: the caller's timeout is the real one, this only avoids strays.
setTimeout(() => process.exit(3), 150_000).unref();


/** Sends `payload` (or nothing), collects what comes back until the peer closes or `waitMs` passes. */
function exchange(opts, payload, waitMs) {
  return new Promise((resolve) => {
    const s = connect(opts);
    let reply = '';
    let outcome;
    const done = (how) => {
      if (outcome) return;
      outcome = how;
      clearTimeout(t);
      s.destroy();
      resolve({ how, reply });
    };
    const t = setTimeout(() => done('open'), waitMs);
    s.on('connect', () => {
      if (payload) s.write(payload, () => undefined);
    });
    s.on('data', (b) => {
      reply += b.toString('latin1');
      if (reply.includes('\n') && opts.path) done('replied');
    });
    s.on('end', () => done(reply ? 'replied' : 'closed'));
    s.on('error', (e) => done(e.code === 'ECONNRESET' || e.code === 'EPIPE' ? 'reset' : `error ${e.code ?? e.message}`));
  });
}

async function pool(n, concurrency, fn) {
  const out = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await fn(i);
      }
    }),
  );
  return out;
}

function tally(results) {
  const t = {};
  for (const r of results) t[r] = (t[r] ?? 0) + 1;
  return t;
}

async function presence(host, port, count) {
  const rnd = prng(1);
  const garbage = Buffer.alloc(4096, 0);
  for (let i = 0; i < garbage.length; i++) garbage[i] = Math.floor(rnd() * 256);
  const res = await pool(count, 250, () => exchange({ host, port }, garbage, 2000));
  return { connections: count, outcomes: tally(res.map((r) => r.how)), bytesAnswered: res.reduce((n, r) => n + r.reply.length, 0) };
}

function statusOk(reply) {
  try {
    return JSON.parse(reply.split('\n')[0]).ok === true;
  } catch {
    return false;
  }
}

async function status(path, seed) {
  const rnd = prng(seed);
  const out = {};
  // Random bytes, newline-terminated half of the time so some reach the JSON parser.
  const random = await pool(200, 40, () => {
    const b = Buffer.alloc(1 + Math.floor(rnd() * 4096));
    for (let i = 0; i < b.length; i++) b[i] = Math.floor(rnd() * 256);
    if (rnd() < 0.5) b[b.length - 1] = 10;
    return exchange({ path }, b, 1500);
  });
  out.random = tally(random.map((r) => (r.how === 'replied' ? (statusOk(r.reply) ? 'ok' : 'error reply') : r.how)));
  const valid = JSON.stringify({ method: 'status', params: {} });
  const truncated = await pool(200, 40, () => exchange({ path }, `${valid.slice(0, Math.floor(rnd() * valid.length))}\n`, 1500));
  out.truncated = tally(truncated.map((r) => (r.how === 'replied' ? (statusOk(r.reply) ? 'ok' : 'error reply') : r.how)));
  out.oversize = await oversize(path, 100 * 1024 * 1024);
  // The other client asks for something cheap: what is measured is getting in, not the cost of `status`.
  const cheap = JSON.stringify({ method: 'events', params: { limit: 1 } });
  out.idle = await idle(path, 1000, cheap);
  out.after = statusOk((await exchange({ path }, `${valid}\n`, 60_000)).reply);
  return out;
}

/** Streams `total` bytes without a newline; returns how far it got before vipd closed it. */
function oversize(path, total) {
  return new Promise((resolve) => {
    const s = connect({ path });
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    let sent = 0;
    let reply = '';
    const finish = (how) => {
      s.destroy();
      resolve({ bytesSent: sent, how, reply: reply.slice(0, 200) });
    };
    const pump = () => {
      while (sent < total && !s.destroyed) {
        sent += chunk.length;
        if (!s.write(chunk)) return void s.once('drain', pump);
      }
    };
    s.on('connect', pump);
    s.on('data', (b) => (reply += b.toString()));
    s.on('close', () => finish('closed by vipd'));
    s.on('error', () => undefined);
    setTimeout(() => finish('still open'), 60_000).unref();
  });
}

/** Holds `n` connections open without a word; then a new client asks for status. */
async function idle(path, n, valid) {
  const socks = [];
  let closedByVipd = 0;
  for (let i = 0; i < n; i++) {
    const s = connect({ path });
    s.on('error', () => undefined);
    s.on('close', () => closedByVipd++);
    socks.push(s);
    if (i % 100 === 99) await new Promise((r) => setTimeout(r, 10));
  }
  await new Promise((r) => setTimeout(r, 500));
  const t0 = Date.now();
  const served = statusOk((await exchange({ path }, `${valid}\n`, 30_000)).reply);
  const ms = Date.now() - t0;
  const res = { held: n, closedByVipd, otherClientServed: served, otherClientMs: ms };
  for (const s of socks) s.destroy();
  return res;
}

async function ask(path, requests) {
  const out = [];
  for (const r of requests) {
    const { reply } = await exchange({ path }, `${JSON.stringify(r)}\n`, 60_000);
    try {
      out.push(JSON.parse(reply.split('\n')[0]));
    } catch {
      out.push({ ok: false, error: `no answer: ${reply.slice(0, 200)}` });
    }
  }
  return out;
}

const modes = {
  presence: () => presence(args[0], Number(args[1]), Number(args[2])),
  status: () => status(args[0], Number(args[1] ?? 1)),
  ask: () => ask(args[0], JSON.parse(args[1])),
};
const result = modes[mode] ? await modes[mode]() : { error: `unknown mode ${mode}` };
console.log(JSON.stringify(result));
process.exit(0);
