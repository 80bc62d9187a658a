/**
 * `make demo`: the main job on an embedded default lab. A BIRD router in a namespace, a
 * director VM (Debian kernel, real IPVS) on the same bridge, and what each shows; then
 * everything is torn down. Every step prints what it does.
 */
import { Lab } from '../test/lab/netns.js';
import { startBird } from '../test/lab/bird.js';
import { Vm } from '../test/lab/vm.js';

const step = (s: string): void => void process.stdout.write(`\n==> ${s}\n`);
const show = (s: string): void => void process.stdout.write(`${s.trimEnd().replace(/^/gm, '    ')}\n`);

const lab = await Lab.create();
let vm: Vm | undefined;
try {
  step('lab: namespace "net" with bridge br0, router namespace "r" on it');
  const net = await lab.ns('net');
  const r = await lab.ns('r');
  await lab.bridge(net, 'br0');
  await lab.veth({ ns: r, dev: 'eth0', cidrs: ['192.0.2.1/24'] }, { ns: net, dev: 'r-eth0', master: 'br0' });

  step('router: BIRD 2 in namespace "r", waiting for the director at 192.0.2.20');
  const bird = await startBird(
    lab,
    r,
    'router',
    `router id 192.0.2.1;
protocol device {}
protocol bgp director { local 192.0.2.1 as 64512; neighbor 192.0.2.20 as 64513; passive on; ipv4 { import all; export none; }; }
`,
  );
  show(await bird.cli('show status'));
  show(await bird.cli('show protocols'));

  step('director: booting the VM (Debian kernel under qemu TCG, Alpine userland, node)');
  vm = await Vm.boot(lab, { netns: net, bridge: 'br0', ip: '192.0.2.20/24' });
  show(`booted in ${Math.round(vm.bootMs)} ms; ${(await vm.run('uname -sr')).stdout.trim()}; node ${(await vm.run('node -v')).stdout.trim()}`);

  step('director: ping the router over the bridge');
  show((await vm.run('ping -c 2 -W 2 192.0.2.1')).stdout);

  step('director: program a VIP in the kernel (mh with fallback and port flags, direct routing) and read it back');
  await vm.run(
    [
      'ipvsadm -A -t 198.51.100.10:80 -s mh -b flag-1,flag-2',
      'ipvsadm -a -t 198.51.100.10:80 -r 203.0.113.11:80 -g -w 100',
      'ipvsadm -a -t 198.51.100.10:80 -r 203.0.113.12:80 -g -w 100',
      'ipvsadm -a -t 198.51.100.10:80 -r 203.0.113.13:80 -g -w 50',
    ].join(' && '),
  );
  show((await vm.run('ipvsadm -Ln')).stdout);
  show((await vm.run('sysctl net.ipv4.vs.conntrack net.ipv4.vs.expire_nodest_conn')).stdout);
} finally {
  step('teardown: VM, router, namespaces');
  await vm?.shutdown();
  await lab.cleanup();
  show('nothing left running');
}
