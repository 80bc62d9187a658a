/**
 * Ownership adverts over UDP (effects): every `advertMs`, and at once after any change, this
 * director sends its per-VIP state to each configured peer; datagrams from anyone but a
 * configured peer, or failing the shared secret, are dropped.
 *
 * UDP rather than the coordinator's TCP presence port: one datagram carries per-VIP priority,
 * health and holding state; a dead peer is silence (no connect timeout to wait for); and the
 * presence port closes while draining, which says nothing about which VIPs a director holds.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import { canonicalAddress } from '../util/ip.js';
import { decodeAdvert, encodeAdverts } from './advert.js';
import type { Advert, AdvertEntry } from './ownership.js';

export interface PresenceOptions {
  id: string;
  boot: number;
  port: number;
  /** Other directors' addresses (this director's own addresses are skipped by the caller). */
  peers: readonly string[];
  advertMs: number;
  secret?: string;
}

export interface PresenceCounters {
  sent: number;
  sendErrors: number;
  received: number;
  /** Dropped datagrams by reason (`stranger`, `bad-mac`, `malformed`, ...). */
  refused: Record<string, number>;
}

type Events = { advert: [Advert, string] };

export class Presence extends EventEmitter<Events> {
  private readonly sockets = new Map<4 | 6, Socket>();
  private readonly peers: Set<string>;
  private entries: AdvertEntry[] = [];
  private seq = 1;
  private timer?: NodeJS.Timeout;
  private readonly counts: PresenceCounters = { sent: 0, sendErrors: 0, received: 0, refused: {} };

  constructor(private readonly opts: PresenceOptions) {
    super();
    this.peers = new Set(opts.peers.map(canonicalAddress));
  }

  /** Binds the port on IPv4 and IPv6 (either may be missing on a host); fails when neither binds. */
  async start(): Promise<void> {
    const errors: string[] = [];
    for (const family of [4, 6] as const) {
      try {
        this.sockets.set(family, await this.bind(family));
      } catch (e) {
        errors.push(`udp${family}: ${(e as Error).message}`);
      }
    }
    if (this.sockets.size === 0) throw new Error(`ownership port ${this.opts.port}: ${errors.join('; ')}`);
    this.timer = setInterval(() => void this.send(), this.opts.advertMs);
  }

  /** Replaces what this director advertises and sends it now. */
  publish(entries: readonly AdvertEntry[]): void {
    this.entries = [...entries];
    void this.send();
  }

  /** Sends `entries` now and resolves once the datagrams are handed to the kernel (before stop). */
  flush(entries: readonly AdvertEntry[]): Promise<void> {
    this.entries = [...entries];
    return this.send();
  }

  counters(): PresenceCounters {
    return { ...this.counts, refused: { ...this.counts.refused } };
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await Promise.all([...this.sockets.values()].map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    this.sockets.clear();
  }

  private bind(family: 4 | 6): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const s = createSocket({ type: family === 4 ? 'udp4' : 'udp6', ipv6Only: family === 6, reuseAddr: false });
      s.once('error', reject);
      s.bind(this.opts.port, family === 4 ? '0.0.0.0' : '::', () => {
        s.off('error', reject);
        // After binding, a socket error (e.g. ICMP unreachable on some kernels) is only counted.
        s.on('error', () => this.counts.sendErrors++);
        s.on('message', (msg, rinfo) => this.receive(msg, rinfo));
        resolve(s);
      });
    });
  }

  private receive(msg: Buffer, rinfo: RemoteInfo): void {
    const from = canonicalAddress(rinfo.address.replace(/^::ffff:(?=\d+\.)/, ''));
    if (!this.peers.has(from)) return this.refuse('stranger');
    const a = decodeAdvert(msg, this.opts.secret);
    if ('error' in a) return this.refuse(a.error);
    this.counts.received++;
    this.emit('advert', a, from);
  }

  private refuse(reason: string): void {
    this.counts.refused[reason] = (this.counts.refused[reason] ?? 0) + 1;
  }

  private send(): Promise<void> {
    if (this.sockets.size === 0 || this.peers.size === 0) return Promise.resolve();
    const { datagrams, nextSeq } = encodeAdverts({ id: this.opts.id, boot: this.opts.boot }, this.seq, this.entries, this.opts.secret);
    this.seq = nextSeq;
    const sends: Promise<void>[] = [];
    for (const peer of this.peers) {
      const s = this.sockets.get(isIP(peer) === 6 ? 6 : 4);
      if (!s) continue;
      for (const d of datagrams) {
        sends.push(
          new Promise((resolve) =>
            s.send(d, this.opts.port, peer, (err) => {
              if (err) this.counts.sendErrors++;
              else this.counts.sent++;
              resolve();
            }),
          ),
        );
      }
    }
    return Promise.all(sends).then(() => undefined);
  }
}
