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
      this.seq = this.ring.at(-1)?.seq ?? 0;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.writeError = `read ${this.opts.file}: ${(e as Error).message}`;
    }
  }

  private push(e: JournalEvent): void {
    this.ring.push(e);
    if (this.ring.length > this.opts.capacity) this.ring.splice(0, this.ring.length - this.opts.capacity);
  }

  append(kind: EventKind, message: string, fields?: Record<string, unknown>): JournalEvent {
    const e: JournalEvent = { seq: ++this.seq, at: new Date().toISOString(), kind, message, ...(fields ? { fields } : {}) };
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
        for (let i = this.ring.length - 1; i >= 0; i--) {
          const l = `${JSON.stringify(this.ring[i])}\n`;
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
    const out = this.ring.filter((e) => e.seq > since);
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
