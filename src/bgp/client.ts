/**
 * Promise wrappers over the GobgpApi calls vipd makes. Every unary and finite stream call has
 * a deadline; the endless WatchEvent stream is cancelled by its owner. Calls that gobgpd
 * would misread are impossible to express here: DeletePath always carries a path (without one
 * gobgpd deletes every local path), WatchEvent always asks for peer events (an empty request
 * hangs forever).
 */
import * as grpc from '@grpc/grpc-js';
import type { Destination, Family, GlobalMsg, PathMsg, PeerEvent, PeerInfo, PeerMsg } from './messages.js';
import { createStub, encodePaths, type EncodedPaths, type GobgpStub, type Unary } from './proto.js';

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

const failure = (call: string, err: grpc.ServiceError): GobgpError => new GobgpError(call, err.code, err.details || err.message);

export interface ClientOptions {
  /** Deadline of each call (streams: of the whole stream). */
  deadlineMs?: number;
  /** Proto directory; defaults to protoDir(). */
  protoDir?: string;
  /** The stub to use instead of one on `socketPath` (tests). */
  stub?: GobgpStub;
}

/** Paths per AddPathStream message: amortises per-message work in gobgpd (1,000 measured fastest), well under its 4 MB limit. */
const STREAM_BATCH = 1_000;

interface OpenPathStream extends PathStream {
  /** The call ended with an error (before it was used, for a spare). */
  failed: boolean;
  /** Starts the deadline: the stream is in use. */
  arm(): void;
  cancel(): void;
}

export interface PeerWatch {
  cancel(): void;
}

export interface PathStream {
  /** Paths, or a request encoded ahead (`GobgpClient.encode`), which is sent as it is. */
  write(paths: readonly PathMsg[] | EncodedPaths): void;
  end(): Promise<void>;
}

export class GobgpClient {
  private readonly stub: GobgpStub;
  private readonly deadlineMs: number;
  private readonly protoDir: string | undefined;
  /** The AddPathStream the next addPathStream() hands out. */
  private spare?: OpenPathStream;
  private closed = false;

  constructor(
    readonly socketPath: string,
    opts: ClientOptions = {},
  ) {
    this.stub = opts.stub ?? createStub(socketPath, opts.protoDir);
    this.deadlineMs = opts.deadlineMs ?? 10_000;
    this.protoDir = opts.protoDir;
  }

  /** An AddPathStream request of `paths`, encoded now for a write later. */
  encode(paths: readonly PathMsg[]): EncodedPaths {
    return encodePaths(paths, this.protoDir);
  }

  private opts(deadlineMs = this.deadlineMs): grpc.CallOptions {
    return { deadline: Date.now() + deadlineMs };
  }

  private unary<Req, Res>(name: string, fn: Unary<Req, Res>, req: Req, deadlineMs?: number): Promise<Res> {
    return new Promise((resolve, reject) => {
      fn.call(this.stub, req, new grpc.Metadata(), this.opts(deadlineMs), (err, res) => {
        if (err) reject(failure(name, err));
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
      stream.on('error', (err: grpc.ServiceError) => reject(failure(name, err)));
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

  /** Every peer, with advertised-prefix counters. */
  listPeer(): Promise<PeerInfo[]> {
    return this.collect('ListPeer', this.stub.ListPeer({ address: '', enableAdvertised: true }, this.opts()), (r) => r.peer);
  }

  async addPath(path: PathMsg): Promise<void> {
    await this.unary('AddPath', this.stub.AddPath, { table_type: 'GLOBAL', path });
  }

  /**
   * An AddPathStream: paths written (with `is_withdraw` for withdrawals) go out in batches at
   * once, so gobgpd works on them while the caller prepares more; `end()` resolves when gobgpd
   * has taken them all, or rejects with its error (it ends the call on a bad path).
   *
   * The stream was opened ahead, once the previous one ended: setting up a call costs more than
   * a write, and a withdrawal should cost only the write. gobgpd applies each message as it
   * arrives, so an open stream that has carried nothing is free to wait. A spare that failed
   * meanwhile (gobgpd restarted) is replaced by a fresh call.
   */
  addPathStream(): PathStream {
    const s = this.spare && !this.spare.failed ? this.spare : this.openPathStream();
    this.spare = undefined;
    s.arm();
    return {
      write: s.write,
      end: () => {
        const r = s.end();
        const next = (): void => {
          if (!this.closed) this.spare ??= this.openPathStream();
        };
        r.then(next, next);
        return r;
      },
    };
  }

  private openPathStream(): OpenPathStream {
    let settle: (err?: Error) => void = () => undefined;
    const result = new Promise<void>((resolve, reject) => {
      settle = (err) => (err ? reject(err) : resolve());
    });
    // A failure before end() is reported by end(), not as an unhandled rejection.
    result.catch(() => undefined);
    // No deadline at the call (it may wait as a spare): arm() starts one when it is handed out,
    // longer than single calls', since a stream carries up to every VIP.
    const call = this.stub.AddPathStream(new grpc.Metadata(), {}, (err) => {
      if (err) s.failed = true;
      settle(err ? failure('AddPathStream', err) : undefined);
    });
    // The callback above carries the call's outcome; errors emitted on the stream repeat it.
    call.on('error', () => undefined);
    const s: OpenPathStream = {
      failed: false,
      write: (paths) => {
        if (Buffer.isBuffer(paths)) {
          call.write(paths);
          return;
        }
        for (let i = 0; i < paths.length; i += STREAM_BATCH) call.write({ table_type: 'GLOBAL', paths: paths.slice(i, i + STREAM_BATCH) });
      },
      end: () => {
        call.end();
        return result;
      },
      arm: () => {
        const timer = setTimeout(() => call.cancel(), this.deadlineMs * 6);
        const clear = (): void => clearTimeout(timer);
        result.then(clear, clear);
      },
      cancel: () => call.cancel(),
    };
    return s;
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
    call.on('error', (err: grpc.ServiceError) => end(failure('WatchEvent', err)));
    call.on('end', () => end());
    return {
      cancel: () => {
        cancelled = true;
        call.cancel();
      },
    };
  }

  close(): void {
    this.closed = true;
    this.spare?.cancel();
    this.spare = undefined;
    this.stub.close();
  }
}
