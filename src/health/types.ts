/**
 * The one small interface every check type implements, and the values that cross it.
 * The scheduler and the state machine know only these; only `checks/` knows protocols.
 */

/** Where one check goes: an IP literal (never a name: no DNS lookups on the check path) and a port. */
export interface Target {
  address: string;
  port: number;
}

/** What a node's weight agent said, once its reply was understood. */
export interface AgentReply {
  down: boolean;
  drain: boolean;
  /** 0..100; undefined when the reply carried no weight. */
  weightPercent?: number;
}

/** What one check found. `reason` is short and operator-facing: `HTTP 503`, `connect ECONNREFUSED`. */
export interface CheckOutcome {
  ok: boolean;
  reason: string;
  /** Agent checks only, when the agent answered understandably (then `ok` is true). */
  agent?: AgentReply;
}

/** An outcome as recorded: when it finished and how long it took. */
export interface CheckResult extends CheckOutcome {
  /** Wall-clock time (ms since the epoch) the check finished. */
  at: number;
  durationMs: number;
}

export interface Checker {
  /**
   * Runs one check. Never rejects; settles promptly once `signal` aborts, with every socket,
   * timer and listener it made released.
   */
  run(target: Target, signal: AbortSignal): Promise<CheckOutcome>;
}

/** The abort reason the scheduler uses when a check runs out of time. */
export class CheckTimeout extends Error {
  constructor(readonly ms: number) {
    super(`timeout after ${ms} ms`);
    this.name = 'CheckTimeout';
  }
}
