// Bad clients of vipd's status socket, run inside the VM by vipctl.test.ts:
//   node probe.mjs SOCKET abuse        malformed, oversized and binary requests (random bytes,
//                                      idle and too many connections: the fault suite)
//   node probe.mjs SOCKET flood N      N drain/undrain requests (journal growth)
// Prints one JSON line: what each client got back.
import { connect } from 'node:net';

const [socket, mode, count] = process.argv.slice(2);

/** Sends data, collects what comes back until the first reply line (or, with untilClose, until the server closes) or waitMs passes. */
function client(data, { waitMs = 5000, untilClose = false } = {}) {
  return new Promise((resolve) => {
    const s = connect(socket);
    let out = '';
    let closed = false;
    const done = () => {
      clearTimeout(timer);
      s.destroy();
      resolve({ reply: out, closed });
    };
    const timer = setTimeout(done, waitMs);
    s.on('data', (b) => {
      out += b.toString('utf8');
      if (!untilClose && out.includes('\n')) done();
    });
    s.on('error', () => undefined);
    s.on('close', () => {
      closed = true;
      done();
    });
    if (data !== undefined) s.write(data);
  });
}

/** One request per line on one connection, answers in order. */
async function call(s, req) {
  return new Promise((resolve) => {
    let buf = '';
    const on = (b) => {
      buf += b.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        s.off('data', on);
        resolve(JSON.parse(buf.slice(0, nl)));
      }
    };
    s.on('data', on);
    s.write(`${JSON.stringify(req)}\n`);
  });
}

const result = {};
if (mode === 'abuse') {
  result.notJson = await client('this is not json\n');
  result.noMethod = await client('{"params":{}}\n');
  result.unknownMethod = await client('{"method":"rm -rf","params":{}}\n');
  result.badParams = await client('{"method":"status","params":[1,2]}\n');
  result.binary = await client(Buffer.concat([Buffer.from([0, 255, 254, 1, 2, 3, 0xc3, 0x28]), Buffer.from('\n')]));
  result.oversizedNoNewline = await client('x'.repeat(70 * 1024), { untilClose: true });
  result.oversizedLine = await client(`{"method":"status","params":{"pad":"${'y'.repeat(100 * 1024)}"}}\n`, { untilClose: true });
  // status gathers host facts: slow in a loaded VM.
  result.afterwards = await client('{"method":"status"}\n', { waitMs: 20_000 });
} else if (mode === 'flood') {
  const s = connect(socket);
  await new Promise((r) => s.once('connect', r));
  let ok = 0;
  for (let i = 0; i < Number(count); i++) {
    const r = await call(s, { method: i % 2 ? 'undrain' : 'drain', params: { target: 'n3' } });
    if (r.ok) ok++;
  }
  s.destroy();
  result.ok = ok;
}
process.stdout.write(`${JSON.stringify(result)}\n`);
