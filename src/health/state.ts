/**
 * Per-target health state (pure: no timers, no I/O). A check target goes down after `fall`
 * failures in a row and up after `rise` successes in a row, starts in `startUp`, and asks for
 * the fast interval while a change is under way. An agent target remembers what its agent said.
 */
import type { AgentReply, CheckResult } from './types.js';

/**
 * The newest results of one target, oldest first. Results live in two preallocated columns,
 * so recording one allocates nothing, and ten thousand targets' history neither churns the
 * garbage collector's old generation nor weighs much (which is what kept the benchmark's RSS up).
 */
export class History {
  /** Per result: `at` (negative when the check failed) and `durationMs`, as unboxed doubles. */
  private times: number[] = [];
  private reasons: string[] = [];
  /** Only agents' results carry replies; allocated on first use. */
  private agent?: Array<AgentReply | undefined>;
  private next = 0;
  private count = 0;

  constructor(private cap: number) {
    this.allocate();
  }

  private allocate(): void {
    // 0.5, not 0: the array holds unboxed doubles from the start.
    this.times = new Array<number>(2 * this.cap).fill(0.5);
    this.reasons = new Array<string>(this.cap).fill('');
    this.agent = undefined;
    this.next = 0;
    this.count = 0;
  }

  push(r: CheckResult): void {
    const i = this.next;
    this.times[2 * i] = r.ok ? r.at : -r.at;
    this.times[2 * i + 1] = r.durationMs;
    this.reasons[i] = r.reason;
    if (r.agent || this.agent) (this.agent ??= new Array<AgentReply | undefined>(this.cap))[i] = r.agent;
    this.next = (i + 1) % this.cap;
    if (this.count < this.cap) this.count++;
  }

  get length(): number {
    return this.count;
  }

  /** Oldest first. */
  toArray(): CheckResult[] {
    const out: CheckResult[] = [];
    for (let k = 0; k < this.count; k++) {
      const i = (this.next - this.count + k + this.cap) % this.cap;
      const at = this.times[2 * i] ?? 0;
      const agent = this.agent?.[i];
      out.push({
        ok: at > 0,
        reason: this.reasons[i] ?? '',
        at: Math.abs(at),
        durationMs: this.times[2 * i + 1] ?? 0,
        ...(agent ? { agent } : {}),
      });
    }
    return out;
  }

  /** Changes the capacity, keeping the newest results. */
  resize(cap: number): void {
    const kept = this.toArray().slice(-cap);
    this.cap = cap;
    this.allocate();
    for (const r of kept) this.push(r);
  }
}

export interface StateOptions {
  rise: number;
  fall: number;
  startUp: boolean;
  interval: number;
  /** Interval while a change is under way; `interval` when unset. */
  fastInterval?: number;
  /** Results kept. */
  history: number;
}

/** What one result did to a check target. */
export interface Verdict {
  /** The target went up or down. */
  changed: boolean;
  /** This was the target's first result. */
  first: boolean;
  /**
   * The first result only started a change (a success while starting down, say) and this one
   * ended it without one: the target's first settled verdict, which no other event would carry.
   */
  settled: boolean;
}

export class CheckState {
  up: boolean;
  /** False until the first result. */
  known = false;
  /** Results in a row that disagree with `up`. */
  streak = 0;
  /** The first result started a change that has neither completed nor ended yet. */
  private firstPending = false;
  checks = 0;
  /** When `up` last changed (ms since the epoch; creation time until then). */
  since: number;
  /** Why the target is in its state: the last result's reason, with progress while changing. */
  reason: string;
  readonly history: History;

  constructor(
    private readonly opts: StateOptions,
    now: number,
  ) {
    this.up = opts.startUp;
    this.since = now;
    this.reason = opts.startUp ? 'starting up' : `starting down, ${opts.rise} to rise`;
    this.history = new History(opts.history);
  }

  record(result: CheckResult): Verdict {
    this.checks++;
    this.history.push(result);
    const first = !this.known;
    this.known = true;
    if (result.ok === this.up) {
      this.streak = 0;
      this.reason = result.reason;
      const settled = this.firstPending;
      this.firstPending = false;
      return { changed: false, first, settled };
    }
    this.streak++;
    const need = this.up ? this.opts.fall : this.opts.rise;
    if (this.streak >= need) {
      this.up = !this.up;
      this.streak = 0;
      this.since = result.at;
      this.reason = result.reason;
      this.firstPending = false;
      return { changed: true, first, settled: false };
    }
    this.reason = `${result.reason} (${this.streak} of ${need} to ${this.up ? 'fall' : 'rise'})`;
    if (first) this.firstPending = true;
    return { changed: false, first, settled: false };
  }

  /** Milliseconds until the next check. */
  nextInterval(): number {
    return this.streak > 0 ? (this.opts.fastInterval ?? this.opts.interval) : this.opts.interval;
  }
}

/** An agent's last understood reply and whether its last poll was answered. */
export class AgentState {
  /** Whether the last poll got an understandable reply. */
  answered = false;
  known = false;
  /** The last understood reply; kept while the agent does not answer (as HAProxy does). */
  reply: AgentReply = { down: false, drain: false };
  reason = 'no reply yet';
  checks = 0;
  readonly history: History;

  constructor(history: number) {
    this.history = new History(history);
  }

  /** True when what the agent reports changed (always for the first result). */
  record(result: CheckResult): boolean {
    this.checks++;
    this.history.push(result);
    this.reason = result.reason;
    const prev = { ...this.reply, answered: this.answered, known: this.known };
    this.known = true;
    this.answered = result.agent !== undefined;
    if (result.agent) this.reply = { ...result.agent };
    return (
      !prev.known ||
      prev.answered !== this.answered ||
      prev.down !== this.reply.down ||
      prev.drain !== this.reply.drain ||
      prev.weightPercent !== this.reply.weightPercent
    );
  }
}
