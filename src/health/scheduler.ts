/**
 * Runs jobs on their own schedules from one min-heap and one timer, so ten thousand targets
 * cost one pending timer, not ten thousand intervals. A job never overlaps itself (its next
 * run is scheduled only when the current one ends), at most `concurrency` jobs run at once
 * (the rest wait in arrival order), and every run gets an AbortSignal that fires at its timeout.
 * It knows nothing of what a job checks.
 */
import { CheckTimeout } from './types.js';

export interface Job {
  /** Time budget of one run; the signal aborts with a CheckTimeout when it runs out. */
  readonly timeoutMs: number;
  /** Must settle promptly once `signal` aborts. */
  run(signal: AbortSignal): Promise<void>;
  /** Milliseconds from this run's scheduled start to the next run's, asked after each run. */
  nextDelay(): number;
}

/** Runs started per timer callback at most. */
const BURST = 256;

interface Slot {
  job: Job;
  /** Scheduled start, in `performance.now()` milliseconds. */
  due: number;
  removed: boolean;
  /** The run in flight's; aborted on timeout, removal or stop. */
  controller?: AbortController;
}

/** Bounded histogram of how late runs start against their schedule: 1 ms buckets up to 10 s. */
export class LatenessHistogram {
  private readonly buckets = new Uint32Array(10_001);
  count = 0;
  maxMs = 0;

  record(ms: number): void {
    const b = Math.min(this.buckets.length - 1, Math.max(0, Math.floor(ms)));
    this.buckets[b] = (this.buckets[b] ?? 0) + 1;
    this.count++;
    if (ms > this.maxMs) this.maxMs = ms;
  }

  /** Upper bound (ms) of the bucket holding the p-th percentile; 0 with no samples. */
  percentile(p: number): number {
    if (!this.count) return 0;
    const rank = Math.ceil((p / 100) * this.count);
    let seen = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      seen += this.buckets[i] ?? 0;
      if (seen >= rank) return i + 1;
    }
    return this.buckets.length;
  }

  reset(): void {
    this.buckets.fill(0);
    this.count = 0;
    this.maxMs = 0;
  }
}

export class Scheduler {
  private concurrency: number;
  private readonly slots = new Map<Job, Slot>();
  /** Binary min-heap on `due`; removed slots stay until popped. */
  private readonly heap: Slot[] = [];
  /** Due slots waiting for a free run, oldest first; `qHead` avoids shifting the array. */
  private queue: Slot[] = [];
  private qHead = 0;
  private timer?: NodeJS.Timeout;
  private timerAt = Infinity;
  private active = 0;
  private stopped = false;
  readonly lateness = new LatenessHistogram();

  constructor(concurrency: number) {
    this.concurrency = concurrency;
  }

  /** Schedules `job` to run first after `delayMs`. */
  add(job: Job, delayMs: number): void {
    if (this.stopped) throw new Error('scheduler stopped');
    this.remove(job);
    const slot: Slot = { job, due: performance.now() + delayMs, removed: false };
    this.slots.set(job, slot);
    this.push(slot);
    this.arm();
  }

  /** Unschedules `job`, aborting its run if one is in flight. */
  remove(job: Job): void {
    const slot = this.slots.get(job);
    if (!slot) return;
    this.slots.delete(job);
    slot.removed = true;
    slot.controller?.abort();
  }

  setConcurrency(n: number): void {
    this.concurrency = n;
    this.pump();
  }

  /** Aborts every run, clears the timer and forgets every job. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const slot of this.slots.values()) {
      slot.removed = true;
      slot.controller?.abort();
    }
    this.slots.clear();
    this.heap.length = 0;
    this.queue = [];
    this.qHead = 0;
  }

  get running(): number {
    return this.active;
  }

  get waiting(): number {
    return this.queue.length - this.qHead;
  }

  private start(slot: Slot): void {
    this.active++;
    this.lateness.record(performance.now() - slot.due);
    const controller = new AbortController();
    slot.controller = controller;
    const { job } = slot;
    let ended = false;
    // The abort waits for the poll phase of this loop turn: when the loop runs late, a reply
    // already waiting in the kernel is taken in first instead of being failed as a timeout.
    const expire = (): void => {
      if (!ended) controller.abort(new CheckTimeout(job.timeoutMs));
    };
    const timeout = setTimeout(() => setImmediate(expire), job.timeoutMs);
    const end = (): void => {
      ended = true;
      clearTimeout(timeout);
      slot.controller = undefined;
      this.active--;
      if (!slot.removed) {
        // Keep the phase (no drift from run time); a run that overran its interval goes again now.
        const now = performance.now();
        slot.due = slot.due + job.nextDelay();
        if (slot.due <= now) {
          slot.due = now;
          this.queue.push(slot);
        } else {
          this.push(slot);
          this.arm();
        }
      }
      this.pump();
    };
    job.run(controller.signal).then(end, end);
  }

  /** Starts queued slots while there is room. */
  private pump(): void {
    while (this.active < this.concurrency && this.qHead < this.queue.length) {
      const slot = this.queue[this.qHead++] as Slot;
      if (!slot.removed) this.start(slot);
    }
    if (this.qHead > 1024 && this.qHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.qHead);
      this.qHead = 0;
    }
  }

  private fire = (): void => {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = performance.now();
    let started = 0;
    // After a stall thousands may be due at once; starting them in bursts lets the event loop
    // take in connects and results between bursts instead of only timing them out later.
    for (let top = this.heap[0]; top && top.due <= now && started < BURST; top = this.heap[0]) {
      this.pop();
      if (top.removed) continue;
      if (this.active < this.concurrency) {
        this.start(top);
        started++;
      } else this.queue.push(top);
    }
    this.arm();
  };

  /** Keeps the one timer set for the earliest due slot. */
  private arm(): void {
    const top = this.heap[0];
    if (!top || this.stopped) return;
    if (top.due >= this.timerAt && this.timer) return;
    clearTimeout(this.timer);
    this.timerAt = top.due;
    this.timer = setTimeout(this.fire, Math.max(0, top.due - performance.now()));
  }

  private push(slot: Slot): void {
    const h = this.heap;
    let i = h.push(slot) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = h[parent] as Slot;
      if (p.due <= slot.due) break;
      h[i] = p;
      i = parent;
    }
    h[i] = slot;
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop() as Slot;
    if (!h.length) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= h.length) break;
      const r = l + 1;
      const c = r < h.length && (h[r] as Slot).due < (h[l] as Slot).due ? r : l;
      if ((h[c] as Slot).due >= last.due) break;
      h[i] = h[c] as Slot;
      i = c;
    }
    h[i] = last;
  }
}
