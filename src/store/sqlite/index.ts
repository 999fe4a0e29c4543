import { setTimeout as sleep } from 'node:timers/promises';
import type { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { MAX_BALANCE } from '../../billing/money.js';
import { decodeCursor, encodeCursor, encodeLimits, encodeModels } from '../codec.js';
import { newId } from '../ids.js';
import { toAccount, toKey, toUsage, type Row } from '../rows.js';
import { addTotals, DAY_MS, emptyGroup, isoDay, summaryOrder } from '../summary.js';
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
import { startCheckpointer } from './checkpointer.js';
import { classify, DatabaseFileGone, storeUnavailable } from './faults.js';
import { fileIdentity, prepareDatabaseFile, restrictDatabaseFiles } from './files.js';
import { GroupCommit } from './group-commit.js';
import { journalFile, journalsOf, readJournal, removeQuietly, SettlementJournal } from './journal.js';
import { SQLITE_MIGRATIONS } from './migrations.js';
import { HOST, ownerGone, type LeaseRow } from './owner.js';

const num = (v: unknown): number => Number(v as bigint);
const big = (v: unknown): bigint => (typeof v === 'bigint' ? v : BigInt(v as number));

const usageParams = (u: UsageRecord): unknown[] => [
  u.traceId, u.accountId, u.keyId, u.model, u.provider, u.upstreamModel, u.promptTokens, u.completionTokens,
  u.cachedTokens, u.cost, u.status, u.errorType, u.stream ? 1 : 0, Math.round(u.latencyMs),
  u.ttftMs === null ? null : Math.round(u.ttftMs), u.createdAt, u.cacheWriteTokens, u.reasoningTokens, u.attempts, u.clientRequestId,
];

/** The group of a summary, in `usage` and in `usage_daily` (migration 8). */
const SUMMARY_GROUP = {
  day: { records: 'created_at / 86400000', days: 'day' },
  model: { records: 'model', days: 'model' },
  key: { records: 'key_id', days: 'key_id' },
  account: { records: 'account_id', days: 'account_id' },
} as const;

const SILENT: StoreLog = { error: () => undefined, warn: () => undefined, info: () => undefined };

/** Waits between tries of a write that found the lock held by another connection. */
const LOCK_WAIT_MS = [2, 5, 10, 20, 50, 100];

type CreditOutcome = { kind: 'credited' | 'replayed' | 'conflict' | 'no_account' } | { kind: 'over_max'; balance: bigint };

/**
 * Every store this process opened. better-sqlite3 12 wraps databases and statements in
 * node::ObjectWrap, and built against the headers of Node 24.19 or later (a from-source build;
 * the published prebuilds predate them) a wrapper that the garbage collector frees aborts the
 * process (nodejs/node#65446). So no wrapper is ever garbage: stores stay referenced here, each
 * statement is prepared once and kept (`stmt`), and pragmas go through exec, which makes none.
 * A closed store holds a few kilobytes.
 */
const RETAINED: SqliteStore[] = [];

/**
 * SQLite through better-sqlite3. WAL with synchronous=NORMAL: a commit does not wait for the
 * disk, and a process that dies loses nothing committed (only a power loss can lose the last
 * transactions). Holds, settlements and usage records are committed together, once per
 * event-loop turn (group-commit.ts); checkpoints run in a worker (checkpointer.ts).
 *
 * The event loop never waits on another process's lock: the busy timeout is a few
 * milliseconds and writes that find the lock held are tried again on timers, up to
 * `lockTimeoutMs`. Once a second (`tick`) the store checks that its file is still the one at
 * its path, and every third of a lease it renews its lease and releases the holds of owners
 * that are gone (owner.ts).
 */
export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  private readonly db: Database.Database;
  private ownChanges = 0;
  /** Prepared by the first migrate(): statements need the tables. */
  private s!: ReturnType<SqliteStore['prepare']>;
  private readonly group: GroupCommit;
  private readonly checkpointer: Worker | null;
  private applied: readonly Migration[] = [];
  private readonly statements = new Map<string, Database.Statement>();
  private readonly creditTx: Database.Transaction<(input: CreditInput) => CreditOutcome>;
  private readonly log: StoreLog;
  private readonly leaseMs: number;
  private readonly lockTimeoutMs: number;
  /** This instance as the owner of its holds. */
  private readonly owner = newId('owner');
  /** Whether this instance has written its lease (it does with its first hold). */
  private leased = false;
  /** When the lease is due for renewal, and when the next sweep for holds of owners that are gone runs. */
  private renewAt = 0;
  private sweepAt = 0;
  /** The file this store opened (device and inode); null in memory. */
  private readonly identity: string | null;
  /** Set while the file at the path is not the one opened: writes are refused. */
  private gone: DatabaseFileGone | null = null;
  /** What was at the path when that was last reported. */
  private seen: string | null = null;
  private readonly ticker: NodeJS.Timeout | null;
  /** Settlements made durable before they commit (journal.ts); null in memory. */
  private readonly journal: SettlementJournal | null;
  /** Journals of gone owners replayed by the transaction in progress: removed once it commits. */
  private replayed: string[] = [];

  /** Opens (creating if need be) the database at `path` and applies pending migrations. */
  static async open(path: string, opts: StoreOptions = {}): Promise<SqliteStore> {
    const store = new SqliteStore(path, opts);
    try {
      await store.migrate();
    } catch (e) {
      await store.close();
      throw e;
    }
    return store;
  }

  private constructor(
    private readonly path: string,
    opts: StoreOptions = {},
  ) {
    this.log = opts.log ?? SILENT;
    this.leaseMs = opts.leaseMs ?? 30_000;
    this.lockTimeoutMs = opts.lockTimeoutMs ?? 3_000;
    const file = path !== ':memory:';
    if (file) prepareDatabaseFile(path);
    this.db = new Database(path);
    RETAINED.push(this);
    this.db.defaultSafeIntegers(true);
    // Switching to WAL may wait for another process starting at the same moment.
    // Pragmas go through exec, which leaves no statement behind (see RETAINED).
    this.db.exec('PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON');
    this.db.exec('PRAGMA busy_timeout = 5');
    this.identity = file ? fileIdentity(path) : null;
    this.journal = file ? new SettlementJournal(journalFile(path, this.owner)) : null;
    if (file) restrictDatabaseFiles(path);
    this.creditTx = this.db.transaction((input: CreditInput): CreditOutcome => {
      const acct = this.s.balanceOf.get(input.accountId) as Row | undefined;
      if (acct === undefined) return { kind: 'no_account' };
      if (input.idempotencyKey !== null) {
        const prior = this.s.findIdem.get(input.accountId, input.idempotencyKey) as bigint | undefined;
        if (prior !== undefined) return { kind: prior === input.amount ? 'replayed' : 'conflict' };
      }
      const balance = big(acct['balance']);
      if (balance + input.amount > MAX_BALANCE) return { kind: 'over_max', balance };
      this.s.addBalance.run(input.amount, input.accountId);
      this.s.insertLedger.run(input.accountId, 'credit', input.amount, null, input.note, input.idempotencyKey, Date.now());
      return { kind: 'credited' };
    });
    const batch = this.db.transaction((body: () => void) => {
      this.keepLease();
      body();
    });
    this.group = new GroupCommit({
      transaction: (body) => {
        if (this.gone !== null) throw this.gone;
        batch.immediate(body);
      },
      classify,
      unavailable: storeUnavailable,
      lockTimeoutMs: this.lockTimeoutMs,
      onDeferred: (count, cause) =>
        this.log.error({ count, err: cause }, 'the database cannot be written: settlements and usage records are kept in memory and retried'),
      onCaughtUp: (count) => this.log.warn({ count }, 'the database can be written again: kept settlements and usage records are written'),
    });
    if (file) {
      this.db.exec('PRAGMA wal_autocheckpoint = 0');
      this.checkpointer = startCheckpointer(path);
      this.ticker = setInterval(this.tick, Math.min(1000, Math.max(50, Math.floor(this.leaseMs / 3))));
      this.ticker.unref();
    } else {
      this.checkpointer = null;
      this.ticker = null;
    }
  }

  /** The statement for `sql`, prepared on first use and kept (see RETAINED); the SQL texts a store builds are few. */
  private stmt(sql: string): Database.Statement {
    let s = this.statements.get(sql);
    if (s === undefined) {
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  private runMigrations(): Migration[] {
    const done: Migration[] = [];
    this.db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
    const applied = new Set(
      this.stmt('SELECT version FROM schema_migrations').pluck().all().map((v) => Number(v as bigint)),
    );
    const isApplied = this.stmt('SELECT 1 FROM schema_migrations WHERE version = ?').pluck();
    for (const m of SQLITE_MIGRATIONS) {
      if (applied.has(m.version)) continue;
      // Asked again under the write lock: another process starting at the same moment may have applied it.
      const ran = this.db.transaction(() => {
        if (isApplied.get(m.version) !== undefined) return false;
        this.db.exec(m.sql);
        this.stmt('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, Date.now());
        return true;
      }).immediate();
      if (ran) done.push({ version: m.version, name: m.name });
    }
    return done;
  }

  private prepare() {
    const db = this.db;
    return {
      dataVersion: db.prepare('PRAGMA data_version').pluck(),
      insertAccount: db.prepare('INSERT INTO accounts (id, name, balance, held, limits, created_at) VALUES (?, ?, 0, 0, ?, ?)'),
      getAccount: db.prepare('SELECT * FROM accounts WHERE id = ?'),
      countAccounts: db.prepare('SELECT COUNT(*) FROM accounts').pluck(),
      renameAccount: db.prepare('UPDATE accounts SET name = ? WHERE id = ?'),
      setAccountLimits: db.prepare('UPDATE accounts SET limits = ? WHERE id = ?'),
      addBalance: db.prepare('UPDATE accounts SET balance = balance + ? WHERE id = ?'),
      insertLedger: db.prepare(
        'INSERT INTO ledger (account_id, kind, amount, trace_id, note, idempotency_key, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      findIdem: db.prepare('SELECT amount FROM ledger WHERE account_id = ? AND idempotency_key = ?').pluck(),
      ledgerTotals: db.prepare(
        "SELECT COALESCE(SUM(CASE WHEN kind = 'credit' THEN amount ELSE 0 END), 0) AS credits, COALESCE(SUM(CASE WHEN kind = 'debit' THEN amount ELSE 0 END), 0) AS debits FROM ledger WHERE account_id = ?",
      ),
      insertKey: db.prepare(
        'INSERT INTO api_keys (id, account_id, name, prefix, key_hash, models, limits, frozen, expires_at, revoked_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, NULL, ?)',
      ),
      getKey: db.prepare('SELECT * FROM api_keys WHERE id = ?'),
      getKeyByHash: db.prepare('SELECT * FROM api_keys WHERE key_hash = ?'),
      listKeys: db.prepare('SELECT * FROM api_keys WHERE revoked_at IS NULL ORDER BY created_at, id'),
      listKeysOf: db.prepare('SELECT * FROM api_keys WHERE account_id = ? AND revoked_at IS NULL ORDER BY created_at, id'),
      revokeKey: db.prepare('UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL'),
      addHeld: db.prepare('UPDATE accounts SET held = held + ? WHERE id = ?'),
      balanceOf: db.prepare('SELECT balance, held FROM accounts WHERE id = ?'),
      insertHold: db.prepare('INSERT INTO holds (id, account_id, key_id, model, amount, stream, created_at, owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
      deleteHold: db.prepare('DELETE FROM holds WHERE id = ?'),
      holdsOf: db.prepare('SELECT * FROM holds WHERE owner = ?'),
      holdById: db.prepare('SELECT * FROM holds WHERE id = ?'),
      // Holds whose owner left no lease: it closed, or placed them before owners existed.
      orphanHolds: db.prepare('SELECT * FROM holds WHERE (owner IS NULL OR owner NOT IN (SELECT owner FROM leases)) AND owner IS NOT ?'),
      leases: db.prepare('SELECT owner, host, pid, expires_at FROM leases WHERE owner != ?'),
      putLease: db.prepare(
        'INSERT INTO leases (owner, host, pid, expires_at) VALUES (?, ?, ?, ?) ON CONFLICT (owner) DO UPDATE SET expires_at = excluded.expires_at',
      ),
      deleteLease: db.prepare('DELETE FROM leases WHERE owner = ?'),
      applySettle: db.prepare('UPDATE accounts SET held = held - ?, balance = balance - ? WHERE id = ?'),
      insertUsage: db.prepare(
        'INSERT INTO usage (trace_id, account_id, key_id, model, provider, upstream_model, prompt_tokens, completion_tokens, cached_tokens, cost, status, error_type, stream, latency_ms, ttft_ms, created_at, cache_write_tokens, reasoning_tokens, attempts, client_request_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      // The interrupted record of a request whose hold was released while it still ran; created after the hold was placed.
      replaceInterrupted: db.prepare(
        "UPDATE usage SET trace_id = ?, account_id = ?, key_id = ?, model = ?, provider = ?, upstream_model = ?, prompt_tokens = ?, completion_tokens = ?, cached_tokens = ?, cost = ?, status = ?, error_type = ?, stream = ?, latency_ms = ?, ttft_ms = ?, created_at = ?, cache_write_tokens = ?, reasoning_tokens = ?, attempts = ?, client_request_id = ? WHERE created_at >= ? AND trace_id = ? AND error_type = 'interrupted'",
      ),
      getSetting: db.prepare('SELECT value FROM settings WHERE name = ?').pluck(),
      setSetting: db.prepare('INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value'),
      keepSetting: db.prepare('INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING'),
    };
  }

  async migrate(): Promise<readonly Migration[]> {
    // Replicas starting together wait here for the one applying migrations; afterwards the
    // event loop never waits on another process's lock for long.
    this.db.exec('PRAGMA busy_timeout = 5000');
    try {
      this.applied = [...this.applied, ...this.runMigrations()];
    } finally {
      this.db.exec('PRAGMA busy_timeout = 5');
    }
    if (this.s === undefined) this.s = this.prepare();
    return this.applied;
  }

  async close(): Promise<void> {
    if (!this.db.open) return;
    if (this.ticker !== null) clearInterval(this.ticker);
    // Nothing is served any more: the last attempt may wait for another process's lock.
    this.db.exec(`PRAGMA busy_timeout = ${this.lockTimeoutMs}`);
    const left = this.group.finish();
    if (left > 0) {
      this.log.error(
        { count: left },
        'settlements and usage records could not be written before exit; their holds stay in the database and are released as interrupted by the next start or another process',
      );
    }
    // Everything journaled has committed (or is left, with its file, for the next recovery).
    if (this.journal !== null && !this.journal.close()) this.log.error({}, 'the settlement journal is kept for the next start: some settlements did not commit');
    // Without its lease, what this instance still holds is released by the next recovery anywhere.
    if (this.leased && this.gone === null) this.tryWrite(() => this.s.deleteLease.run(this.owner));
    if (this.checkpointer !== null) {
      await this.checkpointer.terminate();
      this.tryWrite(() => this.db.exec('PRAGMA wal_checkpoint(TRUNCATE)'));
    }
    this.db.close();
  }

  /**
   * Caps the database at its current size, as a full disk or quota would: writes that need
   * another page fail with SQLITE_FULL. `null` lifts the cap. For fault drills and tests.
   */
  capSize(cap: 'current' | null): void {
    const pages = num(this.stmt('PRAGMA page_count').pluck().get());
    this.db.exec(`PRAGMA max_page_count = ${cap === null ? 4294967294 : pages}`);
  }

  /** A write outside the group commit: tried again without blocking while another process holds the lock, then 503. */
  private async write<T>(fn: () => T): Promise<T> {
    const started = Date.now();
    for (let i = 0; ; i++) {
      if (this.gone !== null) throw storeUnavailable(this.gone);
      try {
        return fn();
      } catch (e) {
        const fault = classify(e);
        if (fault === null) throw e;
        if (fault === 'storage' || Date.now() - started >= this.lockTimeoutMs) throw storeUnavailable(e);
      }
      await sleep(LOCK_WAIT_MS[Math.min(i, LOCK_WAIT_MS.length - 1)]);
    }
  }

  /** One try; a fault is left for the next tick. */
  private tryWrite(fn: () => unknown): boolean {
    try {
      fn();
      return true;
    } catch (e) {
      if (classify(e) === null) this.log.error({ err: e }, 'database maintenance failed');
      return false;
    }
  }

  /** Inside the batch transaction: a hold is never written without a live lease behind it. */
  private keepLease(): void {
    const now = Date.now();
    if (now < this.renewAt) return;
    this.s.putLease.run(this.owner, HOST, process.pid, now + this.leaseMs);
    this.leased = true;
    this.renewAt = now + Math.floor(this.leaseMs / 3);
  }

  private readonly tick = (): void => {
    this.watchFile();
    this.journal?.maintain((id) => this.s.holdById.get(id) !== undefined);
    const now = Date.now();
    if (this.gone !== null || now < this.sweepAt) return;
    let released = 0;
    const done = this.tryWrite(() => {
      released = this.db
        .transaction((): number => {
          if (this.leased) this.keepLease();
          return this.releaseGone(now);
        })
        .immediate();
    });
    this.sweepAt = done ? now + Math.floor(this.leaseMs / 3) : 0;
    this.removeReplayed(done);
    if (released > 0) this.log.warn({ holds: released }, 'released holds of a process that stopped mid-request (it exited, or its lease ran out)');
  };

  /** Notices the database file deleted or replaced under the store, and its return. */
  private watchFile(): void {
    const seen = fileIdentity(this.path);
    if (seen === this.identity) {
      if (this.gone !== null) {
        this.gone = null;
        this.log.warn({ path: this.path }, 'the database file is back; writes resume');
        this.group.retryNow();
      }
      return;
    }
    if (this.gone !== null && seen === this.seen) return;
    this.seen = seen;
    this.gone ??= new DatabaseFileGone(this.path);
    this.log.error(
      { path: this.path },
      seen === null
        ? 'the database file was deleted: requests that write are refused (503) until it is back at its path; restart the gateway to start a new database'
        : 'the database file was replaced by another file: requests that write are refused (503) until the original is back; restart the gateway to use the new file',
    );
  }

  revision(): number {
    // data_version moves when another connection (the CLI) commits.
    return num(this.s.dataVersion.get()) * 1_000_000 + this.ownChanges;
  }

  localRevision(): number {
    return this.ownChanges;
  }

  async createAccount(input: { name: string; credit: bigint; limits?: Limits | null }): Promise<Account> {
    const id = newId('acct');
    const now = Date.now();
    if (input.credit > MAX_BALANCE) throw new RangeError('credit: more than an account may hold');
    await this.write(() => this.db.transaction(() => this.insertAccount(id, input, now)).immediate());
    this.ownChanges++;
    return toAccount(this.s.getAccount.get(id) as Row);
  }

  /** Inside a transaction: the account and its initial credit in the ledger. */
  private insertAccount(id: string, input: { name: string; credit: bigint; limits?: Limits | null }, now: number): void {
    this.s.insertAccount.run(id, input.name, encodeLimits(input.limits), now);
    if (input.credit > 0n) {
      this.s.addBalance.run(input.credit, id);
      this.s.insertLedger.run(id, 'credit', input.credit, null, 'initial credit', null, now);
    }
  }

  async getAccount(id: string): Promise<Account | null> {
    const r = this.s.getAccount.get(id) as Row | undefined;
    return r === undefined ? null : toAccount(r);
  }

  async updateAccount(id: string, patch: { name?: string; limits?: Limits | null }): Promise<Account | null> {
    await this.write(() =>
      this.db.transaction(() => {
        if (patch.name !== undefined) this.s.renameAccount.run(patch.name, id);
        if (patch.limits !== undefined) this.s.setAccountLimits.run(encodeLimits(patch.limits), id);
      }).immediate(),
    );
    this.ownChanges++;
    return this.getAccount(id);
  }

  async countAccounts(): Promise<number> {
    return num(this.s.countAccounts.get());
  }

  async credit(input: CreditInput): Promise<CreditResult> {
    const r = await this.write(() => this.creditTx.immediate(input));
    if (r.kind === 'over_max') return r;
    if (r.kind !== 'credited' && r.kind !== 'replayed') return { kind: r.kind };
    return { kind: r.kind, account: toAccount(this.s.getAccount.get(input.accountId) as Row) };
  }

  async ledgerTotals(accountId: string): Promise<LedgerTotals> {
    this.group.flush();
    const r = this.s.ledgerTotals.get(accountId) as Row;
    return { credits: big(r['credits']), debits: big(r['debits']) };
  }

  async createKey(input: NewKey): Promise<ApiKey> {
    const id = newId('key');
    await this.write(() =>
      this.s.insertKey.run(
        id, input.accountId, input.name, input.prefix, input.hash, encodeModels(input.models), encodeLimits(input.limits),
        input.expiresAt, Date.now(),
      ),
    );
    this.ownChanges++;
    return toKey(this.s.getKey.get(id) as Row);
  }

  async getKey(id: string): Promise<ApiKey | null> {
    const r = this.s.getKey.get(id) as Row | undefined;
    return r === undefined ? null : toKey(r);
  }

  async getKeyByHash(hash: string): Promise<ApiKey | null> {
    const r = this.s.getKeyByHash.get(hash) as Row | undefined;
    return r === undefined ? null : toKey(r);
  }

  async listKeys(accountId?: string): Promise<ApiKey[]> {
    const rows = (accountId === undefined ? this.s.listKeys.all() : this.s.listKeysOf.all(accountId)) as Row[];
    return rows.map(toKey);
  }

  async updateKey(id: string, patch: KeyPatch): Promise<ApiKey | null> {
    const sets: string[] = [];
    const params: unknown[] = [];
    if (patch.name !== undefined) (sets.push('name = ?'), params.push(patch.name));
    if (patch.models !== undefined) (sets.push('models = ?'), params.push(encodeModels(patch.models)));
    if (patch.limits !== undefined) (sets.push('limits = ?'), params.push(encodeLimits(patch.limits)));
    if (patch.frozen !== undefined) (sets.push('frozen = ?'), params.push(patch.frozen ? 1 : 0));
    if (patch.expiresAt !== undefined) (sets.push('expires_at = ?'), params.push(patch.expiresAt));
    if (sets.length > 0) {
      const update = this.stmt(`UPDATE api_keys SET ${sets.join(', ')} WHERE id = ? AND revoked_at IS NULL`);
      await this.write(() => update.run(...params, id));
      this.ownChanges++;
    }
    const r = this.s.getKey.get(id) as Row | undefined;
    return r === undefined || r['revoked_at'] !== null ? null : toKey(r);
  }

  async revokeKey(id: string): Promise<boolean> {
    const changed = (await this.write(() => this.s.revokeKey.run(Date.now(), id))).changes > 0;
    this.ownChanges++;
    return changed;
  }

  async placeHold(h: Hold): Promise<boolean> {
    const r = await this.placePlannedHold(h, (available) => (available >= h.amount ? h.amount : null));
    return r !== null && 'amount' in r;
  }

  placePlannedHold(h: NewHold, plan: (available: bigint) => bigint | null): Promise<PlannedHoldResult> {
    return this.group.run((): PlannedHoldResult => {
      const acct = this.s.balanceOf.get(h.accountId) as Row | undefined;
      if (acct === undefined) return null;
      const available = big(acct['balance']) - big(acct['held']);
      const amount = plan(available);
      if (amount === null || amount < 0n || amount > available) return { available };
      this.s.addHeld.run(amount, h.accountId);
      this.s.insertHold.run(h.id, h.accountId, h.keyId, h.model, amount, h.stream ? 1 : 0, h.createdAt, this.owner);
      return { amount };
    });
  }

  settle(st: Settlement): Promise<bigint> {
    // Journaled, the settlement survives the process from here on: the response need not wait for its commit.
    const journaled = this.journal !== null && this.gone === null && this.journal.append(st);
    if (journaled) st.onDurable?.();
    const committed = this.group.run(() => {
      const held = this.s.deleteHold.run(st.hold.id).changes > 0;
      const charged = this.charge(st.hold.id, st.hold.accountId, held ? st.hold.amount : 0n, st.cost);
      const params = usageParams({ ...st.usage, cost: charged });
      // Released as interrupted while it still ran: its record becomes this one.
      if (held || this.s.replaceInterrupted.run(...params, st.hold.createdAt, st.hold.id).changes === 0) this.s.insertUsage.run(...params);
      return charged;
    }, true);
    if (journaled) committed.then(() => this.journal!.committed(st.hold.id), () => undefined);
    return committed;
  }

  /** Inside a transaction: releases `release` of the account's held amount and debits at most what the account can pay without touching other holds. */
  private charge(holdId: string, accountId: string, release: bigint, cost: bigint): bigint {
    const acct = this.s.balanceOf.get(accountId) as Row | undefined;
    // Operations of a group commit must not throw: an account that is not there is charged nothing.
    if (acct === undefined) return 0n;
    const free = big(acct['balance']) - (big(acct['held']) - release);
    // The hold covers the cost unless the prompt was longer than estimated; even then the balance stays ≥ 0.
    const charged = cost <= 0n ? 0n : cost > free ? (free > 0n ? free : 0n) : cost;
    this.s.applySettle.run(release, charged, accountId);
    if (charged > 0n) this.s.insertLedger.run(accountId, 'debit', charged, holdId, null, null, Date.now());
    return charged;
  }

  recordUsage(u: UsageRecord): Promise<void> {
    return this.group.run(() => void this.s.insertUsage.run(...usageParams(u)), true);
  }

  async recoverHolds(): Promise<number> {
    this.group.flush();
    let released: number;
    try {
      released = await this.write(() => this.db.transaction(() => this.releaseGone(Date.now())).immediate());
    } catch (e) {
      this.removeReplayed(false);
      throw e;
    }
    this.removeReplayed(true);
    this.sweepAt = Date.now() + Math.floor(this.leaseMs / 3);
    return released;
  }

  /** Inside a transaction: releases the holds of owners that are gone, each recorded as interrupted. */
  private releaseGone(now: number): number {
    let released = 0;
    const leases = new Map<string, LeaseRow>();
    for (const r of this.s.leases.all(this.owner) as Row[]) {
      leases.set(r['owner'] as string, { owner: r['owner'] as string, host: r['host'] as string, pid: num(r['pid']), expiresAt: num(r['expires_at']) });
    }
    // First what gone owners had settled but not committed: those requests were answered and are billed.
    if (this.journal !== null) {
      for (const j of journalsOf(this.path)) {
        if (j.owner === this.owner) continue;
        const lease = leases.get(j.owner);
        if (lease !== undefined && !ownerGone(lease, now)) continue;
        for (const line of readJournal(j.file)) this.replay(line);
        this.replayed.push(j.file);
      }
    }
    for (const lease of leases.values()) {
      if (!ownerGone(lease, now)) continue;
      for (const h of this.s.holdsOf.all(lease.owner) as Row[]) released += this.interrupt(h, now);
      this.s.deleteLease.run(lease.owner);
    }
    for (const h of this.s.orphanHolds.all(this.owner) as Row[]) released += this.interrupt(h, now);
    return released;
  }

  /** A journaled settlement whose hold is still there: settled as the line says. */
  private replay(line: { hold: { id: string; accountId: string }; cost: bigint; usage: UsageRecord }): void {
    const h = this.s.holdById.get(line.hold.id) as Row | undefined;
    if (h === undefined || this.s.deleteHold.run(line.hold.id).changes === 0) return;
    const charged = this.charge(line.hold.id, h['account_id'] as string, big(h['amount']), line.cost);
    this.s.insertUsage.run(...usageParams({ ...line.usage, cost: charged }));
  }

  /** Removes the journals the last recovery replayed, once it has committed (else they stay for the next). */
  private removeReplayed(committed: boolean): void {
    if (committed) for (const f of this.replayed) removeQuietly(f);
    this.replayed = [];
  }

  private interrupt(h: Row, now: number): number {
    const id = h['id'] as string;
    if (this.s.deleteHold.run(id).changes === 0) return 0;
    this.charge(id, h['account_id'] as string, big(h['amount']), 0n);
    this.s.insertUsage.run(
      ...usageParams({
        traceId: id, accountId: h['account_id'] as string, keyId: h['key_id'] as string, model: h['model'] as string,
        provider: null, upstreamModel: null, promptTokens: 0, completionTokens: 0, cachedTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0, cost: 0n,
        status: 500, errorType: 'interrupted', stream: num(h['stream']) === 1, latencyMs: now - num(h['created_at']),
        ttftMs: null, createdAt: now, attempts: 0, clientRequestId: null,
      }),
    );
    return 1;
  }

  async listUsage(q: UsageQuery): Promise<UsagePage> {
    this.group.flush();
    const where: string[] = [];
    const params: unknown[] = [];
    if (q.accountId !== undefined) (where.push('account_id = ?'), params.push(q.accountId));
    if (q.keyId !== undefined) (where.push('key_id = ?'), params.push(q.keyId));
    if (q.from !== undefined) (where.push('created_at >= ?'), params.push(q.from));
    if (q.to !== undefined) (where.push('created_at < ?'), params.push(q.to));
    if (q.cursor !== undefined) {
      const seq = decodeCursor(q.cursor);
      where.push('seq < ?');
      params.push(seq ?? 0n);
    }
    const sql = `SELECT * FROM usage ${where.length > 0 ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY seq DESC LIMIT ?`;
    const rows = this.stmt(sql).all(...params, q.limit + 1) as Row[];
    const more = rows.length > q.limit;
    const page = more ? rows.slice(0, q.limit) : rows;
    return { data: page.map(toUsage), nextCursor: more ? encodeCursor(big(page[page.length - 1]!['seq'])) : null };
  }

  async pruneUsage(before: number, limit: number): Promise<number> {
    return this.write(() => this.stmt('DELETE FROM usage WHERE seq IN (SELECT seq FROM usage WHERE created_at < ? ORDER BY created_at LIMIT ?)').run(before, limit).changes);
  }

  async summarizeUsage(q: UsageSummaryQuery): Promise<UsageSummaryRow[]> {
    this.group.flush();
    const groups = new Map<string, UsageSummaryRow>();
    const add = (rows: Row[]): void => {
      for (const r of rows) {
        const g = q.groupBy === 'day' ? isoDay(num(r['g'])) : (r['g'] as string);
        let row = groups.get(g);
        if (row === undefined) {
          row = emptyGroup(g);
          groups.set(g, row);
        }
        addTotals(row, r);
      }
    };
    // Whole UTC days from the daily totals; the partial days at either edge from the records.
    const firstDay = Math.ceil(q.from / DAY_MS);
    const endDay = Math.floor(q.to / DAY_MS);
    if (firstDay < endDay) {
      add(this.summaryRows(q, 'days', firstDay, endDay));
      if (q.from < firstDay * DAY_MS) add(this.summaryRows(q, 'records', q.from, firstDay * DAY_MS));
      if (endDay * DAY_MS < q.to) add(this.summaryRows(q, 'records', endDay * DAY_MS, q.to));
    } else if (q.from < q.to) {
      add(this.summaryRows(q, 'records', q.from, q.to));
    }
    // A day's totals may be left at zero requests by a record that moved (see migration 8).
    return [...groups.values()].filter((r) => r.requests > 0).sort(summaryOrder(q.groupBy === 'day'));
  }

  /** Sums over [from, to): of records (epoch ms), or of daily totals (day numbers). */
  private summaryRows(q: UsageSummaryQuery, source: 'records' | 'days', from: number, to: number): Row[] {
    const [table, time, count, errors] =
      source === 'records' ? ['usage', 'created_at', 'COUNT(*)', 'SUM(status >= 400)'] : ['usage_daily', 'day', 'SUM(requests)', 'SUM(errors)'];
    // In `usage`, the unary + keeps SQLite off the (account_id, seq) and (key_id, seq) indexes,
    // which would read all of an account's records: the time range bounds the work instead.
    const plus = source === 'records' ? '+' : '';
    const where = [`${time} >= ?`, `${time} < ?`];
    const params: unknown[] = [from, to];
    if (q.accountId !== undefined) (where.push(`${plus}account_id = ?`), params.push(q.accountId));
    if (q.keyId !== undefined) (where.push(`${plus}key_id = ?`), params.push(q.keyId));
    const sql =
      `SELECT ${SUMMARY_GROUP[q.groupBy][source]} AS g, ${count} AS requests, ${errors} AS errors, SUM(prompt_tokens) AS prompt_tokens, ` +
      'SUM(completion_tokens) AS completion_tokens, SUM(cached_tokens) AS cached_tokens, SUM(cache_write_tokens) AS cache_write_tokens, ' +
      `SUM(reasoning_tokens) AS reasoning_tokens, SUM(cost) AS cost FROM ${table} WHERE ${where.join(' AND ')} GROUP BY g`;
    return this.stmt(sql).all(...params) as Row[];
  }

  async spendSince(accountId: string, since: number, keyId?: string): Promise<bigint> {
    // From the daily totals: the callers ask from a UTC midnight, so no record is read.
    const rows = await this.summarizeUsage({ groupBy: 'account', from: since, to: Number.MAX_SAFE_INTEGER, accountId, ...(keyId !== undefined ? { keyId } : {}) });
    return rows.reduce((sum, r) => sum + r.cost, 0n);
  }

  async firstStart(input: FirstStart): Promise<{ setting: string | null; accountCreated: boolean }> {
    const { setting, account } = input;
    const result = await this.write(() => this.db.transaction(() => {
      if (setting !== null) this.s.keepSetting.run(setting.name, setting.value);
      const stored = setting === null ? null : (this.s.getSetting.get(setting.name) as string);
      if (num(this.s.countAccounts.get()) > 0) return { setting: stored, accountCreated: false };
      const id = newId('acct');
      const now = Date.now();
      this.insertAccount(id, account, now);
      const k = account.key;
      this.s.insertKey.run(newId('key'), id, k.name, k.prefix, k.hash, encodeModels(k.models), encodeLimits(k.limits), k.expiresAt, now);
      return { setting: stored, accountCreated: true };
    }).immediate());
    this.ownChanges++;
    return result;
  }

  async getSetting(name: string): Promise<string | null> {
    return (this.s.getSetting.get(name) as string | undefined) ?? null;
  }

  async setSetting(name: string, value: string): Promise<void> {
    await this.write(() => this.s.setSetting.run(name, value));
  }

  rememberResponse(id: string, where: ResponseOrigin, expiresAt: number): Promise<void> {
    // Each write also drops a few expired rows: the table keeps about 30 days without a sweeper.
    return this.group.run(() => {
      this.stmt('DELETE FROM response_origins WHERE id IN (SELECT id FROM response_origins WHERE expires_at <= ? LIMIT 8)').run(Date.now());
      this.stmt(
        'INSERT INTO response_origins (id, provider, upstream_model, account_id, expires_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET provider = excluded.provider, upstream_model = excluded.upstream_model, account_id = excluded.account_id, expires_at = excluded.expires_at',
      ).run(id, where.provider, where.upstreamModel, where.accountId, expiresAt);
    });
  }

  async findResponse(id: string, now: number): Promise<ResponseOrigin | null> {
    // A remembered id may still be queued in this turn's group commit.
    this.group.flush();
    const row = this.stmt('SELECT provider, upstream_model, account_id FROM response_origins WHERE id = ? AND expires_at > ?').get(id, now) as
      | { provider: string; upstream_model: string; account_id: string | null }
      | undefined;
    return row === undefined ? null : { provider: row.provider, upstreamModel: row.upstream_model, accountId: row.account_id };
  }
}
