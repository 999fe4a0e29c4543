// The store interface. Asynchronous and free of any one database's idioms, so that SQLite
// (embedded default) and PostgreSQL sit behind it alike and pass one test suite
// (test/store.test.ts). Money is bigint nano-dollars; times are epoch milliseconds.

export interface Limits {
  rpm?: number;
  tpm?: number;
  concurrency?: number;
  /** Units (nano-dollars) per UTC day. */
  daily_spend?: bigint;
}

export interface Account {
  id: string;
  name: string;
  balance: bigint;
  held: bigint;
  limits: Limits | null;
  createdAt: number;
}

export interface ApiKey {
  id: string;
  accountId: string;
  name: string | null;
  /** The first characters of the key, shown to operators to tell keys apart. */
  prefix: string;
  hash: string;
  /** Model ids or globs; null means every model. */
  models: string[] | null;
  limits: Limits | null;
  frozen: boolean;
  expiresAt: number | null;
  revokedAt: number | null;
  createdAt: number;
}

export interface NewKey {
  accountId: string;
  name: string | null;
  prefix: string;
  hash: string;
  models: string[] | null;
  limits: Limits | null;
  expiresAt: number | null;
}

export interface Migration {
  version: number;
  name: string;
}

/** The writes of a first start; see Store.firstStart. */
export interface FirstStart {
  /** Kept unless a value is already stored under this name. */
  setting: { name: string; value: string } | null;
  /** Created, with its key, unless any account exists. */
  account: { name: string; credit: bigint; key: Omit<NewKey, 'accountId'> };
}

export interface KeyPatch {
  name?: string | null;
  models?: string[] | null;
  limits?: Limits | null;
  frozen?: boolean;
  expiresAt?: number | null;
}

export interface UsageRecord {
  traceId: string;
  accountId: string;
  keyId: string;
  model: string;
  provider: string | null;
  upstreamModel: string | null;
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  cacheWriteTokens: number;
  reasoningTokens: number;
  cost: bigint;
  status: number;
  errorType: string | null;
  stream: boolean;
  latencyMs: number;
  ttftMs: number | null;
  createdAt: number;
  /** Upstream requests this client request made (retries and failover); 0 when it never reached routing. */
  attempts: number;
  /** The client's own id for the request (`x-client-request-id`, SPEC §8) when it sent a well-formed one. */
  clientRequestId: string | null;
}

export interface Hold {
  /** The request's traceId: one hold per request. */
  id: string;
  accountId: string;
  keyId: string;
  model: string;
  amount: bigint;
  stream: boolean;
  createdAt: number;
}

/** A hold whose amount the store decides with the caller's plan (see placePlannedHold). */
export type NewHold = Omit<Hold, 'amount'>;

/** The amount held; or the available balance the plan refused; or null when there is no such account. */
export type PlannedHoldResult = { amount: bigint } | { available: bigint } | null;

export interface Settlement {
  hold: Hold;
  /** What the request cost; the store charges at most what the account can pay without touching other holds. */
  cost: bigint;
  usage: UsageRecord;
  /**
   * Called once the settlement would survive the process dying: at once when the store journals
   * it, else when it commits. A response's last bytes wait for it (SPEC §4: what a client
   * received whole is billed).
   */
  onDurable?: () => void;
}

export interface CreditInput {
  accountId: string;
  amount: bigint;
  note: string | null;
  idempotencyKey: string | null;
}

export type CreditResult =
  | { kind: 'credited'; account: Account }
  | { kind: 'replayed'; account: Account }
  | { kind: 'conflict' }
  /** The balance would pass MAX_BALANCE (billing/money.ts); nothing was credited. */
  | { kind: 'over_max'; balance: bigint }
  | { kind: 'no_account' };

export interface UsageQuery {
  accountId?: string;
  keyId?: string;
  from?: number;
  to?: number;
  limit: number;
  cursor?: string;
}

export interface UsagePage {
  data: UsageRecord[];
  nextCursor: string | null;
}

/** What a usage summary groups by: the UTC day of `created_at`, the model asked for, the key, the account. */
export type UsageGroupBy = 'day' | 'model' | 'key' | 'account';

export interface UsageSummaryQuery {
  groupBy: UsageGroupBy;
  /** Records with `from <= createdAt < to` (epoch ms): consecutive ranges never count a record twice. */
  from: number;
  to: number;
  accountId?: string;
  keyId?: string;
}

/** Sums over records: their token counts and cost, how many there were, how many failed. */
export interface UsageTotals
  extends Pick<UsageRecord, 'promptTokens' | 'completionTokens' | 'cachedTokens' | 'cacheWriteTokens' | 'reasoningTokens' | 'cost'> {
  requests: number;
  /** Records with status >= 400, 499 (the client went away) and interrupted (500) included. */
  errors: number;
}

export interface UsageSummaryRow extends UsageTotals {
  /** The day as `YYYY-MM-DD` (UTC), or the model, key id or account id. */
  group: string;
}

export interface LedgerTotals {
  credits: bigint;
  debits: bigint;
}

/** Where a store reports faults it handles itself (the database file vanished, writes deferred). A pino logger is one. */
export interface StoreLog {
  error(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export interface StoreOptions {
  /** How long a process's claim on its holds lasts without renewal (renewed every third of it). */
  leaseMs?: number;
  /** How long a write waits for a lock held by another process before it is refused with `store_unavailable`. */
  lockTimeoutMs?: number;
  log?: StoreLog;
}

/**
 * Every write may reject with the GatewayError `store_unavailable` (503, retryable) when the
 * database cannot be written now: disk full, I/O error, the file deleted or replaced, or another
 * process holding the write lock longer than `lockTimeoutMs`.
 */
export interface Store {
  readonly kind: 'sqlite' | 'postgres';
  /** Applies pending versioned migrations; returns those applied since the store was opened (`token360 migrate` prints them). */
  migrate(): Promise<readonly Migration[]>;
  close(): Promise<void>;
  /**
   * A number that changes whenever keys or accounts may have changed, including by another
   * process (the CLI). Cheap and synchronous: the key cache compares it on every request.
   */
  revision(): number;
  /** Moves with this process's own changes to keys and accounts; no I/O at all. */
  localRevision(): number;

  createAccount(input: { name: string; credit: bigint; limits?: Limits | null }): Promise<Account>;
  getAccount(id: string): Promise<Account | null>;
  /** Renames the account or replaces its limits; null when there is no such account. */
  updateAccount(id: string, patch: { name?: string; limits?: Limits | null }): Promise<Account | null>;
  countAccounts(): Promise<number>;
  credit(input: CreditInput): Promise<CreditResult>;
  ledgerTotals(accountId: string): Promise<LedgerTotals>;

  createKey(input: NewKey): Promise<ApiKey>;
  getKey(id: string): Promise<ApiKey | null>;
  getKeyByHash(hash: string): Promise<ApiKey | null>;
  listKeys(accountId?: string): Promise<ApiKey[]>;
  updateKey(id: string, patch: KeyPatch): Promise<ApiKey | null>;
  /** Marks the key revoked; false when there is no such live key. */
  revokeKey(id: string): Promise<boolean>;

  /** Reserves `hold.amount` of the account's available balance; false when it cannot be covered. */
  placeHold(hold: Hold): Promise<boolean>;
  /**
   * Reserves what `plan` decides from the account's available balance, atomically with reading
   * it: no other hold can slip in between. `plan` returns the amount (at most the available
   * balance), or null to refuse; it must not throw.
   */
  placePlannedHold(hold: NewHold, plan: (available: bigint) => bigint | null): Promise<PlannedHoldResult>;
  /**
   * Releases the hold, debits the cost (capped so the balance stays ≥ 0) and writes the usage
   * record, atomically. Returns what was charged. If the hold was already released as
   * interrupted (its owner's lease ran out while the request was still running), the request's
   * interrupted record becomes this one: one record per request whatever happens.
   *
   * When the database cannot be written (disk full, file gone, a lock held too long) the promise
   * rejects with `store_unavailable`, and the store keeps the settlement in memory and writes it
   * when it can; close() tries once more. Only if the process dies before then is it lost, and
   * the hold is then released as interrupted.
   */
  settle(s: Settlement): Promise<bigint>;
  /** A usage record for a request that held nothing (refused or failed before the hold). Kept and retried like settle(). */
  recordUsage(u: UsageRecord): Promise<void>;
  /**
   * Releases the holds of processes that are gone and records each as an interrupted request
   * (status 500, cost 0), exactly once. A hold belongs to the store instance that placed it,
   * which keeps a lease on the database while it lives: holds are released when their owner
   * closed, when its lease ran out, or (on the same machine) when its process has exited. Holds
   * of a live owner, this one included, are never touched. Returns how many were released.
   * The store also does this on its own while it is open, about every third of a lease.
   */
  recoverHolds(): Promise<number>;
  listUsage(q: UsageQuery): Promise<UsagePage>;
  /**
   * Deletes at most `limit` usage records made before `before` (epoch ms), oldest first, and
   * returns how many (the retention sweep calls it in small batches). The ledger is never pruned.
   */
  pruneUsage(before: number, limit: number): Promise<number>;
  /**
   * Totals of the usage records in [from, to), one row per group that has records: days in
   * ascending order; models, keys and accounts by cost, then requests, descending, then by name.
   * Sums are exact (cost as bigint units) and fast at millions of records: an implementation
   * keeps daily totals as records are written, and reads records only for the partial days at
   * the edges of an unaligned range.
   */
  summarizeUsage(q: UsageSummaryQuery): Promise<UsageSummaryRow[]>;
  /** Sum of charged costs of the account since `since` (epoch ms). */
  spendSince(accountId: string, since: number, keyId?: string): Promise<bigint>;

  /**
   * The first start's writes in one transaction, so that however many processes start on one
   * database together, exactly one makes them. Returns the value now stored under the setting's
   * name (null when none was given) and whether this call created the account.
   */
  firstStart(input: FirstStart): Promise<{ setting: string | null; accountCreated: boolean }>;
  getSetting(name: string): Promise<string | null>;
  setSetting(name: string, value: string): Promise<void>;

  /**
   * Notes which deployment created an upstream's stateful response (OpenAI Responses, SPEC §6),
   * and the account whose key made it, so that requests continuing it (`previous_response_id`)
   * or reading and deleting it (`GET`/`DELETE /v1/responses/{id}`) reach that deployment from
   * any replica until `expiresAt` (epoch ms), for that account only. Writing an id again
   * replaces the entry.
   */
  rememberResponse(id: string, where: ResponseOrigin, expiresAt: number): Promise<void>;
  /** The deployment that created the response and its account, or null when unknown or expired at `now`. */
  findResponse(id: string, now: number): Promise<ResponseOrigin | null>;
}

/** A deployment (the provider's name in the config and its model there), and the account the response belongs to. */
export interface ResponseOrigin {
  provider: string;
  upstreamModel: string;
  /** null for an entry written before the gateway noted accounts (schema version 4): no account owns it. */
  accountId: string | null;
}
