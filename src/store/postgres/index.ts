import pg from 'pg';
import { MAX_BALANCE } from '../../billing/money.js';
import { isGatewayError } from '../../errors.js';
import { decodeCursor, encodeCursor, encodeLimits, encodeModels } from '../codec.js';
import { newId } from '../ids.js';
import { toAccount, toKey, toUsage, type Row } from '../rows.js';
import { HOST } from '../sqlite/owner.js';
import { addTotals, emptyGroup, isoDay, summaryOrder } from '../summary.js';
import type {
  Account,
  ApiKey,
  CreditInput,
  CreditResult,
  FirstStart,
  Hold,
  KeyPatch,
  LedgerTotals,
  Limits,
  Migration,
  NewHold,
  NewKey,
  PlannedHoldResult,
  ResponseOrigin,
  Settlement,
  Store,
  StoreLog,
  StoreOptions,
  UsagePage,
  UsageQuery,
  UsageRecord,
  UsageSummaryQuery,
  UsageSummaryRow,
} from '../types.js';
import { storeUnavailable } from '../unavailable.js';
import { Batcher, type BatchOp } from './batch.js';
import { ChangeFeed, CHANGES_CHANNEL } from './changes.js';
import { isFault } from './faults.js';
import { KeptWrites } from './kept.js';
import { PG_MIGRATIONS } from './migrations.js';
import { placeHoldSql, putLeaseSql, recordUsageSql, recoverSql, releaseHoldSql, settleSql, withoutAmount, type Statement } from './sql.js';

const SILENT: StoreLog = { error: () => undefined, warn: () => undefined, info: () => undefined };

/** Advisory lock keys (per database): migrations, and a first start's writes. */
const MIGRATE_LOCK = 7_310_360_001;
const FIRST_START_LOCK = 7_310_360_002;

/** How often a planned hold reads and plans again when holds of other replicas keep slipping in. */
const PLAN_TRIES = 50;

/** What went wrong, in the driver's words (which never include the password). */
function reason(e: unknown): string {
  const first = e instanceof AggregateError ? e.errors[0] : e;
  return first instanceof Error ? first.message : String(first);
}

/** BIGINT columns arrive as bigint, exactly (node-postgres would give strings); everything else as the driver parses it. */
const TYPES: pg.CustomTypesConfig = {
  getTypeParser: (id: number, format?: 'text' | 'binary') =>
    id === pg.types.builtins.INT8 ? (v: string): bigint => BigInt(v) : pg.types.getTypeParser(id, format),
};

export interface PostgresOptions extends StoreOptions {
  /** Connections in the pool (default 10); the connections that listen and that carry batches come on top. */
  poolSize?: number;
  /** How long opening a connection, or waiting for a free one, may take before `store_unavailable` (default 5000). */
  connectTimeoutMs?: number;
}

/**
 * PostgreSQL through node-postgres and a bounded pool. Every write that moves money is one
 * conditional statement (sql.ts), and the holds, settlements and usage records of concurrent
 * requests share one pipelined transaction on a connection of their own (batch.ts): one round
 * trip and one commit for all, no transaction waiting on the gateway. Admin writes (accounts,
 * keys, credits) are short transactions that also NOTIFY the other replicas (changes.ts). Holds carry their owner, this instance, which keeps a lease row renewed
 * every third of `leaseMs` on the database's clock; every third of a lease it also releases the
 * holds of owners that are gone. Unlike SQLite, an owner whose process has exited is only known
 * gone once its lease runs out (a replica cannot see another machine's processes).
 *
 * Errors that mean the database cannot be reached or written (faults.ts) become
 * `store_unavailable`; a settlement or usage record refused that way is kept and retried (kept.ts).
 */
export class PostgresStore implements Store {
  readonly kind = 'postgres' as const;
  /** How every connection is made. */
  private readonly config: pg.ClientConfig;
  private readonly pool: pg.Pool;
  /** The connection that carries the batches (pipeline mode). */
  private readonly batchPool: pg.Pool;
  private readonly batcher: Batcher;
  private readonly feed: ChangeFeed;
  private readonly kept: KeptWrites;
  private readonly log: StoreLog;
  private readonly leaseMs: number;
  /** This instance: the owner of its holds, and the payload of its change notifications. */
  private readonly owner = newId('owner');
  private ownChanges = 0;
  private applied: Migration[] = [];
  private ticker: NodeJS.Timeout | null = null;
  private closed = false;

  private constructor(url: string, opts: PostgresOptions) {
    this.log = opts.log ?? SILENT;
    this.leaseMs = opts.leaseMs ?? 30_000;
    const connectTimeoutMs = opts.connectTimeoutMs ?? 5_000;
    const lockTimeoutMs = opts.lockTimeoutMs ?? 3_000;
    this.config = {
      connectionString: url,
      connectionTimeoutMillis: connectTimeoutMs,
      // A write that waits for another transaction's row lock longer than this fails (55P03: 503).
      lock_timeout: lockTimeoutMs,
      // A statement with no answer by then is given up, and its connection with it: a server that
      // stops answering (a network partition) costs requests a 503, not a hang.
      query_timeout: lockTimeoutMs + connectTimeoutMs,
      keepAlive: true,
      types: TYPES,
      application_name: 'token360',
    };
    this.pool = new pg.Pool({ ...this.config, max: opts.poolSize ?? 10, idleTimeoutMillis: 30_000 });
    // An idle connection that the server drops is removed by the pool; without a listener it would crash the process.
    this.pool.on('error', (err) => this.log.warn({ err }, 'a PostgreSQL connection failed; the pool replaces it'));
    this.feed = new ChangeFeed({ ...this.config, lock_timeout: undefined, query_timeout: connectTimeoutMs }, this.owner, this.log);
    this.kept = new KeptWrites(this.log);
    // One batch at a time: what arrives while it is out forms the next one.
    this.batchPool = new pg.Pool({ ...this.config, pipeline: true, max: 1, idleTimeoutMillis: 30_000 });
    this.batchPool.on('error', (err) => this.log.warn({ err }, 'the PostgreSQL connection for batches failed; it is replaced'));
    this.batcher = new Batcher({
      pool: this.batchPool,
      owner: this.owner,
      planTries: PLAN_TRIES,
      unavailable: (cause) => storeUnavailable(cause),
      available: async (ids) => {
        const r = await this.run('SELECT id, balance - held AS available FROM accounts WHERE id = ANY($1::text[])', [ids]);
        return new Map(r.rows.map((row) => [row['id'] as string, row['available'] as bigint]));
      },
      alone: (op) => this.alone(op),
      refuse: (op, cause, maybeCommitted) => this.refuse(op, cause, maybeCommitted),
    });
  }

  /** Connects, applies pending migrations, listens for changes and takes its lease. */
  static async open(url: string, opts: PostgresOptions = {}): Promise<PostgresStore> {
    const store = new PostgresStore(url, opts);
    try {
      await store.migrate();
      await store.feed.start();
      await store.run(putLeaseSql(store.owner, HOST, process.pid, store.leaseMs));
    } catch (e) {
      await store.feed.close();
      await store.pool.end().catch(() => undefined);
      await store.batchPool.end().catch(() => undefined);
      // Said to an operator: what the driver found, not the 503 a client would get.
      const cause = e instanceof Error && e.cause !== undefined && isFault(e.cause) ? e.cause : e;
      throw isFault(cause) ? storeUnavailable(cause, `PostgreSQL cannot be reached: ${reason(cause)}`) : e;
    }
    store.ticker = setInterval(store.tick, Math.max(100, Math.floor(store.leaseMs / 3)));
    store.ticker.unref();
    return store;
  }

  /** One statement; a fault becomes `store_unavailable`. */
  private async run(q: Statement | string, values?: unknown[]): Promise<pg.QueryResult<Row>> {
    try {
      return typeof q === 'string' ? await this.pool.query<Row>(q, values) : await this.pool.query<Row>(q);
    } catch (e) {
      throw isFault(e) ? storeUnavailable(e) : e;
    }
  }

  private async one(q: string, values: unknown[]): Promise<Row | null> {
    return (await this.run(q, values)).rows[0] ?? null;
  }

  /** A short transaction on one connection; a fault becomes `store_unavailable`. */
  private async tx<T>(body: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    let c: pg.PoolClient;
    try {
      c = await this.pool.connect();
    } catch (e) {
      throw isFault(e) ? storeUnavailable(e) : e;
    }
    let broken: Error | undefined;
    // A connection lost while checked out is also an 'error' event on the client: without a
    // listener it would end the process. The query in flight rejects with it anyway.
    const ignore = (): void => undefined;
    c.on('error', ignore);
    try {
      await c.query('BEGIN');
      const r = await body(c);
      await c.query('COMMIT');
      return r;
    } catch (e) {
      await c.query('ROLLBACK').catch((err: Error) => (broken = err));
      throw isFault(e) ? storeUnavailable(e) : e;
    } finally {
      // A connection that could not even roll back is not handed out again.
      c.off('error', ignore);
      c.release(broken);
    }
  }

  /** A transaction that changes keys or accounts: it notifies the other replicas when it commits. */
  private async change<T>(body: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const r = await this.tx(async (c) => {
      const out = await body(c);
      await c.query('SELECT pg_notify($1, $2)', [CHANGES_CHANNEL, this.owner]);
      return out;
    });
    this.ownChanges++;
    return r;
  }

  async migrate(): Promise<readonly Migration[]> {
    // A connection of its own, without the pool's time limits: replicas starting together wait
    // here for the one applying migrations, and a migration may rewrite a large table.
    const c = new pg.Client({ ...this.config, lock_timeout: undefined, query_timeout: undefined });
    c.on('error', () => undefined); // the query in flight rejects with it
    let done: Migration[];
    try {
      await c.connect();
      await c.query('BEGIN');
      // Each replica, once it has the lock, sees what the one before it applied.
      await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATE_LOCK]);
      await c.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)');
      const have = new Set((await c.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version));
      done = [];
      for (const m of PG_MIGRATIONS) {
        if (have.has(m.version)) continue;
        await c.query(m.sql);
        await c.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [m.version, m.name, Date.now()]);
        done.push({ version: m.version, name: m.name });
      }
      await c.query('COMMIT');
    } catch (e) {
      throw isFault(e) ? storeUnavailable(e) : e;
    } finally {
      // Ending the connection rolls back whatever did not commit.
      await c.end().catch(() => undefined);
    }
    this.applied = [...this.applied, ...done];
    return this.applied;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ticker !== null) clearInterval(this.ticker);
    await this.batcher.drain();
    const left = await this.kept.finish();
    if (left > 0) {
      this.log.error(
        { count: left },
        'settlements and usage records could not be written before exit; their holds stay in the database and are released as interrupted by the next start or another replica',
      );
    }
    // Without its lease, what this instance still holds is released by the next recovery anywhere.
    await this.pool.query('DELETE FROM leases WHERE owner = $1', [this.owner]).catch(() => undefined);
    await this.feed.close();
    await this.batchPool.end();
    await this.pool.end();
  }

  revision(): number {
    return this.feed.revision() + this.ownChanges;
  }

  localRevision(): number {
    return this.ownChanges;
  }

  async createAccount(input: { name: string; credit: bigint; limits?: Limits | null }): Promise<Account> {
    if (input.credit > MAX_BALANCE) throw new RangeError('credit: more than an account may hold');
    return this.change((c) => this.insertAccount(c, input, Date.now()));
  }

  /** Inside a transaction: the account, with its initial credit in the ledger. */
  private async insertAccount(c: pg.PoolClient, input: { name: string; credit: bigint; limits?: Limits | null }, now: number): Promise<Account> {
    const r = await c.query<Row>('INSERT INTO accounts (id, name, balance, held, limits, created_at) VALUES ($1, $2, $3, 0, $4, $5) RETURNING *', [
      newId('acct'), input.name, input.credit.toString(), encodeLimits(input.limits), now,
    ]);
    const account = toAccount(r.rows[0]!);
    if (input.credit > 0n) await this.ledger(c, account.id, 'credit', input.credit, 'initial credit', null, now);
    return account;
  }

  private async ledger(c: pg.PoolClient, accountId: string, kind: 'credit', amount: bigint, note: string | null, idempotencyKey: string | null, now: number): Promise<void> {
    await c.query('INSERT INTO ledger (account_id, kind, amount, note, idempotency_key, created_at) VALUES ($1, $2, $3, $4, $5, $6)', [
      accountId, kind, amount.toString(), note, idempotencyKey, now,
    ]);
  }

  async getAccount(id: string): Promise<Account | null> {
    const r = await this.one('SELECT * FROM accounts WHERE id = $1', [id]);
    return r === null ? null : toAccount(r);
  }

  async updateAccount(id: string, patch: { name?: string; limits?: Limits | null }): Promise<Account | null> {
    const r = await this.change(async (c) => {
      const res = await c.query<Row>(
        'UPDATE accounts SET name = CASE WHEN $2 THEN $3 ELSE name END, limits = CASE WHEN $4 THEN $5 ELSE limits END WHERE id = $1 RETURNING *',
        [id, patch.name !== undefined, patch.name ?? null, patch.limits !== undefined, encodeLimits(patch.limits)],
      );
      return res.rows[0] ?? null;
    });
    return r === null ? null : toAccount(r);
  }

  async countAccounts(): Promise<number> {
    return Number((await this.one('SELECT COUNT(*) AS n FROM accounts', []))!['n'] as bigint);
  }

  async credit(input: CreditInput): Promise<CreditResult> {
    // Balances are never cached, so a credit notifies no one.
    return this.tx(async (c): Promise<CreditResult> => {
      const locked = await c.query<Row>('SELECT * FROM accounts WHERE id = $1 FOR UPDATE', [input.accountId]);
      const row = locked.rows[0];
      if (row === undefined) return { kind: 'no_account' };
      const account = toAccount(row);
      if (input.idempotencyKey !== null) {
        const prior = await c.query<Row>('SELECT amount FROM ledger WHERE account_id = $1 AND idempotency_key = $2', [input.accountId, input.idempotencyKey]);
        if (prior.rows.length > 0) return prior.rows[0]!['amount'] === input.amount ? { kind: 'replayed', account } : { kind: 'conflict' };
      }
      if (account.balance + input.amount > MAX_BALANCE) return { kind: 'over_max', balance: account.balance };
      const updated = await c.query<Row>('UPDATE accounts SET balance = balance + $2 WHERE id = $1 RETURNING *', [input.accountId, input.amount.toString()]);
      await this.ledger(c, input.accountId, 'credit', input.amount, input.note, input.idempotencyKey, Date.now());
      return { kind: 'credited', account: toAccount(updated.rows[0]!) };
    });
  }

  async ledgerTotals(accountId: string): Promise<LedgerTotals> {
    // Sums of BIGINT are NUMERIC: read as text, so that nothing passes through a float.
    const r = await this.one(
      "SELECT COALESCE(SUM(amount) FILTER (WHERE kind = 'credit'), 0)::text AS credits, COALESCE(SUM(amount) FILTER (WHERE kind = 'debit'), 0)::text AS debits FROM ledger WHERE account_id = $1",
      [accountId],
    );
    return { credits: BigInt(r!['credits'] as string), debits: BigInt(r!['debits'] as string) };
  }

  async createKey(input: NewKey): Promise<ApiKey> {
    const r = await this.change((c) => this.insertKey(c, input, Date.now()));
    return toKey(r);
  }

  private async insertKey(c: pg.PoolClient, k: NewKey, now: number): Promise<Row> {
    const r = await c.query<Row>(
      'INSERT INTO api_keys (id, account_id, name, prefix, key_hash, models, limits, frozen, expires_at, revoked_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, FALSE, $8, NULL, $9) RETURNING *',
      [newId('key'), k.accountId, k.name, k.prefix, k.hash, encodeModels(k.models), encodeLimits(k.limits), k.expiresAt, now],
    );
    return r.rows[0]!;
  }

  async getKey(id: string): Promise<ApiKey | null> {
    const r = await this.one('SELECT * FROM api_keys WHERE id = $1', [id]);
    return r === null ? null : toKey(r);
  }

  async getKeyByHash(hash: string): Promise<ApiKey | null> {
    const r = await this.one('SELECT * FROM api_keys WHERE key_hash = $1', [hash]);
    return r === null ? null : toKey(r);
  }

  async listKeys(accountId?: string): Promise<ApiKey[]> {
    const r =
      accountId === undefined
        ? await this.run('SELECT * FROM api_keys WHERE revoked_at IS NULL ORDER BY created_at, id')
        : await this.run('SELECT * FROM api_keys WHERE account_id = $1 AND revoked_at IS NULL ORDER BY created_at, id', [accountId]);
    return r.rows.map(toKey);
  }

  async updateKey(id: string, patch: KeyPatch): Promise<ApiKey | null> {
    const sets: string[] = [];
    const values: unknown[] = [id];
    const set = (column: string, v: unknown): void => {
      values.push(v);
      sets.push(`${column} = $${values.length}`);
    };
    if (patch.name !== undefined) set('name', patch.name);
    if (patch.models !== undefined) set('models', encodeModels(patch.models));
    if (patch.limits !== undefined) set('limits', encodeLimits(patch.limits));
    if (patch.frozen !== undefined) set('frozen', patch.frozen);
    if (patch.expiresAt !== undefined) set('expires_at', patch.expiresAt);
    if (sets.length === 0) {
      const k = await this.getKey(id);
      return k === null || k.revokedAt !== null ? null : k;
    }
    const r = await this.change(async (c) => (await c.query<Row>(`UPDATE api_keys SET ${sets.join(', ')} WHERE id = $1 AND revoked_at IS NULL RETURNING *`, values)).rows[0]);
    return r === undefined ? null : toKey(r);
  }

  async revokeKey(id: string): Promise<boolean> {
    const n = await this.change(async (c) => (await c.query('UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL', [id, Date.now()])).rowCount);
    return (n ?? 0) > 0;
  }

  placeHold(h: Hold): Promise<boolean> {
    if (h.amount < 0n) return Promise.resolve(false);
    return new Promise((resolve, reject) => this.batcher.add({ kind: 'hold', hold: withoutAmount(h), amount: h.amount, resolve, reject }));
  }

  placePlannedHold(h: NewHold, plan: (available: bigint) => bigint | null): Promise<PlannedHoldResult> {
    return new Promise((resolve, reject) => this.batcher.add({ kind: 'plan', hold: h, plan, tries: 0, resolve, reject }));
  }

  async settle(st: Settlement): Promise<bigint> {
    const charged = await new Promise<bigint>((resolve, reject) => this.batcher.add({ kind: 'settle', st, resolve, reject }));
    st.onDurable?.();
    return charged;
  }

  recordUsage(u: UsageRecord): Promise<void> {
    return new Promise((resolve, reject) => this.batcher.add({ kind: 'usage', u, resolve, reject }));
  }

  /** An operation of a batch that failed, done again on its own statement. */
  private alone(op: BatchOp): Promise<void> {
    if (op.kind === 'hold') return this.holdAlone(op.hold, op.amount, null).then(op.resolve, op.reject);
    if (op.kind === 'plan') return this.planAlone(op.hold, op.plan).then(op.resolve, op.reject);
    if (op.kind === 'settle') {
      return this.keepOnFault((retry) => this.pool.query<Row>(settleSql(op.st, Date.now(), retry))).then((r) => op.resolve(r.rows[0]!['charged'] as bigint), op.reject);
    }
    return this.keepOnFault((retry) => this.pool.query(recordUsageSql(op.u, retry))).then(() => op.resolve(), op.reject);
  }

  /**
   * An operation of a batch the database could not take: a hold is refused (503), and released
   * later if it might have been placed (the connection was lost after it was sent); a
   * settlement or usage record is kept and written later, unless it was.
   */
  private refuse(op: BatchOp, cause: unknown, maybeCommitted: boolean): void {
    if (op.kind === 'hold' || op.kind === 'plan') {
      if (maybeCommitted) this.releaseLater(op.hold.id, cause);
    } else if (op.kind === 'settle') this.kept.keep(() => this.pool.query(settleSql(op.st, Date.now(), true)), cause);
    else this.kept.keep(() => this.pool.query(recordUsageSql(op.u, true)), cause);
    op.reject(storeUnavailable(cause));
  }

  /** A hold whose placing failed on a fault may exist all the same: nobody will settle it, so it is released (no usage record: the refused request has its own). */
  private releaseLater(holdId: string, cause: unknown): void {
    this.kept.keep(() => this.pool.query(releaseHoldSql(holdId, this.owner)), cause);
  }

  private async holdAlone(h: NewHold, amount: bigint, seen: bigint | null): Promise<boolean> {
    try {
      return (await this.run(placeHoldSql(h, amount, this.owner, seen))).rowCount === 1;
    } catch (e) {
      if (isGatewayError(e) && e.code === 'store_unavailable') this.releaseLater(h.id, e.cause);
      throw e;
    }
  }

  /**
   * Reads the available balance, plans, and reserves the plan's amount only if the available
   * balance is still what was read; if another replica's hold came in between, reads and plans
   * again. Never more than was available when the plan saw it.
   */
  private async planAlone(h: NewHold, plan: (available: bigint) => bigint | null): Promise<PlannedHoldResult> {
    for (let i = 0; i < PLAN_TRIES; i++) {
      const row = await this.one('SELECT balance - held AS available FROM accounts WHERE id = $1', [h.accountId]);
      if (row === null) return null;
      const available = row['available'] as bigint;
      const amount = plan(available);
      if (amount === null || amount < 0n || amount > available) return { available };
      if (await this.holdAlone(h, amount, available)) return { amount };
    }
    throw storeUnavailable(new Error(`the balance of ${h.accountId} changed under ${PLAN_TRIES} plans in a row`));
  }

  /** Writes now; if the database cannot be reached, keeps the write for later and rejects with `store_unavailable`. */
  private async keepOnFault<T>(write: (retry: boolean) => Promise<T>): Promise<T> {
    try {
      return await write(false);
    } catch (e) {
      if (!isFault(e)) throw e;
      this.kept.keep(() => write(true), e);
      throw storeUnavailable(e);
    }
  }

  async recoverHolds(): Promise<number> {
    const r = await this.run(recoverSql(this.owner, Date.now()));
    return r.rows[0]!['released'] as number;
  }

  /** Every third of a lease: renews this instance's lease, then releases the holds of owners that are gone. */
  private readonly tick = (): void => {
    void (async () => {
      try {
        await this.run(putLeaseSql(this.owner, HOST, process.pid, this.leaseMs));
        const released = await this.recoverHolds();
        if (released > 0) this.log.warn({ holds: released }, 'released holds of a process that stopped mid-request (its lease ran out)');
      } catch (err) {
        if (!this.closed) this.log.warn({ err }, 'could not renew the lease or release holds of stopped processes; trying again');
      }
    })();
  };

  async listUsage(q: UsageQuery): Promise<UsagePage> {
    const where: string[] = [];
    const values: unknown[] = [];
    const add = (cond: (n: string) => string, v: unknown): void => {
      values.push(v);
      where.push(cond(`$${values.length}`));
    };
    if (q.accountId !== undefined) add((n) => `account_id = ${n}`, q.accountId);
    if (q.keyId !== undefined) add((n) => `key_id = ${n}`, q.keyId);
    if (q.from !== undefined) add((n) => `created_at >= ${n}`, q.from);
    if (q.to !== undefined) add((n) => `created_at < ${n}`, q.to);
    if (q.cursor !== undefined) add((n) => `seq < ${n}`, (decodeCursor(q.cursor) ?? 0n).toString());
    values.push(q.limit + 1);
    const r = await this.run(`SELECT * FROM usage ${where.length > 0 ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY seq DESC LIMIT $${values.length}`, values);
    const more = r.rows.length > q.limit;
    const page = more ? r.rows.slice(0, q.limit) : r.rows;
    return { data: page.map(toUsage), nextCursor: more ? encodeCursor(page[page.length - 1]!['seq'] as bigint) : null };
  }

  /**
   * Sums of the records themselves, read through the (created_at), (account_id, created_at) and
   * (key_id, created_at) indexes. No daily totals kept by triggers as on SQLite: on PostgreSQL
   * each settlement would then lock its (day, account, key, model) row until its batch commits,
   * and replicas settling for the same key would queue (or deadlock) on it.
   */
  async summarizeUsage(q: UsageSummaryQuery): Promise<UsageSummaryRow[]> {
    if (!(q.from < q.to)) return [];
    const where = ['created_at >= $1', 'created_at < $2'];
    const values: unknown[] = [q.from, q.to];
    if (q.accountId !== undefined) (values.push(q.accountId), where.push(`account_id = $${values.length}`));
    if (q.keyId !== undefined) (values.push(q.keyId), where.push(`key_id = $${values.length}`));
    const group = { day: 'created_at / 86400000', model: 'model', key: 'key_id', account: 'account_id' }[q.groupBy];
    // Sums of BIGINT are NUMERIC: read as text, so that nothing passes through a float.
    const r = await this.run(
      `SELECT ${group} AS g, COUNT(*) AS requests, COUNT(*) FILTER (WHERE status >= 400) AS errors, SUM(prompt_tokens)::text AS prompt_tokens,
  SUM(completion_tokens)::text AS completion_tokens, SUM(cached_tokens)::text AS cached_tokens, SUM(cache_write_tokens)::text AS cache_write_tokens,
  SUM(reasoning_tokens)::text AS reasoning_tokens, SUM(cost)::text AS cost
FROM usage WHERE ${where.join(' AND ')} GROUP BY g`,
      values,
    );
    const rows = r.rows.map((row) => {
      const out = emptyGroup(q.groupBy === 'day' ? isoDay(Number(row['g'] as bigint)) : (row['g'] as string));
      addTotals(out, row);
      return out;
    });
    return rows.sort(summaryOrder(q.groupBy === 'day'));
  }

  async pruneUsage(before: number, limit: number): Promise<number> {
    // Oldest first through the created_at index; a batch at a time, so the hot path's inserts never wait long.
    const r = await this.run('DELETE FROM usage WHERE seq IN (SELECT seq FROM usage WHERE created_at < $1 ORDER BY created_at LIMIT $2)', [before, limit]);
    return r.rowCount ?? 0;
  }

  async spendSince(accountId: string, since: number, keyId?: string): Promise<bigint> {
    const r =
      keyId === undefined
        ? await this.one('SELECT COALESCE(SUM(cost), 0)::text AS s FROM usage WHERE account_id = $1 AND created_at >= $2', [accountId, since])
        : await this.one('SELECT COALESCE(SUM(cost), 0)::text AS s FROM usage WHERE account_id = $1 AND key_id = $3 AND created_at >= $2', [accountId, since, keyId]);
    return BigInt(r!['s'] as string);
  }

  async firstStart(input: FirstStart): Promise<{ setting: string | null; accountCreated: boolean }> {
    const { setting, account } = input;
    return this.change(async (c) => {
      // However many replicas start together, one at a time decides.
      await c.query('SELECT pg_advisory_xact_lock($1)', [FIRST_START_LOCK]);
      let stored: string | null = null;
      if (setting !== null) {
        await c.query('INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING', [setting.name, setting.value]);
        stored = (await c.query<Row>('SELECT value FROM settings WHERE name = $1', [setting.name])).rows[0]!['value'] as string;
      }
      if ((await c.query('SELECT 1 FROM accounts LIMIT 1')).rows.length > 0) return { setting: stored, accountCreated: false };
      const now = Date.now();
      const created = await this.insertAccount(c, account, now);
      await this.insertKey(c, { ...account.key, accountId: created.id }, now);
      return { setting: stored, accountCreated: true };
    });
  }

  async getSetting(name: string): Promise<string | null> {
    return ((await this.one('SELECT value FROM settings WHERE name = $1', [name]))?.['value'] as string | undefined) ?? null;
  }

  async setSetting(name: string, value: string): Promise<void> {
    await this.run('INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value', [name, value]);
  }

  async rememberResponse(id: string, where: ResponseOrigin, expiresAt: number): Promise<void> {
    // Each write also drops a few expired rows (never the one it writes): the table keeps about 30 days without a sweeper.
    await this.run(
      `WITH expired AS (
  DELETE FROM response_origins WHERE id IN (SELECT id FROM response_origins WHERE expires_at <= $6 AND id <> $1 LIMIT 8 FOR UPDATE SKIP LOCKED)
)
INSERT INTO response_origins (id, provider, upstream_model, account_id, expires_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (id) DO UPDATE SET provider = EXCLUDED.provider, upstream_model = EXCLUDED.upstream_model, account_id = EXCLUDED.account_id, expires_at = EXCLUDED.expires_at`,
      [id, where.provider, where.upstreamModel, where.accountId, expiresAt, Date.now()],
    );
  }

  async findResponse(id: string, now: number): Promise<ResponseOrigin | null> {
    const r = await this.one('SELECT provider, upstream_model, account_id FROM response_origins WHERE id = $1 AND expires_at > $2', [id, now]);
    return r === null ? null : { provider: r['provider'] as string, upstreamModel: r['upstream_model'] as string, accountId: (r['account_id'] as string | null) ?? null };
  }
}
