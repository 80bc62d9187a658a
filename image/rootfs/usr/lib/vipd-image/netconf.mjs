/**
 * Run by supervise before vipd's first start:  node netconf.mjs FILE
 * Sets up the network from vipd.yaml's `network` section (schema: src/config/schema.ts) and
 * the hostname from node.name, once per boot: later changes take a reboot, since vipd may own
 * addresses on these interfaces by then. Only a YAML parser is loaded (bundled in by
 * image/build.sh), not vipd's config loader: this is on the way to the first announcement,
 * and vipd validates the whole file itself (supervise shows its verdict).
 * Exit 0: done (a summary on stdout); 2: something failed (one line per failure on stdout).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { parse } from 'yaml';

const DONE = '/run/vipd-image/network-done';
const [file] = process.argv.slice(2);
if (existsSync(DONE)) process.exit(0);

let doc;
try {
  doc = parse(readFileSync(file, 'utf8')) ?? {};
} catch (e) {
  console.log(`network: not set up: ${file} is unreadable (${e.code ?? e.message.split('\n')[0]})`);
  process.exit(2);
}

const failures = [];
const summary = [];
const ip = (...a) => {
  try {
    execFileSync('ip', a, { stdio: ['ignore', 'ignore', 'pipe'] });
    return true;
  } catch (e) {
    failures.push(`ip ${a.join(' ')}: ${String(e.stderr ?? e.message).trim()}`);
    return false;
  }
};
const links = () => JSON.parse(execFileSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' }));
const exists = (name) => links().some((l) => l.ifname === name);

try {
  const net = { interfaces: [], ...doc.network };
  const ifs = net.interfaces.map((i) => ({ addresses: [], ...i }));
  for (const i of ifs.filter((i) => i.bond)) {
    execFileSync('modprobe', ['bonding']);
    // Hash on addresses and ports: a director's traffic is many flows between few MACs.
    const mode = i.bond.mode ?? 'active-backup';
    const hash = ['802.3ad', 'balance-xor'].includes(mode) ? ['xmit_hash_policy', 'layer3+4'] : [];
    if (!exists(i.name)) ip('link', 'add', i.name, 'type', 'bond', 'mode', mode, 'miimon', '100', ...hash);
    for (const m of i.bond.members) ip('link', 'set', m, 'down') && ip('link', 'set', m, 'master', i.name);
  }
  for (const i of ifs.filter((i) => i.vlan)) {
    execFileSync('modprobe', ['8021q']);
    ip('link', 'set', i.vlan.parent, 'up');
    if (!exists(i.name)) ip('link', 'add', 'link', i.vlan.parent, 'name', i.name, 'type', 'vlan', 'id', String(i.vlan.id));
  }
  for (const i of ifs) {
    if (i.mtu) ip('link', 'set', i.name, 'mtu', String(i.mtu));
    if (!ip('link', 'set', i.name, 'up')) continue;
    for (const a of i.addresses) ip('addr', 'replace', a, 'dev', i.name);
    if (i.gateway) ip('route', 'replace', 'default', 'via', i.gateway, 'dev', i.name);
    if (i.gateway6) ip('-6', 'route', 'replace', 'default', 'via', i.gateway6, 'dev', i.name);
    const via = [i.gateway, i.gateway6].filter(Boolean).map((g) => `via ${g}`);
    summary.push(`${i.name} ${[...i.addresses, ...via].join(' ') || 'up'}`);
  }
  const name = doc.node?.name;
  if (typeof name === 'string') {
    execFileSync('hostname', [name]);
    writeFileSync('/etc/hostname', `${name}\n`);
  }
} catch (e) {
  // A section of the wrong shape: vipd's config check names the problem.
  failures.push(`not set up: the network section is not usable (${e.message})`);
}

if (failures.length) {
  for (const f of failures) console.log(`network: ${f}`);
  process.exit(2);
}
writeFileSync(DONE, '');
for (const s of summary) console.log(s);
