/**
 * The one typed schema of vipd.yaml. Every subsystem reads its section from `Config`;
 * cross-field rules (families, forwarding/port, ranges, references) live in `refineConfig`.
 */
import { hostname } from 'node:os';
import { z } from 'zod';
import {
  asn,
  community,
  duration,
  fraction,
  ipAddress,
  ipv4Address,
  ipv6Address,
  largeCommunity,
  port,
  prefix,
} from './types.js';
import { refineConfig } from './refine.js';

const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'names are 1-63 of A-Z a-z 0-9 . _ - and start with a letter or digit');

// ---------------------------------------------------------------- health checks

const checkTiming = {
  interval: duration(10, 3_600_000).default(2000),
  /** Interval while a target is between states (after one differing result). */
  fastInterval: duration(10, 3_600_000).optional(),
  timeout: duration(10, 600_000).default(1000),
  rise: z.number().int().min(1).max(100).default(2),
  fall: z.number().int().min(1).max(100).default(3),
  /** Whether a new target starts up (true) or must first pass `rise` checks (false). */
  startUp: z.boolean().default(false),
  /** Check this port instead of the realserver's. */
  port: port.optional(),
};

const statusRange = z.union([
  z.number().int().min(100).max(599),
  z.string().regex(/^[1-5]\d\d(-[1-5]\d\d)?$/, 'not a status code or range like 200-299'),
]);

const regex = z.string().refine((s) => {
  try {
    new RegExp(s);
    return true;
  } catch {
    return false;
  }
}, 'not a valid regular expression');

const tcpCheck = z.strictObject({ type: z.literal('tcp'), ...checkTiming });

const httpFields = {
  ...checkTiming,
  method: z.enum(['GET', 'HEAD', 'POST', 'OPTIONS']).default('GET'),
  path: z.string().startsWith('/', 'path must start with /').default('/'),
  host: z.string().optional(),
  expectStatus: z.array(statusRange).min(1).default(['200-399']),
  expectBody: regex.optional(),
};

const httpCheck = z.strictObject({ type: z.literal('http'), ...httpFields });
const httpsCheck = z.strictObject({
  type: z.literal('https'),
  ...httpFields,
  sni: z.string().optional(),
  verifyTls: z.boolean().default(true),
});

const udpCheck = z.strictObject({
  type: z.literal('udp'),
  ...checkTiming,
  /** Payload to send; `hex:` prefix for binary. */
  payload: z.string().default(''),
  expect: regex.optional(),
});

const dnsCheck = z.strictObject({
  type: z.literal('dns'),
  ...checkTiming,
  query: z.string().min(1),
  qtype: z.enum(['A', 'AAAA', 'CNAME', 'MX', 'NS', 'PTR', 'SOA', 'SRV', 'TXT']).default('A'),
  expectRcode: z.enum(['NOERROR', 'NXDOMAIN', 'SERVFAIL', 'REFUSED']).default('NOERROR'),
  expectAnswer: z.string().optional(),
  transport: z.enum(['udp', 'tcp']).default('udp'),
});

const scriptCheck = z.strictObject({
  type: z.literal('script'),
  ...checkTiming,
  command: z.string().startsWith('/', 'command must be an absolute path (no shell, no PATH lookup)'),
  args: z.array(z.string()).default([]),
});

export const checkSchema = z.discriminatedUnion('type', [tcpCheck, httpCheck, httpsCheck, udpCheck, dnsCheck, scriptCheck]);

/** Node weight agent (HAProxy agent-check style): `up`, `down`, `drain` or `NN%` on a TCP port. */
export const agentSchema = z.strictObject({
  port,
  interval: duration(100, 3_600_000).default(2000),
  timeout: duration(10, 600_000).default(1000),
  /** Node address to query; defaults to the address of the node's realservers. */
  address: ipAddress.optional(),
});

// ---------------------------------------------------------------- IPVS services

export const SCHEDULERS = ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'fo', 'ovf', 'mh', 'twos'] as const;
export const SCHED_FLAGS = ['mh-fallback', 'mh-port', 'sh-fallback', 'sh-port'] as const;

const forwarding = z.enum(['dr', 'tunnel', 'nat']);

export const realserverSchema = z.strictObject({
  address: ipAddress,
  /** Defaults to the service port; only NAT may differ from it. */
  port: port.optional(),
  weight: z.number().int().min(0).max(65535).default(100),
  node: name.optional(),
  forwarding: forwarding.optional(),
  upperThreshold: z.number().int().min(0).max(2 ** 31 - 1).optional(),
  lowerThreshold: z.number().int().min(0).max(2 ** 31 - 1).optional(),
});

export const serviceSchema = z.strictObject({
  name: name.optional(),
  vip: ipAddress,
  protocol: z.enum(['tcp', 'udp', 'sctp']).default('tcp'),
  /** Omit only for firewall-mark services. */
  port: port.optional(),
  fwmark: z.number().int().min(1).max(2 ** 32 - 1).optional(),
  scheduler: z.enum(SCHEDULERS).default('wrr'),
  flags: z.array(z.enum(SCHED_FLAGS)).default([]),
  persistence: z
    .strictObject({
      timeout: duration(1000, 31 * 86_400_000),
      netmask: z.union([ipv4Address, z.number().int().min(1).max(128)]).optional(),
    })
    .optional(),
  onePacket: z.boolean().default(false),
  forwarding: forwarding.default('dr'),
  check: checkSchema.optional(),
  realservers: z.array(realserverSchema).default([]),
});

// ---------------------------------------------------------------- VIPs and BGP

const routeAttributes = {
  communities: z.array(community).default([]),
  largeCommunities: z.array(largeCommunity).default([]),
  med: z.number().int().min(0).max(4294967295).optional(),
  /** Extra copies of the local ASN in the AS path. */
  prepend: z.number().int().min(0).max(16).default(0),
};

export const vipSchema = z.strictObject({
  address: ipAddress,
  /** `bgp`: announced as /32 or /128, address on a non-ARPing interface; `arp`: on `interface`, gratuitous ARP. */
  mode: z.enum(['bgp', 'arp']).default('bgp'),
  interface: z.string().regex(/^[A-Za-z0-9._@-]{1,15}$/, 'not an interface name').optional(),
  /** Minimum healthy realservers per service: a count or a fraction like 50%. */
  minHealthy: z.union([z.number().int().min(0), z.string().regex(/^\d+(\.\d+)?%$/, 'a count or a percentage like 50%')]).default(1),
  /** Whether all services of the VIP must meet minHealthy, or any one. */
  require: z.enum(['all', 'any']).default('all'),
  /** Extra healthy realservers needed to come back up once down (hysteresis). */
  hysteresis: z.number().int().min(0).max(1000).default(0),
  nextHop: ipAddress.optional(),
  ...routeAttributes,
  /** Re-announce with worse attributes instead of withdrawing while capacity is below `below` but not zero. */
  softFail: z
    .strictObject({
      below: fraction,
      ...routeAttributes,
    })
    .optional(),
  /** ARP mode ownership among directors: highest priority owns; ties go to the lowest address. */
  priority: z.number().int().min(1).max(254).default(100),
  preempt: z.boolean().default(false),
});

export const peerSchema = z.strictObject({
  address: ipAddress,
  asn,
  localAsn: asn.optional(),
  localAddress: ipAddress.optional(),
  description: z.string().max(80).optional(),
  holdTime: duration(3000, 65_535_000).default(90_000),
  keepalive: duration(1000, 21_845_000).default(30_000),
  /**
   * How often gobgpd dials the peer: a random 1-2× this between attempts. gobgpd 3.x never
   * dials sooner than 5 s, so a shorter setting means 5 s (accepted: configs from before keep loading).
   */
  connectRetry: duration(1000, 3_600_000).default(5000),
  /** TCP-MD5 password; never logged or shown. */
  password: z.string().min(1).max(80).optional(),
  passive: z.boolean().default(false),
  /** eBGP multihop TTL. */
  multihop: z.number().int().min(1).max(255).optional(),
  /** Address families carried; defaults to the neighbour address's family. */
  families: z.array(z.enum(['ipv4', 'ipv6'])).min(1).optional(),
});

export const bgpSchema = z.strictObject({
  asn,
  routerId: ipv4Address,
  /** -1: no listener, vipd connects out only. */
  listenPort: z.number().int().min(-1).max(65535).default(-1),
  /** Where the listener binds (this host's peering addresses); default every address, VIPs included. */
  listenAddresses: z.array(ipAddress).min(1).optional(),
  gobgpd: z
    .strictObject({
      binary: z.string().default('gobgpd'),
      /** Unix socket for gobgpd's API; default inside node.runDir. */
      socket: z.string().startsWith('/').optional(),
      startTimeout: duration(1000, 120_000).default(15_000),
    })
    .prefault({}),
  gracefulRestart: z
    .strictObject({
      enabled: z.boolean().default(true),
      restartTime: duration(1000, 4_095_000).default(120_000),
    })
    .prefault({}),
  /** Wait after withdrawing before draining IPVS or removing addresses, so the withdrawal propagates. */
  withdrawDelay: duration(0, 600_000).default(2000),
  nextHop: ipv4Address.optional(),
  nextHop6: ipv6Address.optional(),
  peers: z.array(peerSchema).default([]),
});

// ---------------------------------------------------------------- kernel settings

/** net.ipv4.vs.* settings vipd may set, with their accepted ranges. */
export const IPVS_SYSCTLS: Record<string, readonly [number, number]> = {
  am_droprate: [0, 2 ** 31 - 1],
  amemthresh: [0, 2 ** 31 - 1],
  backup_only: [0, 1],
  cache_bypass: [0, 1],
  conn_reuse_mode: [0, 3],
  conntrack: [0, 1],
  drop_entry: [0, 3],
  drop_packet: [0, 3],
  expire_nodest_conn: [0, 1],
  expire_quiescent_template: [0, 1],
  ignore_tunneled: [0, 1],
  nat_icmp_send: [0, 1],
  pmtu_disc: [0, 1],
  run_estimation: [0, 1],
  schedule_icmp: [0, 1],
  secure_tcp: [0, 3],
  sloppy_sctp: [0, 1],
  sloppy_tcp: [0, 1],
  snat_reroute: [0, 1],
};

/** Defaults for a director behind ECMP: connections survive director changes, dead destinations expire. */
export const DEFAULT_IPVS_SYSCTLS: Record<string, number> = {
  conntrack: 0,
  conn_reuse_mode: 1,
  expire_nodest_conn: 1,
  expire_quiescent_template: 1,
  sloppy_tcp: 1,
  schedule_icmp: 1,
};

const sysctls = z.record(z.string(), z.number().int()).superRefine((rec, ctx) => {
  for (const [k, v] of Object.entries(rec)) {
    const range = IPVS_SYSCTLS[k];
    if (!range) {
      ctx.addIssue({ code: 'custom', path: [k], message: `unknown setting net.ipv4.vs.${k} (known: ${Object.keys(IPVS_SYSCTLS).join(', ')})` });
    } else if (v < range[0] || v > range[1]) {
      ctx.addIssue({ code: 'custom', path: [k], message: `net.ipv4.vs.${k} must be ${range[0]}..${range[1]}` });
    }
  }
});

// ---------------------------------------------------------------- the whole file

const listen = z.string().refine((s) => {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(s);
  return m !== null && Number(m[3]) <= 65535 && ipAddress.safeParse(m[1] ?? m[2]).success;
}, 'not ADDRESS:PORT (e.g. 127.0.0.1:9642 or [::1]:9642)');

export const configShape = z.strictObject({
  /** Host interfaces the appliance sets up at boot, before vipd starts (vipd itself never changes them). */
  network: z
    .strictObject({
      interfaces: z
        .array(
          z.strictObject({
            name: z.string().regex(/^[A-Za-z0-9._@-]{1,15}$/, 'not an interface name'),
            addresses: z.array(prefix).default([]),
            gateway: ipv4Address.optional(),
            gateway6: ipv6Address.optional(),
            mtu: z.number().int().min(576).max(9216).optional(),
            vlan: z.strictObject({ parent: z.string().regex(/^[A-Za-z0-9._@-]{1,15}$/), id: z.number().int().min(1).max(4094) }).optional(),
            bond: z
              .strictObject({
                members: z.array(z.string().regex(/^[A-Za-z0-9._@-]{1,15}$/)).min(1),
                mode: z.enum(['active-backup', '802.3ad', 'balance-xor']).default('active-backup'),
              })
              .optional(),
          }),
        )
        .default([]),
    })
    .prefault({}),
  node: z
    .strictObject({
      name: name.default(() => hostname().split('.')[0] || 'director'),
      stateDir: z.string().startsWith('/').default('/var/lib/vipd'),
      runDir: z.string().startsWith('/').default('/run/vipd'),
    })
    .prefault({}),
  log: z
    .strictObject({
      level: z.enum(['error', 'warn', 'info', 'debug']).default('info'),
      /** `auto`: readable text when stderr is a terminal, JSON lines otherwise. */
      format: z.enum(['auto', 'json', 'text']).default('auto'),
    })
    .prefault({}),
  /** Prefixes vipd owns: it adds, changes and removes IPVS services and VIP addresses only inside them. */
  vipRanges: z.array(prefix).default([]),
  vips: z.array(vipSchema).default([]),
  services: z.array(serviceSchema).default([]),
  nodes: z
    .array(
      z.strictObject({
        name,
        /** Percentage applied to every realserver on the node; 0 drains the node. */
        weight: z.number().min(0).max(100).default(100),
        agent: agentSchema.optional(),
      }),
    )
    .default([]),
  health: z
    .strictObject({
      /** Checks in flight at once across all targets. */
      concurrency: z.number().int().min(1).max(100_000).default(1000),
      /** Results kept per target for status. */
      history: z.number().int().min(1).max(1000).default(20),
    })
    .prefault({}),
  bgp: bgpSchema.optional(),
  arp: z
    .strictObject({
      interval: duration(100, 3_600_000).default(3000),
      concurrency: z.number().int().min(1).max(1024).default(32),
      arping: z.enum(['auto', 'iputils', 'busybox']).default('auto'),
      /** Other directors sharing ARP-mode VIPs (this director's own address may be listed too). */
      peers: z.array(ipAddress).default([]),
    /** UDP port of the ownership adverts exchanged with the peers. */
    port: port.default(44445),
    advertInterval: duration(50, 10_000).default(200),
    /** Silence after which a peer counts as gone; more than advertInterval. */
    holdTime: duration(100, 60_000).default(700),
    /** Shared HMAC key for adverts; never logged. */
    secret: z.string().min(8).max(256).optional(),
    /** This director's address as its peers see it (default: the source address towards the first peer). */
    self: ipAddress.optional(),
    })
    .prefault({}),
  ipvs: z
    .strictObject({
      ipvsadm: z.string().default('ipvsadm'),
      sysctls: sysctls.default({}),
      /** How long a removed TCP destination may keep connections at weight 0 before deletion. */
      drainTimeout: duration(0, 86_400_000).default(300_000),
      /** Extra kernel modules to load at start (ip_vs and the schedulers in use always are). */
      modules: z.array(z.string().regex(/^[a-z0-9_]+$/)).default([]),
    })
    .prefault({}),
  coordinator: z
    .strictObject({
      /** Director-presence ports: open while serving, closed while draining or stopping. */
      presencePorts: z.array(port).default([44444]),
      /** The longest an event waits for its pass; also the least time between two passes. */
      batchDelay: duration(0, 10_000).default(50),
      /** A pass runs once events paused this long (capped by batchDelay), so a burst shares one pass. */
      batchQuiet: duration(0, 10_000).default(10),
      /**
       * How often IPVS and the VIP addresses are read back from the kernel and repaired where
       * they drifted (someone ran ipvsadm or ip by hand); 0 never.
       */
      resyncInterval: duration(0, 86_400_000)
        .refine((ms) => ms === 0 || ms >= 1000, 'resyncInterval is 0 (never) or at least 1s')
        .default(300_000),
    })
    .prefault({}),
  status: z
    .strictObject({
      socket: z.string().startsWith('/').optional(),
      group: z.string().optional(),
    })
    .prefault({}),
  journal: z
    .strictObject({
      /** Events kept in memory. */
      capacity: z.number().int().min(100).max(1_000_000).default(10_000),
      /** Size cap of STATE_DIR/journal.jsonl in bytes; past it the file keeps the newest half. */
      maxFileBytes: z.number().int().min(4096).max(1 << 30).default(8 * 1024 * 1024),
    })
    .prefault({}),
  metrics: z
    .strictObject({
      enabled: z.boolean().default(true),
      listen: listen.default('127.0.0.1:9642'),
    })
    .prefault({}),
});
export type ConfigShape = typeof configShape;

/** The whole config: per-field schema plus the cross-field rules. */
export const configSchema = configShape.superRefine(refineConfig);

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
export type ServiceConfig = z.output<typeof serviceSchema>;
export type RealserverConfig = z.output<typeof realserverSchema>;
export type VipConfig = z.output<typeof vipSchema>;
export type PeerConfig = z.output<typeof peerSchema>;
export type BgpConfig = z.output<typeof bgpSchema>;
export type CheckConfig = z.output<typeof checkSchema>;
export type AgentConfig = z.output<typeof agentSchema>;
export type NodeConfig = Config['nodes'][number];
