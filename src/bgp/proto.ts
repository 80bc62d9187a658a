/**
 * gobgpd's gRPC contract, loaded at run time from Debian's golang-github-osrg-gobgp-dev protos
 * (unpacked outside the repository by scripts/deps.sh), and a typed stub factory. The stub
 * is the only place where the dynamically generated client meets vipd's types.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Destination, Family, GlobalMsg, PathMsg, PeerEvent, PeerInfo, PeerMsg } from './messages.js';

/** Where the protos are: $VIPD_GOBGP_PROTO_DIR, else ${VIPD_CACHE:-/var/cache/vipd}/gobgp-proto/api. */
export function protoDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.VIPD_GOBGP_PROTO_DIR ?? join(env.VIPD_CACHE ?? '/var/cache/vipd', 'gobgp-proto', 'api');
}

type Callback<Res> = (err: grpc.ServiceError | null, res?: Res) => void;
export type Unary<Req, Res> = (req: Req, meta: grpc.Metadata, opts: grpc.CallOptions, cb: Callback<Res>) => grpc.ClientUnaryCall;
type ServerStream<Req, Res> = (req: Req, opts: grpc.CallOptions) => grpc.ClientReadableStream<Res>;
type ClientStream<Req, Res> = (meta: grpc.Metadata, opts: grpc.CallOptions, cb: Callback<Res>) => grpc.ClientWritableStream<Req>;
type Empty = Record<string, never>;
type PathRequest = { table_type: 'GLOBAL'; paths: PathMsg[] };

/**
 * An AddPathStream request encoded ahead of its write (`encodePaths`). Encoded requests joined
 * (`joinEncoded`) are one request carrying all their paths: protobuf merges concatenated
 * messages, appending repeated fields.
 */
export type EncodedPaths = Buffer & { readonly encodedPaths: true };

export function joinEncoded(parts: readonly EncodedPaths[]): EncodedPaths {
  return Buffer.concat(parts) as EncodedPaths;
}

/** The GobgpApi methods vipd calls, with vipd's message types. */
export interface GobgpStub {
  GetBgp: Unary<Empty, { global: GlobalMsg | null }>;
  StartBgp: Unary<{ global: GlobalMsg }, Empty>;
  AddPeer: Unary<{ peer: PeerMsg }, Empty>;
  DeletePeer: Unary<{ address: string }, Empty>;
  ListPeer: ServerStream<{ address: string; enableAdvertised: boolean }, { peer: PeerInfo | null }>;
  AddPath: Unary<{ table_type: 'GLOBAL'; path: PathMsg }, { uuid: Buffer }>;
  AddPathStream: ClientStream<PathRequest | EncodedPaths, Empty>;
  DeletePath: Unary<{ table_type: 'GLOBAL'; family: Family; path: PathMsg }, Empty>;
  ListPath: ServerStream<{ table_type: 'GLOBAL'; family: Family }, { destination: Destination | null }>;
  WatchEvent: ServerStream<{ peer: Empty }, { peer?: PeerEvent | null; event?: string }>;
  close(): void;
}

const METHODS: readonly Exclude<keyof GobgpStub, 'close'>[] = ['GetBgp', 'StartBgp', 'AddPeer', 'DeletePeer', 'ListPeer', 'AddPath', 'AddPathStream', 'DeletePath', 'ListPath', 'WatchEvent'];

interface Loaded {
  ctor: grpc.ServiceClientConstructor;
  encode: (req: PathRequest) => Buffer;
}
const loaded = new Map<string, Loaded>();

/** Loads (once per directory) the GobgpApi service; throws naming the directory when the protos are missing. */
export function loadGobgpService(dir: string = protoDir()): grpc.ServiceClientConstructor {
  return load(dir).ctor;
}

/** Encodes an AddPathStream request for a later write (the same bytes the stream would send). */
export function encodePaths(paths: readonly PathMsg[], dir: string = protoDir()): EncodedPaths {
  return load(dir).encode({ table_type: 'GLOBAL', paths: [...paths] }) as EncodedPaths;
}

function load(dir: string): Loaded {
  const hit = loaded.get(dir);
  if (hit) return hit;
  const files = ['gobgp.proto', 'attribute.proto', 'capability.proto'];
  const missing = files.filter((f) => !existsSync(join(dir, f)));
  if (missing.length) {
    throw new Error(`gobgpd API protos not found in ${dir} (missing ${missing.join(', ')}); run scripts/deps.sh or set VIPD_GOBGP_PROTO_DIR`);
  }
  // attribute.proto imports "gobgp.proto", so the api folder itself is the include dir.
  const def = protoLoader.loadSync(files, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, json: true, includeDirs: [dir] });
  // AddPathStream also takes a request encoded ahead, as is: the stub captures the serializer
  // when it is made, so it is wrapped here, before.
  const stream = (def['apipb.GobgpApi'] as protoLoader.ServiceDefinition | undefined)?.AddPathStream;
  if (!stream) throw new Error(`${dir}: no apipb.GobgpApi service in the protos (is this gobgp v3?)`);
  const encode = stream.requestSerialize as (req: PathRequest) => Buffer;
  stream.requestSerialize = (req: object) => (Buffer.isBuffer(req) ? req : encode(req as PathRequest));
  const pkg = grpc.loadPackageDefinition(def) as { apipb?: { GobgpApi?: grpc.ServiceClientConstructor } };
  // Present: its definition was found above.
  const ctor = pkg.apipb?.GobgpApi as grpc.ServiceClientConstructor;
  for (const m of METHODS) {
    if (!(m in ctor.service)) throw new Error(`${dir}: GobgpApi has no ${m} (is this gobgp v3?)`);
  }
  const l = { ctor, encode };
  loaded.set(dir, l);
  return l;
}

/** A stub talking to gobgpd's unix socket; reconnects fast so a restarted gobgpd is seen at once. */
export function createStub(socketPath: string, dir?: string): GobgpStub {
  const Ctor = loadGobgpService(dir);
  const client = new Ctor(`unix://${socketPath}`, grpc.credentials.createInsecure(), {
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': 1000,
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
  });
  return client as unknown as GobgpStub;
}
