import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

// A WAL checkpoint copies the log back into the database and fsyncs: milliseconds of blocking
// I/O. SQLite's automatic checkpoint runs it inside whichever commit crosses the threshold, on
// the event loop, where it shows as a latency spike. Here a worker thread with its own connection
// checkpoints on a timer instead; PASSIVE never blocks the writer. One statement, prepared once:
// a statement left to the garbage collector can abort the process on Node 24 (see index.ts).
const WORKER = `
const { workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.path, { fileMustExist: true });
db.exec('PRAGMA busy_timeout = 1000');
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
setInterval(() => { try { checkpoint.get(); } catch {} }, workerData.intervalMs);
`;

export function startCheckpointer(path: string, intervalMs = 1000): Worker {
  const module = createRequire(import.meta.url).resolve('better-sqlite3');
  const worker = new Worker(WORKER, { eval: true, workerData: { path, module, intervalMs } });
  worker.unref();
  // A failed checkpointer only means the WAL is checkpointed at close instead.
  worker.on('error', () => undefined);
  return worker;
}
