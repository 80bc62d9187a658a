/**
 * TCP realserver: listens on the given ports; SIGUSR1 closes the listeners (connects are
 * refused), SIGUSR2 opens them again. Usage: tcp.ts '{"hosts":["203.0.113.10"],"ports":[8080]}'
 */
import { createServer, type Server } from 'node:net';

const { hosts, ports } = JSON.parse(process.argv[2] ?? '{}') as { hosts: string[]; ports: number[] };
let servers: Server[] = [];
let changes = 0;

async function open(): Promise<void> {
  servers = hosts.flatMap((host) =>
    ports.map((port) => {
      const s = createServer((c) => {
        c.on('error', () => undefined);
        c.destroy();
      });
      s.listen(port, host);
      return s;
    }),
  );
  await Promise.all(servers.map((s) => new Promise((r) => s.once('listening', r))));
}

async function close(): Promise<void> {
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  servers = [];
}

process.on('SIGUSR1', () => void close().then(() => console.log(`mode ${++changes} closed`)));
process.on('SIGUSR2', () => void open().then(() => console.log(`mode ${++changes} open`)));
// With its listeners closed nothing else would keep the process alive.
setInterval(() => undefined, 1 << 30);
await open();
console.log('ready');
