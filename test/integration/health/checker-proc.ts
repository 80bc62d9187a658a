/**
 * The director side of the health lab: a HealthMonitor in the director namespace, driven by
 * the test over the IPC channel (requests in, replies and every monitor event out).
 * It exits when the test process goes away, so it cannot outlive a killed run.
 */
import { readdirSync } from 'node:fs';
import { HealthMonitor, type HealthConfig, type TargetSpec } from '../../../src/health/index.js';
import type { Logger } from '../../../src/log/logger.js';

export type Request =
  | { seq: number; op: 'update'; targets: TargetSpec[] }
  | { seq: number; op: 'configure'; health: HealthConfig }
  | { seq: number; op: 'status'; id: string }
  | { seq: number; op: 'process' }
  | { seq: number; op: 'stop' };

/** What the process holds: memory and open file descriptors, for leak checks. */
export interface ProcessInfo {
  rssMb: number;
  fds: number;
}

const send = (m: unknown): void => {
  process.send?.(m);
};

/** The monitor's log lines go to the test as events, with the time they were written. */
const log: Logger = {
  error: (msg, fields) => send({ event: 'log', level: 'error', msg, fields: fields ?? {}, loggedAt: Date.now() }),
  warn: (msg, fields) => send({ event: 'log', level: 'warn', msg, fields: fields ?? {}, loggedAt: Date.now() }),
  info: (msg, fields) => send({ event: 'log', level: 'info', msg, fields: fields ?? {}, loggedAt: Date.now() }),
  debug: () => undefined,
  child: () => log,
};

const health: HealthConfig = JSON.parse(process.env.VIPD_TEST_HEALTH ?? '{"concurrency":100,"history":50}') as HealthConfig;
const monitor = new HealthMonitor(health, log);
monitor.on('transition', (e) => send({ event: 'transition', ...e }));
monitor.on('agent', (e) => send({ event: 'agent', ...e }));
monitor.on('result', (e) => send({ event: 'result', ...e }));

function info(): ProcessInfo {
  return { rssMb: process.memoryUsage().rss / 1e6, fds: readdirSync('/proc/self/fd').length };
}

function handle(m: Request): unknown {
  switch (m.op) {
    case 'update':
      return monitor.update(m.targets);
    case 'configure':
      monitor.configure(m.health);
      return null;
    case 'status':
      return monitor.status(m.id) ?? null;
    case 'process':
      return info();
    case 'stop':
      monitor.stop();
      return null;
  }
}

process.on('message', (raw) => {
  const m = raw as Request;
  try {
    send({ seq: m.seq, reply: handle(m) });
  } catch (e) {
    send({ seq: m.seq, error: String(e) });
  }
});
process.on('disconnect', () => process.exit(0));
send({ event: 'ready' });
