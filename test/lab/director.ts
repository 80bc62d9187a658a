/**
 * The end-to-end topology shared by the coordinator, CLI and fault suites: the real vipd bundle
 * in the VM (real IPVS, gobgpd), a BIRD router at 192.0.2.1 and HTTP realservers at
 * 203.0.113.11.. in namespaces, all on one bridge. The director is 192.0.2.10 (AS 64513).
 */
import { writeFileSync } from 'node:fs';
import { startBird, type Bird } from './bird.js';
import { Lab, type Daemon } from './netns.js';
import { REPO_ROOT, Vm } from './vm.js';

export const PROTO = `${process.env.VIPD_CACHE ?? '/var/cache/vipd'}/gobgp-proto`;
export const DIRECTOR_IP = '192.0.2.10';
export const ROUTER_IP = '192.0.2.1';
export const REALSERVERS = ['203.0.113.11', '203.0.113.12', '203.0.113.13'] as const;

/** The `bgp:` section that peers with the lab's BIRD. */
export const BGP_SECTION = `bgp:
  asn: 64513
  routerId: ${DIRECTOR_IP}
  withdrawDelay: 1s
  peers: [{ address: ${ROUTER_IP}, asn: 64512, connectRetry: 5s, holdTime: 9s, keepalive: 3s }]`;

/** A vitest suite or test as an `afterAll` hook gets it (its second argument). */
interface TaskLike {
  result?: { state?: string };
  tasks?: readonly TaskLike[];
}

/** Whether anything in the suite failed, its `beforeAll` included: a passing run prints no diagnostics. */
export function failedIn(t: TaskLike): boolean {
  return t.result?.state === 'fail' || (t.tasks ?? []).some(failedIn);
}

/** Polls fn until it returns something other than undefined/false. */
export async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 30_000, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export interface DirectorLabOptions {
  /** Initial vipd.yaml text. */
  config: string;
  /** How many of REALSERVERS to run (default 3). */
  realservers?: number;
  /** Extra BIRD config appended after the director protocol. */
  birdExtra?: string;
  /** Extra options inside BIRD's `protocol bgp director` (e.g. `password "..";`). */
  birdDirectorOptions?: string;
  /**
   * BIRD also connects to the director, as a real router does, every ROUTER_CONNECT_RETRY_S
   * (vipd must listen: bgp.listenPort). Otherwise it only listens and gobgpd must connect out.
   */
  routerConnects?: boolean;
}

/** BIRD's `connect delay time` and `connect retry time` when it connects (routerConnects). */
export const ROUTER_CONNECT_RETRY_S = 1;

export class DirectorLab {
  readonly servers = new Map<string, Daemon>();
  readonly rsNs = new Map<string, string>();
  /** PID of the running vipd inside the VM (0 when none was started). */
  vipdPid = 0;

  private constructor(
    readonly lab: Lab,
    readonly vm: Vm,
    readonly bird: Bird,
    readonly routerNs: string,
    readonly cfgFile: string,
  ) {}

  /** Builds the topology and boots the VM; vipd is not started (call startVipd). */
  static async create(opts: DirectorLabOptions): Promise<DirectorLab> {
    const lab = await Lab.create();
    try {
      const net = await lab.ns('net');
      await lab.bridge(net, 'br0');
      const r = await lab.ns('r');
      await lab.veth({ ns: r, dev: 'eth0', cidrs: [`${ROUTER_IP}/24`] }, { ns: net, dev: 'r0', master: 'br0' });
      const rsNs = new Map<string, string>();
      for (const [i, ip] of REALSERVERS.slice(0, opts.realservers ?? 3).entries()) {
        const ns = await lab.ns(`rs${i + 1}`);
        rsNs.set(ip, ns);
        await lab.veth({ ns, dev: 'eth0', cidrs: [`${ip}/24`] }, { ns: net, dev: `rs${i + 1}`, master: 'br0' });
      }
      const bird = await startBird(
        lab,
        r,
        'r',
        `router id ${ROUTER_IP};
protocol device {}
protocol bgp director { local ${ROUTER_IP} as 64512; neighbor ${DIRECTOR_IP} as 64513; ${opts.routerConnects ? `connect delay time ${ROUTER_CONNECT_RETRY_S}; connect retry time ${ROUTER_CONNECT_RETRY_S};` : 'passive on;'} graceful restart on; ${opts.birdDirectorOptions ?? ''} ipv4 { import all; export none; }; ipv6 { import all; export none; }; }
${opts.birdExtra ?? ''}`,
      );
      const cfgFile = lab.path('vipd.yaml');
      writeFileSync(cfgFile, opts.config);
      const vm = await Vm.boot(lab, {
        netns: net,
        bridge: 'br0',
        ip: `${DIRECTOR_IP}/24`,
        extraShares: [
          { path: lab.dir, tag: 'lab' },
          { path: PROTO, tag: 'proto' },
        ],
      });
      const d = new DirectorLab(lab, vm, bird, r, cfgFile);
      for (const [ip, ns] of rsNs) d.rsNs.set(ip, ns);
      await vm.run('ip addr add 203.0.113.1/24 dev eth0');
      for (const ip of rsNs.keys()) d.startServer(ip);
      return d;
    } catch (e) {
      await lab.cleanup();
      throw e;
    }
  }

  writeConfig(text: string): void {
    writeFileSync(this.cfgFile, text);
  }

  /** Routes in BIRD's table for the prefix (e.g. `198.51.100.10/32`). */
  async hasRoute(prefix: string): Promise<boolean> {
    return (await this.bird.cli('show route')).includes(prefix);
  }

  /** Destination weights of one TCP service, by realserver address. */
  async weights(vip: string, port = 80): Promise<Record<string, number>> {
    const out = (await this.vm.run('ipvsadm -Sn')).stdout;
    const w: Record<string, number> = {};
    for (const m of out.matchAll(new RegExp(`-a -t ${vip.replace(/\./g, '\\.')}:${port} -r (\\S+):${port} -\\w -w (\\d+)`, 'g'))) w[m[1]!] = Number(m[2]);
    return w;
  }

  /** `vipctl ARGS --json` inside the VM, parsed. */
  async vipctl(args: string): Promise<unknown> {
    return JSON.parse((await this.vm.run(`node ${REPO_ROOT}/dist/vipctl.mjs --socket /run/vipd/vipd.sock ${args} --json`)).stdout);
  }

  async serving(): Promise<boolean> {
    return ((await this.vipctl('status')) as { serving: boolean }).serving;
  }

  /** Starts the vipd bundle in the VM in the background, output appended to /tmp/vipd.log. */
  async startVipd(extraArgs = ''): Promise<void> {
    const r = await this.vm.run(
      `VIPD_GOBGP_PROTO_DIR=${PROTO}/api setsid node ${REPO_ROOT}/dist/vipd.mjs run --config ${this.cfgFile} ${extraArgs} >>/tmp/vipd.log 2>&1 </dev/null & echo $!`,
    );
    this.vipdPid = Number(r.stdout.trim());
  }

  /** By PID: `pkill -f` would also match the shell that runs it. */
  async signalVipd(sig: string): Promise<void> {
    await this.vm.run(`kill -${sig} ${this.vipdPid}`);
  }

  startServer(ip: string): void {
    this.servers.set(ip, this.lab.spawn(this.rsNs.get(ip)!, 'python3', ['-m', 'http.server', '--bind', ip, '80']));
  }

  async stopServer(ip: string): Promise<void> {
    await this.servers.get(ip)?.stop('SIGKILL');
    this.servers.delete(ip);
  }

  /** Shuts the VM down and removes the lab; after a failure (`diagnostics`) prints BIRD's and vipd's view first. */
  async cleanup({ diagnostics }: { diagnostics: boolean }): Promise<void> {
    if (diagnostics) {
      console.info(await this.bird.cli('show protocols all director').catch(String), await this.bird.cli('show route all').catch(String));
      const log = await this.vm.exec('grep -v debug /tmp/vipd.log | tail -n 60').catch(() => undefined);
      if (log?.stdout) console.info(log.stdout);
    }
    await this.vm.shutdown();
    await this.lab.cleanup();
  }
}
