import { describe, expect, it } from 'vitest';
import { TrackedMap, TrackedSet } from '../../../src/coordinator/tracked.js';
import { Verdicts } from '../../../src/coordinator/verdicts.js';

describe('tracked inputs', () => {
  it('hand out the keys set, added or deleted since the last look, once', () => {
    const m = new TrackedMap<string, number>();
    m.set('a', 1);
    m.set('b', 2);
    m.set('a', 3);
    expect([...m.take()]).toEqual(['a', 'b']);
    expect([...m.take()]).toEqual([]);
    m.delete('b');
    m.clear();
    expect([...m.take()].sort()).toEqual(['a', 'b']);
    const s = new TrackedSet<string>();
    s.add('x');
    s.delete('y');
    expect([...s.take()]).toEqual(['x', 'y']);
    expect(s.has('x')).toBe(true);
  });

  it('keep equal health verdicts as one object, and track them', () => {
    const v = new Verdicts();
    for (let i = 0; i < 1000; i++) v.set(`t${i}`, { up: true, known: true, reason: 'ok' });
    v.set('t0', { up: false, known: true, reason: 'timeout' });
    expect(v.get('t1')).toBe(v.get('t999'));
    expect(v.get('t0')).toEqual({ up: false, known: true, reason: 'timeout' });
    expect(v.get('t1')).toEqual({ up: true, known: true, reason: 'ok' });
    expect(v.take().size).toBe(1000);
  });
});
