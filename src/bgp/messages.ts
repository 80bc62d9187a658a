/**
 * The shapes of gobgpd 3.10 API messages that vipd sends and reads, as proto-loader hands
 * them over with `keepCase, longs: String, enums: String, defaults: true, json: true`:
 * snake_case fields, enums as names, uint64 as strings, `google.protobuf.Any` as
 * `{ '@type': 'type.googleapis.com/apipb.X', ...fields }`. Only the fields vipd uses are
 * declared; the planners build these (pure) and the client sends them.
 */

export type Afi = 'AFI_IP' | 'AFI_IP6';

export interface Family {
  afi: Afi;
  safi: 'SAFI_UNICAST';
}

export const FAMILY_IPV4: Family = { afi: 'AFI_IP', safi: 'SAFI_UNICAST' };
export const FAMILY_IPV6: Family = { afi: 'AFI_IP6', safi: 'SAFI_UNICAST' };

const T = 'type.googleapis.com/apipb.';

/** `@type` URLs are constants: an unknown one is packed as an empty Any and gobgpd refuses it. */
export const TYPE = {
  prefix: `${T}IPAddressPrefix`,
  origin: `${T}OriginAttribute`,
  nextHop: `${T}NextHopAttribute`,
  asPath: `${T}AsPathAttribute`,
  med: `${T}MultiExitDiscAttribute`,
  communities: `${T}CommunitiesAttribute`,
  largeCommunities: `${T}LargeCommunitiesAttribute`,
} as const;

export interface PrefixNlri {
  '@type': typeof TYPE.prefix;
  prefix: string;
  prefix_len: number;
}

export interface LargeCommunityMsg {
  global_admin: number;
  local_data1: number;
  local_data2: number;
}

export type PathAttribute =
  | { '@type': typeof TYPE.origin; origin: number }
  | { '@type': typeof TYPE.nextHop; next_hop: string }
  | { '@type': typeof TYPE.asPath; segments: { type: 'AS_SEQUENCE'; numbers: number[] }[] }
  | { '@type': typeof TYPE.med; med: number }
  | { '@type': typeof TYPE.communities; communities: number[] }
  | { '@type': typeof TYPE.largeCommunities; communities: LargeCommunityMsg[] };

/** A path as sent in AddPath / AddPathStream / DeletePath. */
export interface PathMsg {
  family: Family;
  nlri: PrefixNlri;
  pattrs: PathAttribute[];
  is_withdraw?: boolean;
}

/** A path as ListPath returns it (attributes loosely typed: read only for diagnostics). */
export interface ListedPath {
  family: Family;
  nlri: { '@type': string; prefix?: string; prefix_len?: number };
  pattrs: ({ '@type': string } & Record<string, unknown>)[];
  stale: boolean;
}

export interface Destination {
  prefix: string;
  paths: ListedPath[];
}

export interface GlobalMsg {
  asn: number;
  router_id: string;
  /** -1: no listener; 0 means 179. */
  listen_port: number;
  listen_addresses: string[];
}

/** The request side of apipb.Peer. uint64 timers are seconds. */
export interface PeerMsg {
  conf: {
    neighbor_address: string;
    peer_asn: number;
    local_asn: number;
    auth_password: string;
    description: string;
  };
  timers: { config: { connect_retry: number; hold_time: number; keepalive_interval: number } };
  transport: { local_address: string; passive_mode: boolean };
  ebgp_multihop: { enabled: boolean; multihop_ttl: number };
  graceful_restart: {
    enabled: boolean;
    restart_time: number;
    deferral_time: number;
    local_restarting: boolean;
  };
  /** Always with `family`: an entry without it crashes gobgpd. */
  afi_safis: {
    config: { family: Family; enabled: true };
    mp_graceful_restart: { config: { enabled: boolean } };
  }[];
}

export type SessionState = 'UNKNOWN' | 'IDLE' | 'CONNECT' | 'ACTIVE' | 'OPENSENT' | 'OPENCONFIRM' | 'ESTABLISHED';

export interface Timestamp {
  seconds: string;
  nanos: number;
}

/** The response side of apipb.Peer, as ListPeer and WatchEvent return it. */
export interface PeerInfo {
  conf: { neighbor_address: string; peer_asn: number; local_asn: number } | null;
  state: {
    neighbor_address: string;
    peer_asn: number;
    session_state: SessionState;
  } | null;
  timers: { state: { uptime: Timestamp | null } | null } | null;
  afi_safis: { state: { family: Family | null; received: string; accepted: string; advertised: string } | null }[];
}

export interface PeerEvent {
  type: 'UNKNOWN' | 'INIT' | 'END_OF_INIT' | 'STATE';
  peer: PeerInfo | null;
}
