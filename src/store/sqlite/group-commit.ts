// Group commit: the operations of one event-loop turn — holds, settlements, usage records —
// share one transaction instead of paying a commit each. Every operation still runs against the
// database itself (a hold is a conditional UPDATE the database decides), so several processes on
// one file stay exact. Callers wait for the commit, so nothing they are told has happened can be
// lost with the process.
//
// When the commit fails, the batch has rolled back, and what happens next depends on why:
// - another connection holds the write lock (`busy`): the batch waits and is tried again on a
//   timer, never by blocking the event loop, for up to `lockTimeoutMs`;
// - the database cannot be written (`storage`: disk full, I/O error, file gone) or one operation
//   threw: each operation is tried alone, so one failure does not take the others down.
// What still fails is refused (a hold: the caller answers 503) or, for a settlement or usage
// record (`keep`), kept in memory and retried with backoff until the database takes it: a request
// that was served is billed once the disk is back. Its caller is told at once (the promise
// rejects) so that nothing waits on the disk.

export type Fault = 'busy' | 'storage';

interface Op {
  run(): unknown;
  resolve(v: unknown): void;
  reject(e: unknown): void;
  /** A settlement or usage record: never refused for a fault, kept until written. */
  keep: boolean;
}

export interface GroupCommitOptions {
  /** Runs `body` in one transaction (BEGIN IMMEDIATE … COMMIT). */
  transaction(body: () => void): void;
  /** Why a transaction failed: the lock, the storage, or null when an operation itself threw. */
  classify(e: unknown): Fault | null;
  /** What callers of refused or deferred operations get. */
  unavailable(cause: unknown): Error;
  /** How long operations wait for a write lock held by another connection. */
  lockTimeoutMs: number;
  /** Called when operations are first kept for later, and when the last of them is written. */
  onDeferred(count: number, cause: unknown): void;
  onCaughtUp(written: number): void;
}

const LOCK_RETRY_MS = [2, 5, 10, 20, 50, 100];
const FAULT_RETRY_MS = [100, 200, 500, 1000, 2000];

export class GroupCommit {
  private queue: Op[] = [];
  private scheduled = false;
  /** Settlements and usage records that a fault kept from the database. */
  private deferred: Op[] = [];
  /** When the write lock was first found held by another connection; 0 when it was not. */
  private lockedSince = 0;
  private retries = 0;
  /** Whether onDeferred was called and onCaughtUp not yet. */
  private behind = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly o: GroupCommitOptions) {}

  run<T>(op: () => T, keep = false): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run: op, resolve: resolve as (v: unknown) => void, reject, keep });
      // While the lock is held elsewhere, the retry timer commits what is queued.
      if (!this.scheduled && this.lockedSince === 0) {
        this.scheduled = true;
        setImmediate(this.flush);
      }
    });
  }

  /** Commits what is queued now (also before reads that must see it). */
  readonly flush = (): void => {
    this.scheduled = false;
    if (this.queue.length === 0) return;
    const batch = this.queue;
    this.queue = [];
    this.commit(batch, false);
  };

  /** Tries what was kept for later at once (the database is back). */
  retryNow(): void {
    if (this.deferred.length === 0 && this.queue.length === 0) return;
    this.clearTimer();
    this.retry();
  }

  /**
   * On close: one last attempt at everything queued or kept, with no retry after it.
   * Returns how many settlements and usage records could still not be written.
   */
  finish(): number {
    this.clearTimer();
    const batch = this.deferred.concat(this.queue);
    this.deferred = [];
    this.queue = [];
    if (batch.length > 0) this.commit(batch, true);
    this.clearTimer();
    const left = this.deferred.length;
    this.deferred = [];
    return left;
  }

  private commit(batch: Op[], final: boolean): void {
    const results: unknown[] = new Array(batch.length);
    try {
      this.o.transaction(() => {
        for (let i = 0; i < batch.length; i++) results[i] = batch[i]!.run();
      });
    } catch (e) {
      this.failed(batch, e, final);
      return;
    }
    this.lockedSince = 0;
    for (let i = 0; i < batch.length; i++) batch[i]!.resolve(results[i]);
    if (this.timer === null) this.retries = 0;
  }

  private failed(batch: Op[], e: unknown, final: boolean): void {
    const fault = this.o.classify(e);
    if (fault === 'busy' && !final) {
      const now = Date.now();
      if (this.lockedSince === 0) this.lockedSince = now;
      if (now - this.lockedSince < this.o.lockTimeoutMs) {
        this.queue = batch.concat(this.queue);
        this.schedule(LOCK_RETRY_MS);
        return;
      }
    }
    // Whatever comes next is scheduled as usual, and waits anew if it finds the lock held.
    this.lockedSince = 0;
    if (fault === 'busy') {
      // The lock outlasted the bound: trying each alone would only wait again.
      for (const op of batch) this.refuse(op, e);
    } else {
      for (const op of batch) this.commitAlone(op);
    }
    if (this.deferred.length > 0 && !final) {
      if (!this.behind) this.o.onDeferred(this.deferred.length, e);
      this.behind = true;
      this.schedule(fault === 'busy' ? LOCK_RETRY_MS : FAULT_RETRY_MS);
    }
  }

  private commitAlone(op: Op): void {
    let result: unknown;
    try {
      this.o.transaction(() => {
        result = op.run();
      });
    } catch (e) {
      if (this.o.classify(e) === null) op.reject(e);
      else this.refuse(op, e);
      return;
    }
    op.resolve(result);
  }

  private refuse(op: Op, cause: unknown): void {
    op.reject(this.o.unavailable(cause));
    if (op.keep) this.deferred.push(op);
  }

  private schedule(delays: readonly number[]): void {
    if (this.timer !== null) return;
    const ms = delays[Math.min(this.retries, delays.length - 1)]!;
    this.retries++;
    this.timer = setTimeout(this.retry, ms);
    // Callers wait for a lock (a bounded wait); nobody waits for kept writes, which must not keep a process alive.
    if (delays === FAULT_RETRY_MS) this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private readonly retry = (): void => {
    this.timer = null;
    const kept = this.deferred;
    this.deferred = [];
    const batch = kept.concat(this.queue);
    this.queue = [];
    this.scheduled = false;
    if (batch.length > 0) this.commit(batch, false);
    if (this.behind && this.deferred.length === 0) {
      this.behind = false;
      this.o.onCaughtUp(kept.length);
    }
    if (this.deferred.length === 0 && this.queue.length === 0 && this.lockedSince === 0) this.retries = 0;
  };
}
