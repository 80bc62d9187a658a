/**
 * Director-presence ports (Ravel's coordinator port): open while this director serves,
 * closed while draining or stopping, so realservers and peers can tell by connecting.
 * A connection is accepted and closed at once; nothing is ever read from it.
 */
import { createServer, type Server } from 'node:net';
import type { Logger } from '../log/logger.js';

export class PresencePorts {
  private servers = new Map<number, Server>();

  constructor(
    private readonly host: string,
    private readonly log: Logger,
    /** Accepted-but-not-yet-closed connections per port; floods beyond it are refused by the kernel backlog. */
    private readonly maxConnections = 256,
  ) {}

  /** Opens exactly `ports` (closing the others); failures are logged and reported, not thrown. */
  async open(ports: readonly number[]): Promise<{ open: number[]; failed: { port: number; error: string }[] }> {
    const failed: { port: number; error: string }[] = [];
    for (const [port, server] of this.servers) {
      if (!ports.includes(port)) {
        this.servers.delete(port);
        await new Promise<void>((r) => server.close(() => r()));
      }
    }
    for (const port of ports) {
      if (this.servers.has(port)) continue;
      const server = createServer({ pauseOnConnect: true }, (s) => {
        s.on('error', () => undefined);
        s.destroy();
      });
      server.maxConnections = this.maxConnections;
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen({ port, host: this.host, backlog: 128 }, () => resolve());
        });
        server.on('error', (e) => this.log.warn('presence port error', { port, error: e.message }));
        this.servers.set(port, server);
      } catch (e) {
        failed.push({ port, error: (e as Error).message });
        this.log.error('presence port could not open', { port, error: (e as Error).message });
      }
    }
    return { open: [...this.servers.keys()], failed };
  }

  async close(): Promise<void> {
    await this.open([]);
  }

  get ports(): number[] {
    return [...this.servers.keys()];
  }
}
