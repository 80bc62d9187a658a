/**
 * Event journal: a bounded in-memory ring, appended to a size-capped JSON-lines file in the
 * state directory so that it survives a restart. A full or read-only disk never stops vipd:
 * the failure is kept for status and the ring goes on.
 */
import { EventEmitter } from 'node:events';
import { appendFileSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export type EventKind = 'health' | 'vip' | 'route' | 'ipvs' | 'peer' | 'reload' | 'override' | 'arp' | 'daemon';

export interface JournalEvent {
  seq: number;
  at: string;
  kind: EventKind;
  message: string;
  fields?: Record<string, unknown>;
}

export interface JournalOptions {
  /** Events kept in memory. */
  capacity: number;
  /** File to append to; undefined keeps the journal in memory only. */
  file?: string;
  /** Once the file would grow past this, it is rewritten with the newest events filling half of it. */
  maxFileBytes: number;
}

export class Journal extends EventEmitter<{ event: [JournalEvent] }> {
  private readonly ring: JournalEvent[] = [];
  /** Where the oldest event is once the ring is full (each new one takes its place). */
  private head = 0;
  private stamp = { ms: -1, at: '' };
  private seq = 0;
  private fileBytes = 0;
  /** Last write error, for status; undefined while writes succeed. */
  writeError?: string;

  constructor(private readonly opts: JournalOptions) {
    super();
    this.load();
  }

  private load(): void {
    if (!this.opts.file) return;
    try {
      const text = readFileSync(this.opts.file, 'utf8');
      this.fileBytes = Buffer.byteLength(text);
      for (const line of text.split('\n')) {
        if (!line) continue;
        try {
          const e = JSON.parse(line) as JournalEvent;
          if (typeof e.seq === 'number' && typeof e.message === 'string') this.push(e);
        } catch {
          // A torn last line after a crash is expected; skip it.
        }
      }
      this.seq = this.events().at(-1)?.seq ?? 0;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.writeError = `read ${this.opts.file}: ${(e as Error).message}`;
    }
  }

  private push(e: JournalEvent): void {
    // Overwrites the oldest in place: dropping it from the front would move the whole ring on
    // every event (200,000 first health results at start would take seconds).
    if (this.ring.length < this.opts.capacity) {
      this.ring.push(e);
      return;
    }
    this.ring[this.head] = e;
    this.head = (this.head + 1) % this.ring.length;
  }

  /** Oldest first. */
  private events(): JournalEvent[] {
    return this.head === 0 ? this.ring : [...this.ring.slice(this.head), ...this.ring.slice(0, this.head)];
  }

  /** `at`: when it happened (ms since the epoch), if not now. */
  append(kind: EventKind, message: string, fields?: Record<string, unknown>, at?: number): JournalEvent {
    // One time text per millisecond: a start-up journals 200,000 first health results at once.
    const now = at ?? Date.now();
    if (now !== this.stamp.ms) this.stamp = { ms: now, at: new Date(now).toISOString() };
    const e: JournalEvent = { seq: ++this.seq, at: this.stamp.at, kind, message, ...(fields ? { fields } : {}) };
    this.push(e);
    this.persist(e);
    this.emit('event', e);
    return e;
  }

  private persist(e: JournalEvent): void {
    const file = this.opts.file;
    if (!file) return;
    const line = `${JSON.stringify(e)}\n`;
    try {
      if (this.fileBytes + line.length > this.opts.maxFileBytes) {
        // Keep the newest events that fit in half the cap, so appends do not compact every time.
        const lines: string[] = [];
        let size = 0;
        const events = this.events();
        for (let i = events.length - 1; i >= 0; i--) {
          const l = `${JSON.stringify(events[i])}\n`;
          if (size + l.length > this.opts.maxFileBytes / 2) break;
          lines.unshift(l);
          size += l.length;
        }
        const text = lines.join('');
        mkdirSync(dirname(file), { recursive: true });
        writeFileSync(`${file}.tmp`, text);
        renameSync(`${file}.tmp`, file);
        this.fileBytes = Buffer.byteLength(text);
      } else {
        if (this.fileBytes === 0) mkdirSync(dirname(file), { recursive: true });
        appendFileSync(file, line);
        this.fileBytes += Buffer.byteLength(line);
      }
      this.writeError = undefined;
    } catch (err) {
      this.writeError = `${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
    }
  }

  /** Events after `since` (a seq), newest last, at most `limit`. */
  list(since = 0, limit = 1000): JournalEvent[] {
    const out = this.events().filter((e) => e.seq > since);
    return out.slice(-limit);
  }

  fileSize(): number {
    if (!this.opts.file) return 0;
    try {
      return statSync(this.opts.file).size;
    } catch {
      return 0;
    }
  }
}
