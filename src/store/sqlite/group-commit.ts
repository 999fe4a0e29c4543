// Group commit: the operations of one event-loop turn — holds, settlements, usage records —
// share one transaction instead of paying a commit each. Every operation still runs against the
// database itself (a hold is a conditional UPDATE the database decides), so several processes on
// one file stay exact. Operations are written not to throw (refusals are results); if the
// transaction fails anyway (disk full), all of it rolls back and every caller gets the error.
// Callers wait for the commit, so nothing they are told has happened can be lost with the process.

interface Queued {
  run(): unknown;
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

export class GroupCommit {
  private queue: Queued[] = [];
  private scheduled = false;

  constructor(
    /** Runs `body` in one transaction (BEGIN IMMEDIATE … COMMIT). */
    private readonly transaction: (body: () => void) => void,
  ) {}

  run<T>(op: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run: op, resolve: resolve as (v: unknown) => void, reject });
      if (!this.scheduled) {
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
    const results: unknown[] = new Array(batch.length);
    try {
      this.transaction(() => {
        for (let i = 0; i < batch.length; i++) results[i] = batch[i]!.run();
      });
    } catch (e) {
      for (const q of batch) q.reject(e);
      return;
    }
    for (let i = 0; i < batch.length; i++) batch[i]!.resolve(results[i]);
  };
}
