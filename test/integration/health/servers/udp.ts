/**
 * UDP realserver: answers `pong <payload>` (bytes as received) unless the payload starts with
 * `silent`; SIGUSR1 stops all answers, SIGUSR2 resumes them.
 * Usage: udp.ts '{"hosts":["203.0.113.10","2001:db8::10"],"port":7}'
 */
import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';

const { hosts, port } = JSON.parse(process.argv[2] ?? '{}') as { hosts: string[]; port: number };
let answering = true;
let changes = 0;

await Promise.all(
  hosts.map(
    (host) =>
      new Promise<void>((resolve) => {
        const s = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
        s.on('message', (msg, from) => {
          if (!answering || msg.toString('latin1').startsWith('silent')) return;
          s.send(Buffer.concat([Buffer.from('pong '), msg]), from.port, from.address);
        });
        s.bind(port, host, resolve);
      }),
  ),
);
process.on('SIGUSR1', () => {
  answering = false;
  console.log(`mode ${++changes} silent`);
});
process.on('SIGUSR2', () => {
  answering = true;
  console.log(`mode ${++changes} answering`);
});
console.log('ready');
