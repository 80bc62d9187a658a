/**
 * Promise wrappers over the GobgpApi calls vipd makes. Every unary and finite stream call has
 * a deadline; the endless WatchEvent stream is cancelled by its owner. Calls that gobgpd
 * would misread are impossible to express here: DeletePath always carries a path (without one
 * gobgpd deletes every local path), WatchEvent always asks for peer events (an empty request
 * hangs forever).
 */
import * as grpc from '@grpc/grpc-js';
import type { Destination, Family, GlobalMsg, PathMsg, PeerEvent, PeerInfo, PeerMsg } from './messages.js';
import { createStub, type GobgpStub } from './proto.js';

export class GobgpError extends Error {
  constructor(
    readonly call: string,
    readonly code: grpc.status | undefined,
    detail: string,
  ) {
    super(`gobgpd ${call}: ${detail}`);
    this.name = 'GobgpError';
  }
}

export interface ClientOptions {
  /** Deadline of each call (streams: of the whole stream). */
  deadlineMs?: number;
  /** Proto directory; defaults to protoDir(). */
  protoDir?: string;
}

/** Paths per AddPathStream message: large enough to amortise, small enough for gobgpd's 4 MB limit. */
const STREAM_BATCH = 500;

export interface PeerWatch {
  cancel(): void;
}

export class GobgpClient {
  private readonly stub: GobgpStub;
  private readonly deadlineMs: number;

  constructor(
    readonly socketPath: string,
    opts: ClientOptions = {},
  ) {
    this.stub = createStub(socketPath, opts.protoDir);
    this.deadlineMs = opts.deadlineMs ?? 10_000;
  }

  private opts(deadlineMs = this.deadlineMs): grpc.CallOptions {
    return { deadline: Date.now() + deadlineMs };
  }

  private unary<Req, Res>(name: string, fn: (req: Req, meta: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: Res) => void) => unknown, req: Req, deadlineMs?: number): Promise<Res> {
    return new Promise((resolve, reject) => {
      fn.call(this.stub, req, new grpc.Metadata(), this.opts(deadlineMs), (err, res) => {
        if (err) reject(new GobgpError(name, err.code, err.details || err.message));
        else resolve(res as Res);
      });
    });
  }

  private collect<Res, Out>(name: string, stream: grpc.ClientReadableStream<Res>, pick: (r: Res) => Out | null | undefined): Promise<Out[]> {
    return new Promise((resolve, reject) => {
      const out: Out[] = [];
      stream.on('data', (r: Res) => {
        const v = pick(r);
        if (v) out.push(v);
      });
      stream.on('error', (err: grpc.ServiceError) => reject(new GobgpError(name, err.code, err.details || err.message)));
      stream.on('end', () => resolve(out));
    });
  }

  /** `global.asn === 0` means gobgpd runs but BGP is not started yet. */
  async getBgp(deadlineMs?: number): Promise<GlobalMsg> {
    const r = await this.unary('GetBgp', this.stub.GetBgp, {}, deadlineMs);
    return r.global ?? { asn: 0, router_id: '', listen_port: 0, listen_addresses: [] };
  }

  /** Not idempotent (rebuilds the RIB): callers check getBgp() first. */
  async startBgp(global: GlobalMsg): Promise<void> {
    await this.unary('StartBgp', this.stub.StartBgp, { global });
  }

  async addPeer(peer: PeerMsg): Promise<void> {
    await this.unary('AddPeer', this.stub.AddPeer, { peer });
  }

  async deletePeer(address: string): Promise<void> {
    await this.unary('DeletePeer', this.stub.DeletePeer, { address });
  }

  /** All peers, or one; with advertised-prefix counters. */
  listPeer(address = ''): Promise<PeerInfo[]> {
    return this.collect('ListPeer', this.stub.ListPeer({ address, enableAdvertised: true }, this.opts()), (r) => r.peer);
  }

  async addPath(path: PathMsg): Promise<void> {
    await this.unary('AddPath', this.stub.AddPath, { table_type: 'GLOBAL', path });
  }

  /** Adds (or, with `is_withdraw`, withdraws) many paths over one stream, in batches. */
  addPathStream(paths: readonly PathMsg[], deadlineMs?: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const call = this.stub.AddPathStream(new grpc.Metadata(), this.opts(deadlineMs ?? this.deadlineMs + paths.length), (err) => {
        if (err) reject(new GobgpError('AddPathStream', err.code, err.details || err.message));
        else resolve();
      });
      // gobgpd reports a bad path by ending the call; the callback above carries that error.
      call.on('error', () => undefined);
      for (let i = 0; i < paths.length; i += STREAM_BATCH) call.write({ table_type: 'GLOBAL', paths: paths.slice(i, i + STREAM_BATCH) });
      call.end();
    });
  }

  /** Withdraws one path, identified by its NLRI (never by uuid, which changes on re-add). */
  async deletePath(path: PathMsg): Promise<void> {
    await this.unary('DeletePath', this.stub.DeletePath, { table_type: 'GLOBAL', family: path.family, path: { ...path, is_withdraw: true } });
  }

  /** The global RIB of one family (family is required by gobgpd). */
  listPath(family: Family): Promise<Destination[]> {
    return this.collect('ListPath', this.stub.ListPath({ table_type: 'GLOBAL', family }, this.opts()), (r) => r.destination);
  }

  /**
   * Peer events: INIT for each existing peer, END_OF_INIT, then STATE on every change.
   * `onEnd` fires once when the stream ends or fails, unless cancelled.
   */
  watchPeers(onEvent: (e: PeerEvent) => void, onEnd: (err?: Error) => void): PeerWatch {
    const call = this.stub.WatchEvent({ peer: {} }, {});
    let cancelled = false;
    let ended = false;
    const end = (err?: Error): void => {
      if (ended || cancelled) return;
      ended = true;
      onEnd(err);
    };
    call.on('data', (r: { peer?: PeerEvent | null }) => {
      if (r.peer) onEvent(r.peer);
    });
    call.on('error', (err: grpc.ServiceError) => end(new GobgpError('WatchEvent', err.code, err.details || err.message)));
    call.on('end', () => end());
    return {
      cancel: () => {
        cancelled = true;
        call.cancel();
      },
    };
  }

  close(): void {
    this.stub.close();
  }
}
