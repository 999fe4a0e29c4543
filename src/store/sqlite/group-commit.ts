// Group commit: the operations of one event-loop turn — holds, settlements, usage records —
// share one transaction instead of paying a commit each. Every operation still runs against the
// database itself (a hold is a conditional UPDATE the database decides), so several processes on
// one file stay exact; each runs in its own savepoint, so one failing operation rejects alone.
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
    /** Wraps one operation in a savepoint inside that transaction. */
    private readonly savepoint: <T>(op: () => T) => T,
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
    const results: { ok: boolean; value: unknown }[] = [];
    try {
      this.transaction(() => {
        for (const q of batch) {
          try {
            results.push({ ok: true, value: this.savepoint(() => q.run()) });
          } catch (e) {
            results.push({ ok: false, value: e });
          }
        }
      });
    } catch (e) {
      for (const q of batch) q.reject(e);
      return;
    }
    batch.forEach((q, i) => (results[i]!.ok ? q.resolve(results[i]!.value) : q.reject(results[i]!.value)));
  };
}
