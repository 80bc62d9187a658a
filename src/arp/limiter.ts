/**
 * At most `limit` tasks at once; urgent tasks (the announcement right after a takeover) start
 * before any queued round task, so a long round never delays a takeover.
 */
export class Limiter {
  private active = 0;
  private readonly urgent: (() => void)[] = [];
  private readonly normal: (() => void)[] = [];

  constructor(private readonly limit: number) {
    if (!(limit >= 1)) throw new Error(`limit must be at least 1, not ${limit}`);
  }

  run<T>(task: () => Promise<T>, urgent = false): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const start = (): void => {
        this.active++;
        task()
          .then(resolve, reject)
          .finally(() => {
            this.active--;
            this.next();
          });
      };
      (urgent ? this.urgent : this.normal).push(start);
      this.next();
    });
  }

  private next(): void {
    while (this.active < this.limit) {
      const start = this.urgent.shift() ?? this.normal.shift();
      if (!start) return;
      start();
    }
  }
}
