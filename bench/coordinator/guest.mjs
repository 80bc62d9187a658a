// The coordinator bench's process inside the VM, beside vipd, bundled by bench.ts into one file
// (loading vipd's modules one by one over 9p takes a minute in the VM):
//   node guest.mjs CONFIG HELPER_ADDRESS BARE_SERVICE BARE_REALSERVER
// It connects to the bench's realserver helper (HELPER_ADDRESS:9000) and answers one line per
// command:
//   a       AddPath of the bare prefix on vipd's gobgpd                        -> A
//   w       DeletePath of it (the bare withdraw; the helper timed the start)   -> W
//   e       one bare `ipvsadm -e` of a service vipd does not own, timed        -> E MS
//   j ID    waits for the journal's `ID down` health event and the next IPVS
//           batch applied after it; the time between the two                   -> J MS
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { join } from 'node:path';
import { GobgpClient } from '../../src/bgp/client.js';
import { planRoutes, toPathMsg } from '../../src/bgp/routes.js';
import { loadConfig } from '../../src/config/load.js';
import { follow, request } from '../../src/cli/client.js';

const BARE_PREFIX = '198.51.100.250';
const [configFile, helper, bareService, bareRealserver] = process.argv.slice(2);
const loaded = loadConfig({ file: configFile, env: {} });
if (!loaded.ok) throw new Error(`config: ${JSON.stringify(loaded.problems)}`);
const { config } = loaded;
const vip = { ...config.vips[0], address: BARE_PREFIX };
const [route] = planRoutes([{ vip, state: 'up' }], config.bgp).routes.values();
const path = toPathMsg(route, config.bgp.asn);
const gobgp = new GobgpClient(join(config.node.runDir, 'gobgpd.sock'));
const statusSocket = join(config.node.runDir, 'vipd.sock');

let weight = 1;
function ipvsEdit() {
  weight = 3 - weight;
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const p = spawn('ipvsadm', ['-e', '-t', bareService, '-r', bareRealserver, '-g', '-w', String(weight)], { stdio: 'ignore', timeout: 10_000 });
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve(performance.now() - t) : reject(new Error(`ipvsadm exit ${code}`))));
  });
}

/**
 * The journal as vipd streams it (`events --follow`): no polling load on vipd while it works.
 * The stream is open only while `j` waits, so vipd has no follower to feed during the
 * withdraw runs (their timing must not carry the bench's own load).
 */
let since;
function journalGap(id) {
  return new Promise((resolve, reject) => {
    const stop = new AbortController();
    const end = (err, gap) => {
      clearTimeout(deadline);
      stop.abort();
      if (err) reject(err);
      else resolve(gap);
    };
    const deadline = setTimeout(() => end(new Error(`no health transition and IPVS batch for ${id} in the journal`)), 30_000);
    let down;
    follow(statusSocket, 'events', { since, limit: 1000, follow: true }, (e) => {
      since = e.seq;
      if (!down && e.kind === 'health' && e.message === `${id} down`) down = e;
      else if (down && e.kind === 'ipvs' && e.message.startsWith('applied')) end(undefined, Date.parse(e.at) - Date.parse(down.at));
    }, stop.signal).catch(end);
  });
}

// Only transitions from now on count.
// Started beside a vipd that may not serve its socket yet.
for (let tries = 0; since === undefined; tries++) {
  try {
    since = (await request(statusSocket, 'events', { limit: 1 })).at(-1)?.seq ?? 0;
  } catch (e) {
    if (tries > 300) throw e;
    await new Promise((r) => setTimeout(r, 1000));
  }
}
const s = connect({ host: helper, port: 9000 });
s.setNoDelay(true);
s.on('connect', () => process.stderr.write(`guest: connected to ${helper}:9000\n`));
s.on('error', (e) => {
  process.stderr.write(`guest: ${e.message}\n`);
  process.exit(1);
});
let buf = '';
s.on('data', async (b) => {
  buf += b.toString('utf8');
  let nl;
  while ((nl = buf.indexOf('\n')) >= 0) {
    const [cmd, arg] = buf.slice(0, nl).split(' ');
    buf = buf.slice(nl + 1);
    try {
      if (cmd === 'a') {
        await gobgp.addPath(path);
        s.write('A\n');
      } else if (cmd === 'w') {
        await gobgp.deletePath(path);
        s.write('W\n');
      } else if (cmd === 'e') {
        s.write(`E ${await ipvsEdit()}\n`);
      } else if (cmd === 'j') {
        s.write(`J ${await journalGap(arg)}\n`);
      }
    } catch (e) {
      s.write(`X ${String(e.message ?? e).replace(/\n/g, ' ')}\n`);
    }
  }
});
s.on('close', () => process.exit(0));
