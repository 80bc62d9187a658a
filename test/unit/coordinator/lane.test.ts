import { describe, expect, it } from 'vitest';
import { Lane, type LaneResult } from '../../../src/coordinator/lane.js';

describe('lane', () => {
  it('applies the newest value and drops the ones superseded meanwhile', async () => {
    const applied: number[] = [];
    const results: LaneResult<number, number>[] = [];
    let release!: () => void;
    const lane = new Lane<number, number>(
      async (v) => {
        applied.push(v);
        if (v === 1) await new Promise<void>((r) => (release = r));
        return v * 10;
      },
      (r) => results.push(r),
    );
    lane.set(1, 1);
    lane.set(2, 2);
    lane.set(3, 3);
    release();
    await lane.idle();
    expect(applied).toEqual([1, 3]);
    expect(lane.applied).toBe(3);
    expect(results.map((r) => r.result)).toEqual([10, 30]);
  });

  it('keeps going after an error and does not count it as applied', async () => {
    const results: LaneResult<number, void>[] = [];
    const lane = new Lane<number, void>(async (v) => {
      if (v === 1) throw new Error('boom');
    }, (r) => results.push(r));
    lane.set(1, 1);
    await lane.idle();
    expect(lane.applied).toBe(0);
    lane.set(2, 2);
    await lane.idle();
    expect(lane.applied).toBe(2);
    expect(results[0]?.error?.message).toBe('boom');
  });

  it('one stuck lane does not hold another', async () => {
    const stuck = new Lane<number, void>(() => new Promise(() => undefined), () => undefined);
    const fast: number[] = [];
    const other = new Lane<number, void>(async (v) => void fast.push(v), () => undefined);
    stuck.set(1, 1);
    other.set(1, 1);
    other.set(2, 2);
    await other.idle();
    expect(fast).toEqual([1, 2]);
    expect(stuck.busy).toBe(true);
    stuck.close();
  });

  it('with an equality, skips a state equal to the last one applied and counts its generation', async () => {
    const applied: number[][] = [];
    const results: LaneResult<number[], void>[] = [];
    const lane = new Lane<number[], void>(async (v) => void applied.push(v), (r) => results.push(r), (a, b) => a.join() === b.join());
    lane.set([1], 1);
    await lane.idle();
    lane.set([1], 2);
    expect(lane.applied).toBe(2);
    expect(results.at(-1)).toMatchObject({ generation: 2, skipped: true });
    lane.set([2], 3);
    await lane.idle();
    expect(applied).toEqual([[1], [2]]);
  });

  it('applies again after a failure, even the same state', async () => {
    let fail = true;
    const applied: number[] = [];
    const lane = new Lane<number, void>(async (v) => {
      if (fail) throw new Error('boom');
      applied.push(v);
    }, () => undefined, (a, b) => a === b);
    lane.set(1, 1);
    await lane.idle();
    fail = false;
    lane.set(1, 2);
    await lane.idle();
    expect(applied).toEqual([1]);
    expect(lane.applied).toBe(2);
  });

  it('applies the same state again once told the last apply fell short', async () => {
    const applied: number[] = [];
    const lane = new Lane<number, void>(async (v) => void applied.push(v), () => undefined, (a, b) => a === b);
    lane.set(1, 1);
    await lane.idle();
    lane.forget();
    lane.set(1, 2);
    await lane.idle();
    expect(applied).toEqual([1, 1]);
  });
});
