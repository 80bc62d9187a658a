/**
 * One lane per subsystem: the newest desired state wins, one apply at a time, and a slow
 * subsystem (a stuck gobgpd call) delays only its own lane, never the others.
 */
export interface LaneResult<T, R> {
  generation: number;
  /** The desired state this result is for. */
  value: T;
  result?: R;
  error?: Error;
  /** The state equalled the last one applied, so apply was not called. */
  skipped?: boolean;
}

export class Lane<T, R> {
  private pending?: { value: T; generation: number };
  private running = false;
  private closed = false;
  private lastApplied = 0;
  private lastValue?: { value: T };
  private idleWaiters: (() => void)[] = [];

  /** With `equal`, a state equal to the last one applied successfully is not applied again. */
  constructor(
    private readonly apply: (value: T) => Promise<R>,
    private readonly done: (r: LaneResult<T, R>) => void,
    private readonly equal?: (a: T, b: T) => boolean,
  ) {}

  /** The next state is applied even when equal to the last one (that apply fell short). */
  forget(): void {
    this.lastValue = undefined;
  }

  /** Offers a new desired state; older ones not yet applied are dropped. */
  set(value: T, generation: number): void {
    if (this.closed) return;
    if (!this.running && this.lastValue && this.equal?.(this.lastValue.value, value)) {
      this.pending = undefined;
      this.lastApplied = Math.max(this.lastApplied, generation);
      this.done({ generation, value, skipped: true });
      return;
    }
    this.pending = { value, generation };
    if (!this.running) void this.drain();
  }

  /** Generation of the last desired state applied successfully. */
  get applied(): number {
    return this.lastApplied;
  }

  get busy(): boolean {
    return this.running;
  }

  private async drain(): Promise<void> {
    this.running = true;
    while (this.pending && !this.closed) {
      const { value, generation } = this.pending;
      this.pending = undefined;
      try {
        const result = await this.apply(value);
        this.lastApplied = Math.max(this.lastApplied, generation);
        this.lastValue = { value };
        this.done({ generation, value, result });
      } catch (e) {
        this.done({ generation, value, error: e instanceof Error ? e : new Error(String(e)) });
      }
    }
    this.running = false;
    for (const w of this.idleWaiters.splice(0)) w();
  }

  /** Resolves once nothing is running or pending. */
  idle(): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  close(): void {
    this.closed = true;
    this.pending = undefined;
  }
}
