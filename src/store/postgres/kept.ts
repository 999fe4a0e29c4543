import type { StoreLog } from '../types.js';
import { isFault } from './faults.js';

const RETRY_MS = [100, 200, 500, 1000, 2000];

/**
 * Settlements and usage records the database could not take when they were made (it was down
 * or unreachable): their callers were told `store_unavailable` at once, and they are written
 * here, oldest first, with backoff, until the database takes them; close() tries once more.
 * Each write is idempotent when retried (see the `retry` flag of the statements), since a write
 * whose answer was lost may have committed.
 */
export class KeptWrites {
  private kept: (() => Promise<unknown>)[] = [];
  private timer: NodeJS.Timeout | null = null;
  private tries = 0;
  private running: Promise<void> | null = null;

  constructor(private readonly log: StoreLog) {}

  get size(): number {
    return this.kept.length;
  }

  keep(write: () => Promise<unknown>, cause: unknown): void {
    if (this.kept.length === 0) {
      this.log.error({ err: cause }, 'the database cannot be written: settlements and usage records are kept in memory and retried');
    }
    this.kept.push(write);
    this.schedule();
  }

  /** On close: one last attempt, no retry after it. Returns how many could still not be written. */
  async finish(): Promise<number> {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
    await this.flush();
    return this.kept.length;
  }

  private schedule(): void {
    if (this.timer !== null || this.running !== null) return;
    const ms = RETRY_MS[Math.min(this.tries, RETRY_MS.length - 1)]!;
    this.tries++;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.running = this.flush().then((again) => {
        this.running = null;
        if (again) this.schedule();
      });
    }, ms);
    // Nobody waits for kept writes: they must not keep a process alive.
    this.timer.unref();
  }

  /** Writes what is kept, oldest first; true when the database failed again (try later). */
  private async flush(): Promise<boolean> {
    let written = 0;
    while (this.kept.length > 0) {
      try {
        await this.kept[0]!();
        written++;
      } catch (e) {
        if (isFault(e)) return true;
        this.log.error({ err: e }, 'a kept settlement or usage record failed and is dropped');
      }
      this.kept.shift();
    }
    this.tries = 0;
    if (written > 0) this.log.warn({ count: written }, 'the database can be written again: kept settlements and usage records are written');
    return false;
  }
}
