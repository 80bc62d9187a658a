/** Plumbing shared by the check types: one settle path that always releases what a check made. */
import { CheckTimeout, type CheckOutcome } from '../types.js';

/** Why a check was cut short: its timeout (`timeout after 1000 ms`) or the monitor stopping it. */
export function abortReason(signal: AbortSignal): string {
  return signal.reason instanceof CheckTimeout ? signal.reason.message : 'check cancelled';
}

/** `connect ECONNREFUSED`, `read ECONNRESET`; the message for errors without a system call. */
export function errorReason(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const { syscall, code } = e as NodeJS.ErrnoException;
  if (syscall && code) return `${syscall} ${code}`;
  return e.message;
}

export function fail(reason: string): CheckOutcome {
  return { ok: false, reason };
}

/**
 * Runs a callback-style check. `start` begins the I/O and returns its cleanup; `done` settles
 * once: later calls (a late error after a timeout, say) are ignored. Abort settles with the
 * abort reason. Cleanup runs exactly once, whichever way the check ends.
 */
export function attempt(signal: AbortSignal, start: (done: (o: CheckOutcome) => void) => () => void): Promise<CheckOutcome> {
  if (signal.aborted) return Promise.resolve(fail(abortReason(signal)));
  return new Promise((resolve) => {
    let settled = false;
    let cleanup: (() => void) | undefined;
    const onAbort = (): void => done(fail(abortReason(signal)));
    const done = (o: CheckOutcome): void => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      resolve(o);
      // Closing sockets waits for the next turn: the verdict (and a withdrawal it starts) first.
      if (cleanup) setImmediate(cleanup);
    };
    signal.addEventListener('abort', onAbort);
    try {
      cleanup = start(done);
    } catch (e) {
      // e.g. an invalid address or port rejected synchronously by node:net
      done(fail(errorReason(e)));
      return;
    }
    if (settled) setImmediate(cleanup);
  });
}

/** Up to `max` characters of a reply for a reason, printable and quoted. */
export function excerpt(text: string, max = 40): string {
  const s = text.length > max ? `${text.slice(0, max)}…` : text;
  return JSON.stringify(s);
}
