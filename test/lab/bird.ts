/** BIRD 2 as a real BGP router inside a lab namespace. */
import { writeFileSync } from 'node:fs';
import type { Daemon, Lab } from './netns.js';

export interface Bird {
  readonly daemon: Daemon;
  readonly socket: string;
  /** Runs a birdc command and returns its output. */
  cli(command: string): Promise<string>;
  stop(): Promise<void>;
}

export async function startBird(lab: Lab, ns: string, name: string, config: string): Promise<Bird> {
  const conf = lab.path(`${name}.conf`);
  const socket = lab.path(`${name}.ctl`);
  writeFileSync(conf, config);
  const check = await lab.exec(ns, 'bird', ['-p', '-c', conf]);
  if (check.code !== 0) throw new Error(`bird config for ${name} rejected: ${check.stderr}`);
  const daemon = lab.spawn(ns, 'bird', ['-f', '-c', conf, '-s', socket, '-P', lab.path(`${name}.pid`)]);
  const cli = async (command: string): Promise<string> => {
    const r = await lab.exec(ns, 'birdc', ['-s', socket, ...command.split(' ')], 10_000);
    if (r.code !== 0) throw new Error(`birdc ${command}: ${r.stderr || r.stdout}`);
    return r.stdout;
  };
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      await cli('show status');
      break;
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { daemon, socket, cli, stop: () => daemon.stop('SIGTERM') };
}
