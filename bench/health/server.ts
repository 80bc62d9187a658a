/**
 * Realservers for the health benchmark: `count` TCP listeners from `base` on every address of
 * the namespace; each accepted connection is closed at once.
 * Usage: server.ts BASE COUNT
 */
import { createServer, type Socket } from 'node:net';

const base = Number(process.argv[2]);
const count = Number(process.argv[3]);
const closeAtOnce = (s: Socket): void => {
  s.on('error', () => undefined);
  s.destroy();
};
await Promise.all(
  Array.from(
    { length: count },
    (_, i) =>
      new Promise<void>((resolve) => {
        // pauseOnConnect: nothing is ever read, so no read is started on the socket.
        createServer({ pauseOnConnect: true }, closeAtOnce).listen({ port: base + i, host: '0.0.0.0', backlog: 4096 }, resolve);
      }),
  ),
);
console.log('ready');
