import type pg from 'pg';
import type { NewHold, PlannedHoldResult, Settlement, UsageRecord } from '../types.js';
import { isConnectionLost, isFault } from './faults.js';
import { placeHoldSql, recordUsageSql, settleSql, type Statement } from './sql.js';

// Group commit for PostgreSQL: the holds, settlements and usage records of one event-loop turn
// (and of the turns while the previous batch was out) go to the database as ONE transaction,
// pipelined: BEGIN, every statement, COMMIT leave in one write and come back in one read, and
// cost one commit (one WAL flush) instead of one each. Every statement is still the same
// conditional statement as alone (sql.ts), so the database decides each hold.
//
// Statements are ordered by account id, so that any two batches, from any replicas, lock
// accounts in the same order and never deadlock. Within an account: planned holds, then fixed
// holds, then settlements. A planned hold is planned on the available balance read just before
// the batch, and placed only if the available balance is still what its plan saw (the first of
// an account's planned holds checks what was read; the ones after it what the ones before left);
// if another replica changed the account in between, those plans are read and made again in the
// next batch.
//
// When the batch fails because a statement failed (a hold's id is taken), nothing of it was
// committed, and each operation is done again alone: one failure does not take the others down.
// When it fails because the database cannot take writes now, or the connection is lost (then
// nobody knows whether the COMMIT arrived), its operations go to `refuse`: holds are refused
// (and released later if they might have been placed), settlements and usage records are kept
// to be written, idempotently, later.

export type BatchOp =
  | { kind: 'plan'; hold: NewHold; plan: (available: bigint) => bigint | null; tries: number; resolve(r: PlannedHoldResult): void; reject(e: unknown): void }
  | { kind: 'hold'; hold: NewHold; amount: bigint; resolve(ok: boolean): void; reject(e: unknown): void }
  | { kind: 'settle'; st: Settlement; resolve(charged: bigint): void; reject(e: unknown): void }
  | { kind: 'usage'; u: UsageRecord; resolve(): void; reject(e: unknown): void };

export interface BatchDeps {
  /** Connections in pipeline mode. */
  pool: pg.Pool;
  owner: string;
  /** Available balances (balance − held) of these accounts; absent: no such account. */
  available(accountIds: string[]): Promise<Map<string, bigint>>;
  /** The operation done on its own (its own statement, its own fault handling); resolves when it is done. */
  alone(op: BatchOp): Promise<void>;
  /**
   * The database could not take the operation now: refused (a hold) or kept for later (a
   * settlement, a usage record). `maybeCommitted` when the connection was lost in flight.
   */
  refuse(op: BatchOp, cause: unknown, maybeCommitted: boolean): void;
  /** How many times a planned hold is planned again before it is refused as unavailable. */
  planTries: number;
  unavailable(cause: unknown): Error;
}

/** At most this many operations share one transaction; the rest wait for the next. */
const MAX_BATCH = 500;

const ORDER: Record<BatchOp['kind'], number> = { plan: 0, hold: 1, settle: 2, usage: 3 };

function accountOf(op: BatchOp): string {
  return op.kind === 'settle' ? op.st.hold.accountId : op.kind === 'usage' ? op.u.accountId : op.hold.accountId;
}

export class Batcher {
  private queue: BatchOp[] = [];
  private scheduled = false;
  private inFlight: Promise<void> | null = null;

  constructor(private readonly d: BatchDeps) {}

  add(op: BatchOp): void {
    this.queue.push(op);
    if (!this.scheduled && this.inFlight === null) {
      this.scheduled = true;
      setImmediate(this.next);
    }
  }

  /** Resolves once everything queued so far has been tried. */
  async drain(): Promise<void> {
    while (this.inFlight !== null || this.queue.length > 0) {
      if (this.inFlight === null) this.next();
      await this.inFlight;
    }
  }

  private readonly next = (): void => {
    this.scheduled = false;
    if (this.inFlight !== null || this.queue.length === 0) return;
    const ops = this.queue.splice(0, MAX_BATCH);
    this.inFlight = this.run(ops).finally(() => {
      this.inFlight = null;
      if (this.queue.length > 0) this.next();
    });
  };

  private async run(ops: BatchOp[]): Promise<void> {
    const plans = ops.filter((op) => op.kind === 'plan');
    let seen = new Map<string, bigint>();
    if (plans.length > 0) {
      try {
        seen = await this.d.available([...new Set(plans.map(accountOf))]);
      } catch (e) {
        for (const op of plans) op.reject(this.d.unavailable(e));
        ops = ops.filter((op) => op.kind !== 'plan');
      }
    }
    const planned = new Map<BatchOp, bigint>();
    const left = new Map(seen);
    const batch: { op: BatchOp; q: Statement; i: number }[] = [];
    // Sorted by account, each account's planned holds first, in the order they came.
    const sorted = ops.map((op, i) => ({ op, i })).sort((x, y) => {
      const a = accountOf(x.op);
      const b = accountOf(y.op);
      return a < b ? -1 : a > b ? 1 : ORDER[x.op.kind] - ORDER[y.op.kind] || x.i - y.i;
    });
    const now = Date.now();
    for (const { op, i } of sorted) {
      if (op.kind === 'plan') {
        const available = left.get(op.hold.accountId);
        if (available === undefined) {
          op.resolve(null);
          continue;
        }
        const amount = op.plan(available);
        if (amount === null || amount < 0n || amount > available) {
          op.resolve({ available });
          continue;
        }
        planned.set(op, amount);
        left.set(op.hold.accountId, available - amount);
        batch.push({ op, i, q: placeHoldSql(op.hold, amount, this.d.owner, available) });
      } else if (op.kind === 'hold') {
        batch.push({ op, i, q: placeHoldSql(op.hold, op.amount, this.d.owner, null) });
      } else if (op.kind === 'settle') {
        batch.push({ op, i, q: settleSql(op.st, now, false) });
      } else {
        batch.push({ op, i, q: recordUsageSql(op.u, false) });
      }
    }
    if (batch.length === 0) return;

    let c: pg.PoolClient;
    try {
      c = await this.d.pool.connect();
    } catch {
      // Nothing was sent: each alone meets the same fault and handles it as it would anyway.
      await this.oneByOne(batch);
      return;
    }
    // A connection lost while checked out is also an 'error' event on the client: without a
    // listener it would end the process. The statements in flight reject with it anyway.
    c.on('error', ignore);
    const begin = c.query('BEGIN');
    const results = batch.map(({ q }) => c.query(q));
    const commit = c.query('COMMIT');
    const [b, r, end] = await Promise.all([
      begin.then(ok, fail),
      Promise.all(results.map((p) => p.then(ok, fail))),
      commit.then(ok, fail),
    ]);
    const failure = [b, ...r, end].find((x) => !x.ok)?.error;
    const lost = failure !== undefined && isConnectionLost(failure);
    c.off('error', ignore);
    c.release(lost ? (failure as Error) : undefined);

    // A COMMIT in a transaction that failed answers ROLLBACK.
    const committed = failure === undefined && end.ok && end.value.command === 'COMMIT';
    if (!committed) {
      // The database's state, not one statement (a lock held too long, a full disk): alone, each would meet it again.
      if (isFault(failure)) for (const { op } of batch) this.d.refuse(op, failure, lost);
      else await this.oneByOne(batch);
      return;
    }
    batch.forEach(({ op }, i) => {
      const res = (r[i] as { ok: true; value: pg.QueryResult }).value;
      if (op.kind === 'plan') {
        if (res.rowCount === 1) op.resolve({ amount: planned.get(op)! });
        else if (++op.tries >= this.d.planTries) op.reject(this.d.unavailable(new Error(`the balance of ${op.hold.accountId} kept changing under the plan`)));
        // Another replica changed the account after it was read: read and plan again.
        else this.add(op);
      } else if (op.kind === 'hold') {
        op.resolve(res.rowCount === 1);
      } else if (op.kind === 'settle') {
        op.resolve(res.rows[0]!['charged'] as bigint);
      } else {
        op.resolve();
      }
    });
  }

  /** Each operation alone, one after the other in the order they came (as if there had been no batch). */
  private async oneByOne(batch: { op: BatchOp; i: number }[]): Promise<void> {
    for (const { op } of [...batch].sort((x, y) => x.i - y.i)) await this.d.alone(op);
  }
}

type Outcome = { ok: true; value: pg.QueryResult } | { ok: false; error: unknown };
const ok = (value: pg.QueryResult): Outcome => ({ ok: true, value });
const ignore = (): void => undefined;
const fail = (error: unknown): Outcome => ({ ok: false, error });
