/**
 * winston logger: JSON lines (one event per line, with component and fields) by default,
 * readable text when stderr is a terminal. Every subsystem logs through `child(component)`.
 */
import winston from 'winston';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
export type LogFormat = 'auto' | 'json' | 'text';
export type Fields = Record<string, unknown>;

export interface Logger {
  error(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  debug(msg: string, fields?: Fields): void;
  child(component: string): Logger;
}

const text = winston.format.printf(({ timestamp, level, message, component, ...rest }) => {
  const fields = Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === 'string' && !/\s/.test(v) ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${String(timestamp)} ${level.padEnd(5)} [${String(component ?? 'vipd')}] ${String(message)}${fields ? ` ${fields}` : ''}`;
});

let root: winston.Logger | undefined;

/** (Re)configures the process-wide logger; safe to call again on reload. */
export function configureLogging(level: LogLevel, format: LogFormat, stream: NodeJS.WritableStream = process.stderr): void {
  const useText = format === 'text' || (format === 'auto' && (stream as NodeJS.WriteStream).isTTY === true);
  const fmt = useText
    ? winston.format.combine(winston.format.timestamp(), text)
    : winston.format.combine(winston.format.timestamp(), winston.format.json());
  if (root) {
    root.level = level;
    root.format = fmt;
    return;
  }
  root = winston.createLogger({ level, format: fmt, transports: [new winston.transports.Stream({ stream })] });
}

function wrap(l: winston.Logger): Logger {
  return {
    error: (msg, f) => l.error(msg, f),
    warn: (msg, f) => l.warn(msg, f),
    info: (msg, f) => l.info(msg, f),
    debug: (msg, f) => l.debug(msg, f),
    child: (component) => wrap(l.child({ component })),
  };
}

export function logger(component: string): Logger {
  if (!root) configureLogging('info', 'auto');
  return wrap((root as winston.Logger).child({ component }));
}

/** A logger that drops everything, for unit tests and pure code paths. */
export const nullLogger: Logger = {
  error: () => undefined,
  warn: () => undefined,
  info: () => undefined,
  debug: () => undefined,
  child: () => nullLogger,
};
