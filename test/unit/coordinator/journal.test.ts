import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Journal } from '../../../src/coordinator/journal.js';

const dir = mkdtempSync(join(tmpdir(), 'vipd-journal-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('event journal', () => {
  it('keeps a bounded ring and lists events after a sequence number', () => {
    const j = new Journal({ capacity: 5, maxFileBytes: 1e6 });
    for (let i = 0; i < 12; i++) j.append('health', `e${i}`);
    expect(j.list().map((e) => e.message)).toEqual(['e7', 'e8', 'e9', 'e10', 'e11']);
    expect(j.list(10).map((e) => e.message)).toEqual(['e10', 'e11']);
  });

  it('survives a restart through its file and stays within its cap', () => {
    const file = join(dir, 'state', 'journal.jsonl');
    const a = new Journal({ capacity: 100, file, maxFileBytes: 4000 });
    for (let i = 0; i < 300; i++) a.append('vip', `event ${i}`, { i });
    expect(statSync(file).size).toBeLessThanOrEqual(4000);
    const b = new Journal({ capacity: 100, file, maxFileBytes: 4000 });
    const events = b.list();
    expect(events.at(-1)?.message).toBe('event 299');
    expect(b.append('daemon', 'restarted').seq).toBe(301);
  });

  it('keeps going and reports it when the file cannot be written', () => {
    const ro = join(dir, 'ro');
    const j = new Journal({ capacity: 10, file: join(ro, 'journal.jsonl'), maxFileBytes: 1e6 });
    j.append('daemon', 'first');
    chmodSync(ro, 0o500);
    try {
      // root ignores directory modes; make the file itself unwritable instead
      chmodSync(join(ro, 'journal.jsonl'), 0o400);
      const canWrite = process.getuid?.() !== 0;
      j.append('daemon', 'second');
      expect(j.list().map((e) => e.message)).toEqual(['first', 'second']);
      if (canWrite) expect(j.writeError).toBeDefined();
    } finally {
      chmodSync(ro, 0o700);
    }
  });

  it('skips a torn last line', async () => {
    const { appendFileSync } = await import('node:fs');
    const file = join(dir, 'torn.jsonl');
    const a = new Journal({ capacity: 10, file, maxFileBytes: 1e6 });
    a.append('daemon', 'ok');
    appendFileSync(file, '{"seq":2,"at":"x","kin');
    expect(new Journal({ capacity: 10, file, maxFileBytes: 1e6 }).list().map((e) => e.message)).toEqual(['ok']);
  });
});
