import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LatenessHistogram, Scheduler, type Job } from '../../../src/health/scheduler.js';
import { CheckTimeout } from '../../../src/health/types.js';

/** A job whose runs take `takes` ms (or until aborted) and that records what happened. */
function job(interval: number, takes: number, timeoutMs = 10_000) {
  const starts: number[] = [];
  const aborts: unknown[] = [];
  let running = 0;
  let maxRunning = 0;
  const j: Job & { starts: number[]; aborts: unknown[]; maxRunning: () => number } = {
    timeoutMs,
    starts,
    aborts,
    maxRunning: () => maxRunning,
    nextDelay: () => interval,
    run: (signal) =>
      new Promise<void>((resolve) => {
        starts.push(Math.round(performance.now()));
        maxRunning = Math.max(maxRunning, ++running);
        const t = setTimeout(finish, takes);
        signal.addEventListener('abort', finish, { once: true });
        function finish(): void {
          clearTimeout(t);
          signal.removeEventListener('abort', finish);
          if (signal.aborted) aborts.push(signal.reason);
          running--;
          resolve();
        }
      }),
  };
  return j;
}

describe('scheduler', () => {
  let s: Scheduler;
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    s.stop();
    vi.useRealTimers();
  });

  it('runs a job after its first delay and then every interval, keeping the phase', async () => {
    s = new Scheduler(10);
    const t0 = Math.round(performance.now());
    const j = job(1000, 30);
    s.add(j, 250);
    await vi.advanceTimersByTimeAsync(3300);
    expect(j.starts.map((t) => t - t0)).toEqual([250, 1250, 2250, 3250]);
  });

  it('never overlaps a job with itself: a run longer than the interval delays the next', async () => {
    s = new Scheduler(10);
    const t0 = Math.round(performance.now());
    const j = job(100, 250);
    s.add(j, 0);
    await vi.advanceTimersByTimeAsync(1000);
    expect(j.maxRunning()).toBe(1);
    expect(j.starts.map((t) => t - t0)).toEqual([0, 250, 500, 750, 1000]);
  });

  it('aborts a run at its timeout with a CheckTimeout', async () => {
    s = new Scheduler(10);
    const j = job(1000, 5000, 300);
    s.add(j, 0);
    await vi.advanceTimersByTimeAsync(301);
    expect(j.aborts).toHaveLength(1);
    expect(j.aborts[0]).toBeInstanceOf(CheckTimeout);
    expect((j.aborts[0] as CheckTimeout).message).toBe('timeout after 300 ms');
  });

  it('holds to the concurrency limit, starting waiting jobs in order as runs end', async () => {
    s = new Scheduler(2);
    const t0 = Math.round(performance.now());
    const jobs = [0, 1, 2, 3, 4].map(() => job(10_000, 100));
    let peak = 0;
    jobs.forEach((j, i) => s.add(j, i));
    for (let t = 0; t < 400; t += 5) {
      await vi.advanceTimersByTimeAsync(5);
      peak = Math.max(peak, s.running);
    }
    expect(peak).toBe(2);
    expect(jobs.map((j) => (j.starts[0] ?? -1) - t0)).toEqual([0, 1, 100, 101, 200]);
    // Lateness counts the wait for a free slot: 0, 0, 98, 98, 196 ms.
    expect(s.lateness.count).toBe(5);
    expect(s.lateness.maxMs).toBe(196);
  });

  it('uses one timer for many jobs', async () => {
    s = new Scheduler(100);
    const jobs = Array.from({ length: 1000 }, (_, i) => job(1000, 1));
    jobs.forEach((j, i) => s.add(j, i));
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(4999);
    expect(jobs.map((j) => j.starts.length).filter((n) => n !== 5)).toEqual([]);
  });

  it('starts a crowd of due jobs in bursts, yielding to the event loop between them', async () => {
    s = new Scheduler(10_000);
    const jobs = Array.from({ length: 1000 }, () => job(10_000, 50));
    jobs.forEach((j) => s.add(j, 10));
    await vi.advanceTimersByTimeAsync(10);
    expect(s.running).toBe(256);
    await vi.advanceTimersByTimeAsync(5);
    expect(s.running).toBe(1000);
  });

  it('remove aborts the run in flight and runs the job no more', async () => {
    s = new Scheduler(10);
    const j = job(100, 1000);
    const other = job(100, 1);
    s.add(j, 0);
    s.add(other, 0);
    await vi.advanceTimersByTimeAsync(10);
    s.remove(j);
    await vi.advanceTimersByTimeAsync(1000);
    expect(j.starts).toHaveLength(1);
    expect(j.aborts).toHaveLength(1);
    expect(other.starts.length).toBeGreaterThan(5);
  });

  it('stop aborts everything and leaves no timer behind', async () => {
    s = new Scheduler(10);
    const jobs = [job(100, 1000), job(100, 10), job(5000, 10)];
    jobs.forEach((j, i) => s.add(j, i * 50));
    await vi.advanceTimersByTimeAsync(60);
    s.stop();
    await vi.advanceTimersByTimeAsync(0);
    expect(vi.getTimerCount()).toBe(0);
    expect(s.running).toBe(0);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(jobs.map((j) => j.starts.length)).toEqual([1, 1, 0]);
    expect(() => s.add(job(1, 1), 0)).toThrow(/stopped/);
  });

  it('takes a new concurrency limit at once', async () => {
    s = new Scheduler(1);
    const jobs = [0, 1, 2].map(() => job(10_000, 1000));
    jobs.forEach((j) => s.add(j, 0));
    await vi.advanceTimersByTimeAsync(10);
    expect([s.running, s.waiting]).toEqual([1, 2]);
    s.setConcurrency(3);
    expect([s.running, s.waiting]).toEqual([3, 0]);
  });
});

describe('lateness histogram', () => {
  it('gives percentiles as 1 ms bucket upper bounds and keeps the maximum exactly', () => {
    const h = new LatenessHistogram();
    expect(h.percentile(99)).toBe(0);
    for (let i = 0; i < 98; i++) h.record(0.3);
    h.record(42.5);
    h.record(20_000);
    expect(h.percentile(50)).toBe(1);
    expect(h.percentile(99)).toBe(43);
    expect(h.percentile(100)).toBe(10_001);
    expect(h.maxMs).toBe(20_000);
    h.reset();
    expect([h.count, h.maxMs, h.percentile(99)]).toEqual([0, 0, 0]);
  });
});

describe('scheduler timeouts on a late event loop (real timers)', () => {
  it('takes in a reply that is already waiting before timing the run out', async () => {
    const s = new Scheduler(10);
    const { port1, port2 } = new MessageChannel();
    let outcome = '';
    const finished = new Promise<void>((resolve) => {
      const j: Job = {
        timeoutMs: 50,
        nextDelay: () => 60_000,
        run: (signal) =>
          new Promise<void>((done) => {
            const finish = (how: string): void => {
              outcome ||= how;
              port1.close();
              done();
              resolve();
            };
            port1.once('message', () => finish('reply'));
            signal.addEventListener('abort', () => finish('timeout'), { once: true });
            // The reply arrives while something else blocks the loop past the timeout: when the
            // loop turns again, both the reply and the expired timer are waiting.
            setImmediate(() => {
              port2.postMessage('pong');
              const until = performance.now() + 120;
              while (performance.now() < until) {
                // blocked
              }
            });
          }),
      };
      s.add(j, 0);
    });
    await finished;
    s.stop();
    expect(outcome).toBe('reply');
  });
});
