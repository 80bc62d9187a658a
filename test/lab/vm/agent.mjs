// Guest agent of the vipd test VM (plain JavaScript, no dependencies: it runs on the node
// copied into the initramfs). Speaks newline-delimited JSON with the host over the
// virtio-serial port named "vipd.agent":
//   request  {id, cmd, timeoutMs?, input?}   -> {id, code, signal, stdout, stderr, durationMs}
//   request  {id, shutdown: true}            -> {id, ok: true}, then the VM powers off
//   anything unusable                        -> {id|null, error}
// and announces itself with {event: "ready"} when it starts.
// Requests run concurrently: a long command never delays the others.
import { spawn, spawnSync } from 'node:child_process';
import { open, readdir, readFile } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';

const PORT_NAME = 'vipd.agent';
const MAX_LINE = 64 * 1024 * 1024;
const MAX_OUTPUT = 64 * 1024 * 1024;
const DEFAULT_TIMEOUT_MS = 30_000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function findPort() {
  for (let i = 0; ; i++) {
    try {
      for (const d of await readdir('/sys/class/virtio-ports')) {
        const name = (await readFile(`/sys/class/virtio-ports/${d}/name`, 'utf8')).trim();
        if (name === PORT_NAME) return `/dev/${d}`;
      }
    } catch {
      /* virtio_console not probed yet */
    }
    if (i === 300) throw new Error(`no virtio port named ${PORT_NAME}`);
    await sleep(100);
  }
}

const path = await findPort();
const fh = await open(path, 'r+');

// Writes are serialized so lines never interleave. A write blocks (in libuv's thread pool,
// not the event loop) while the host side is not connected.
let writing = Promise.resolve();
function send(msg) {
  const buf = Buffer.from(JSON.stringify(msg) + '\n');
  writing = writing.then(async () => {
    for (let off = 0; off < buf.length; ) off += (await fh.write(buf, off)).bytesWritten;
  });
  writing = writing.catch((e) => console.error(`vipd-agent: write failed: ${e.message}`));
  return writing;
}

function run(req) {
  const started = performance.now();
  const timeoutMs = Number.isFinite(req.timeoutMs) && req.timeoutMs > 0 ? req.timeoutMs : DEFAULT_TIMEOUT_MS;
  // detached: own process group, so a timeout kills the command's children too.
  const child = spawn('/bin/sh', ['-c', req.cmd], { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  const out = [];
  const err = [];
  let outLen = 0;
  let errLen = 0;
  let timedOut = false;
  let done = false;
  const kill = () => {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  };
  const finish = (code, signal, extra) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    clearTimeout(grace);
    let stderr = Buffer.concat(err).toString('utf8');
    if (timedOut) stderr += `\ntimeout after ${timeoutMs} ms`;
    if (extra) stderr += `\n${extra}`;
    send({
      id: req.id,
      code: code ?? -1,
      signal: signal ?? null,
      stdout: Buffer.concat(out).toString('utf8'),
      stderr,
      durationMs: performance.now() - started,
    });
  };
  let grace;
  const timer = setTimeout(() => {
    timedOut = true;
    kill();
    // A child that escaped the group (setsid) may still hold the pipes: answer anyway.
    grace = setTimeout(() => finish(-1, 'SIGKILL', 'output pipes still open after kill'), 2_000);
  }, timeoutMs);
  child.stdout.on('data', (b) => {
    if (outLen < MAX_OUTPUT) out.push(b);
    outLen += b.length;
  });
  child.stderr.on('data', (b) => {
    if (errLen < MAX_OUTPUT) err.push(b);
    errLen += b.length;
  });
  child.on('error', (e) => finish(-1, null, `spawn failed: ${e.message}`));
  child.on('close', (code, signal) => finish(code, signal));
  child.stdin.on('error', () => {
    /* the command may exit without reading its input */
  });
  child.stdin.end(typeof req.input === 'string' ? req.input : '');
}

async function handle(line) {
  let req;
  try {
    req = JSON.parse(line);
  } catch (e) {
    return send({ id: null, error: `bad request (not JSON): ${e.message}` });
  }
  const id = req !== null && typeof req === 'object' && 'id' in req ? req.id : null;
  if (id === null) return send({ id: null, error: 'bad request: no id' });
  if (req.shutdown === true) {
    await send({ id, ok: true });
    await sleep(100); // let qemu pass the answer on before the machine disappears
    spawnSync('/bin/sync');
    spawnSync('/sbin/poweroff', ['-f']);
    process.exit(0);
  }
  if (typeof req.cmd !== 'string') return send({ id, error: 'bad request: cmd must be a string' });
  run(req);
}

// The host connects before the guest boots, so this first line reaches it; the write waits
// (in the thread pool) if it has not connected yet.
void send({ event: 'ready' });
console.log('VIPD-GUEST-READY');

const decoder = new StringDecoder('utf8'); // a chunk may end inside a multi-byte character
const chunk = Buffer.alloc(256 * 1024);
let pending = '';
for (;;) {
  let n;
  try {
    ({ bytesRead: n } = await fh.read(chunk, 0, chunk.length, null));
  } catch (e) {
    console.error(`vipd-agent: read failed: ${e.message}`);
    await sleep(200);
    continue;
  }
  if (n === 0) {
    // The port reads as EOF while no host is connected; poll until one is.
    await sleep(100);
    continue;
  }
  pending += decoder.write(chunk.subarray(0, n));
  let nl;
  while ((nl = pending.indexOf('\n')) >= 0) {
    const line = pending.slice(0, nl).trim();
    pending = pending.slice(nl + 1);
    if (line) void handle(line);
  }
  if (pending.length > MAX_LINE) {
    pending = '';
    void send({ id: null, error: `bad request: line longer than ${MAX_LINE} bytes` });
  }
}
