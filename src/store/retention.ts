import type { Store, StoreLog } from './types.js';

const DAY_MS = 86_400_000;
const EVERY_MS = 10 * 60_000;
/** Small batches, each its own short write, with a turn of the event loop between: requests never wait behind the sweep. */
const BATCH = 1000;

/**
 * `retention.usage_days`: deletes usage records older than that, at start and then about every
 * 10 minutes, in batches. Returns a function that stops it (and waits for a batch under way).
 */
export function startRetention(store: Store, days: number, log: StoreLog, now: () => number = Date.now): () => Promise<void> {
  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  const sweep = async (): Promise<void> => {
    const before = now() - days * DAY_MS;
    let total = 0;
    try {
      for (let n = BATCH; n === BATCH && !stopped; total += n) {
        n = await store.pruneUsage(before, BATCH);
        await new Promise((r) => setImmediate(r));
      }
    } catch (err) {
      // The database is busy or unwritable now: the next sweep tries again.
      log.warn({ err, deleted: total }, 'usage retention: could not delete old records now');
      return;
    }
    if (total > 0) log.info({ deleted: total, before: new Date(before).toISOString() }, 'usage retention: deleted old usage records');
  };
  const tick = (): void => {
    running = sweep();
  };
  // The first sweep is not unref'd: a process with nothing else to do (a test, a CLI) would exit before it ran.
  const first = setTimeout(tick, 0);
  // The next sweeps never keep a process alive; the first runs at once.
  const timer = setInterval(tick, EVERY_MS);
  timer.unref();
  return async () => {
    stopped = true;
    clearTimeout(first);
    clearInterval(timer);
    await running;
  };
}
