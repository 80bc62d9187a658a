// A realserver for the coordinator bench, run in a realserver namespace on the host, so that the
// moment of the deciding health check is taken on the host's clock (the same clock that sees
// BIRD):
//   node realserver.mjs ADDRESS CONTROL_SOCKET
// - HTTP on ADDRESS:80: 200, or 503 while failing; the first 503 of a failure is the deciding
//   check (the VIP's checks use fall 1).
// - TCP on ADDRESS:9000: the bench's guest process in the VM connects here; `send X` writes X to
//   it, so the start of a bare operation is timed on the host clock, too.
// - CONTROL_SOCKET (unix, lines): `fail`, `heal`, `first` (time of the first 503, answered once
//   it is sent, or 0 after 20 s without one), `send X` (replies `T GUESTREPLY` once the guest
//   answered). Times: ms since the epoch, sub-ms.
import { createServer as http } from 'node:http';
import { createServer as tcp } from 'node:net';
import { rmSync } from 'node:fs';

const [address, control] = process.argv.slice(2);
const now = () => performance.timeOrigin + performance.now();
let failing = false;
let firstFail = 0;
let guest;
let guestBuf = '';
const guestWaiters = [];
const failWaiters = [];

http((req, res) => {
  if (failing) {
    if (!firstFail) {
      firstFail = now();
      for (const w of failWaiters.splice(0)) w(firstFail);
    }
    res.writeHead(503).end();
  } else res.writeHead(200).end('ok');
}).listen(80, address);

tcp((s) => {
  guest = s;
  s.setNoDelay(true);
  s.on('data', (b) => {
    guestBuf += b.toString('utf8');
    let nl;
    while ((nl = guestBuf.indexOf('\n')) >= 0) {
      const line = guestBuf.slice(0, nl);
      guestBuf = guestBuf.slice(nl + 1);
      guestWaiters.shift()?.(line);
    }
  });
  s.on('error', () => undefined);
}).listen(9000, address);

rmSync(control, { force: true });
tcp((c) => {
  let buf = '';
  c.on('error', () => undefined);
  c.on('data', async (b) => {
    buf += b.toString('utf8');
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const [cmd, ...rest] = buf.slice(0, nl).split(' ');
      buf = buf.slice(nl + 1);
      if (cmd === 'fail') {
        firstFail = 0;
        failing = true;
        c.write('ok\n');
      } else if (cmd === 'heal') {
        failing = false;
        c.write('ok\n');
      } else if (cmd === 'first') {
        // 0 when no 503 went out in 20 s (the VM stopped checking): the bench gives up then.
        const at = firstFail || (await new Promise((r) => {
          const t = setTimeout(() => r(0), 20_000);
          failWaiters.push((v) => (clearTimeout(t), r(v)));
        }));
        c.write(`${at}\n`);
      } else if (cmd === 'guest') {
        c.write(`${guest ? 'yes' : 'no'}\n`);
      } else if (cmd === 'send') {
        if (!guest) {
          c.write('error no guest\n');
          continue;
        }
        const reply = new Promise((r) => guestWaiters.push(r));
        const t = now();
        guest.write(`${rest.join(' ')}\n`);
        c.write(`${t} ${await reply}\n`);
      }
    }
  });
}).listen(control);
