/**
 * Node weight agent: each port sends its reply line and closes. `<silent>` never answers,
 * `<close>` closes without a word. The port `cycle` steps through `cycle.replies` on SIGUSR1.
 * Usage: agent.ts '{"host":"203.0.113.10","replies":{"9001":"up"},"cycle":{"port":9100,"replies":["up","drain"]}}'
 */
import { createServer, type Socket } from 'node:net';

interface Options {
  host: string;
  replies: Record<string, string>;
  cycle: { port: number; replies: string[] };
}
const { host, replies, cycle } = JSON.parse(process.argv[2] ?? '{}') as Options;
let step = 0;

function answer(c: Socket, reply: string): void {
  c.on('error', () => undefined);
  if (reply === '<silent>') return;
  if (reply === '<close>') c.end();
  else c.end(`${reply}\n`);
}

const listening: Array<Promise<unknown>> = [];
for (const [port, reply] of Object.entries(replies)) {
  listening.push(new Promise((r) => createServer((c) => answer(c, reply)).listen(Number(port), host, () => r(null))));
}
listening.push(new Promise((r) => createServer((c) => answer(c, cycle.replies[step % cycle.replies.length] ?? '')).listen(cycle.port, host, () => r(null))));
await Promise.all(listening);
process.on('SIGUSR1', () => console.log(`mode ${++step} ${cycle.replies[step % cycle.replies.length] ?? ''}`));
console.log('ready');
