// Versioned migrations, applied in order at start; each runs once, in a transaction, and is
// recorded in schema_migrations. Never edit a released migration: add the next one.

/** Trigger statements of migration 8: a usage record added to, or taken from, its day's totals. */
const ADD_NEW = `
  INSERT INTO usage_daily VALUES (NEW.created_at / 86400000, NEW.account_id, NEW.key_id, NEW.model, 1, NEW.status >= 400, NEW.prompt_tokens,
    NEW.completion_tokens, NEW.cached_tokens, NEW.cache_write_tokens, NEW.reasoning_tokens, NEW.cost)
  ON CONFLICT (day, account_id, key_id, model) DO UPDATE SET requests = requests + 1, errors = errors + excluded.errors,
    prompt_tokens = prompt_tokens + excluded.prompt_tokens, completion_tokens = completion_tokens + excluded.completion_tokens,
    cached_tokens = cached_tokens + excluded.cached_tokens, cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens,
    reasoning_tokens = reasoning_tokens + excluded.reasoning_tokens, cost = cost + excluded.cost;`;
const SUBTRACT_OLD = `
  UPDATE usage_daily SET requests = requests - 1, errors = errors - (OLD.status >= 400), prompt_tokens = prompt_tokens - OLD.prompt_tokens,
    completion_tokens = completion_tokens - OLD.completion_tokens, cached_tokens = cached_tokens - OLD.cached_tokens,
    cache_write_tokens = cache_write_tokens - OLD.cache_write_tokens, reasoning_tokens = reasoning_tokens - OLD.reasoning_tokens, cost = cost - OLD.cost
  WHERE day = OLD.created_at / 86400000 AND account_id = OLD.account_id AND key_id = OLD.key_id AND model = OLD.model;`;

export const SQLITE_MIGRATIONS: readonly { version: number; name: string; sql: string }[] = [
  {
    version: 1,
    name: 'accounts, keys, ledger, holds, usage',
    sql: `
CREATE TABLE accounts (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  balance INTEGER NOT NULL DEFAULT 0 CHECK (balance >= 0),
  held INTEGER NOT NULL DEFAULT 0 CHECK (held >= 0),
  limits TEXT,
  created_at INTEGER NOT NULL
);
CREATE TABLE api_keys (
  id TEXT PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(id),
  name TEXT,
  prefix TEXT NOT NULL,
  key_hash TEXT NOT NULL UNIQUE,
  models TEXT,
  limits TEXT,
  frozen INTEGER NOT NULL DEFAULT 0,
  expires_at INTEGER,
  revoked_at INTEGER,
  created_at INTEGER NOT NULL
);
CREATE INDEX api_keys_account ON api_keys(account_id);
CREATE TABLE ledger (
  seq INTEGER PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(id),
  kind TEXT NOT NULL CHECK (kind IN ('credit', 'debit')),
  amount INTEGER NOT NULL CHECK (amount >= 0),
  trace_id TEXT,
  note TEXT,
  idempotency_key TEXT,
  created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX ledger_idempotency ON ledger(account_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX ledger_account ON ledger(account_id, seq);
CREATE TABLE holds (
  id TEXT PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(id),
  key_id TEXT NOT NULL,
  model TEXT NOT NULL,
  amount INTEGER NOT NULL CHECK (amount >= 0),
  stream INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE usage (
  seq INTEGER PRIMARY KEY,
  trace_id TEXT NOT NULL,
  account_id TEXT NOT NULL,
  key_id TEXT NOT NULL,
  model TEXT NOT NULL,
  provider TEXT,
  upstream_model TEXT,
  prompt_tokens INTEGER NOT NULL,
  completion_tokens INTEGER NOT NULL,
  cached_tokens INTEGER NOT NULL,
  cost INTEGER NOT NULL,
  status INTEGER NOT NULL,
  error_type TEXT,
  stream INTEGER NOT NULL,
  latency_ms INTEGER NOT NULL,
  ttft_ms INTEGER,
  created_at INTEGER NOT NULL
);
CREATE INDEX usage_account ON usage(account_id, seq);
CREATE INDEX usage_key ON usage(key_id, seq);
CREATE INDEX usage_created ON usage(created_at);
CREATE TABLE settings (
  name TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
`,
  },
  {
    version: 2,
    name: 'hold owners and their leases',
    // Holds placed before this migration have no owner: the first recovery releases them. No index
    // on owner: holds are only the requests in flight, and an index would cost every request a write.
    sql: `
CREATE TABLE leases (
  owner TEXT PRIMARY KEY,
  host TEXT NOT NULL,
  pid INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
ALTER TABLE holds ADD COLUMN owner TEXT;
`,
  },
  {
    version: 3,
    name: 'usage: cache-write and reasoning tokens',
    sql: `
ALTER TABLE usage ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0;
`,
  },
  {
    version: 4,
    name: 'response origins: which deployment created a stateful response',
    // Expired rows are deleted as new ones are written (by the expiry index), so the table holds about 30 days of responses.
    sql: `
CREATE TABLE response_origins (
  id TEXT PRIMARY KEY,
  provider TEXT NOT NULL,
  upstream_model TEXT NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE INDEX response_origins_expiry ON response_origins(expires_at);
`,
  },
  {
    version: 5,
    name: 'response origins: the account a stateful response belongs to',
    // Rows from before stay without one: GET/DELETE /v1/responses/{id} reaches no account's key through them.
    sql: `
ALTER TABLE response_origins ADD COLUMN account_id TEXT;
`,
  },
  {
    version: 6,
    name: 'usage: upstream attempts',
    sql: `
ALTER TABLE usage ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
`,
  },
  {
    version: 7,
    name: 'usage: the client request id',
    sql: `
ALTER TABLE usage ADD COLUMN client_request_id TEXT;
`,
  },
  {
    version: 8,
    name: 'usage: daily totals per account, key and model',
    // Summaries (GET /admin/usage/summary, /v1/me) and today's spend read usage_daily, kept by
    // triggers in the transaction that writes each record (the settlement's), so it always equals
    // the sums of `usage`: one upsert per record instead of a scan of millions at read time.
    // Records are read only for the partial days at the edges of a range, through usage_created.
    // The upsert changes no indexed column, so it writes the table's one B-tree and no index.
    // The backfill reads the table once, at the upgrade. Day = created_at / 86400000, the UTC
    // day; errors = status >= 400.
    sql: `
CREATE TABLE usage_daily (
  day INTEGER NOT NULL,
  account_id TEXT NOT NULL,
  key_id TEXT NOT NULL,
  model TEXT NOT NULL,
  requests INTEGER NOT NULL,
  errors INTEGER NOT NULL,
  prompt_tokens INTEGER NOT NULL,
  completion_tokens INTEGER NOT NULL,
  cached_tokens INTEGER NOT NULL,
  cache_write_tokens INTEGER NOT NULL,
  reasoning_tokens INTEGER NOT NULL,
  cost INTEGER NOT NULL,
  PRIMARY KEY (day, account_id, key_id, model)
) WITHOUT ROWID;
CREATE INDEX usage_daily_account ON usage_daily(account_id, day);
CREATE INDEX usage_daily_key ON usage_daily(key_id, day);
INSERT INTO usage_daily
  SELECT created_at / 86400000, account_id, key_id, model, COUNT(*), SUM(status >= 400), SUM(prompt_tokens), SUM(completion_tokens),
    SUM(cached_tokens), SUM(cache_write_tokens), SUM(reasoning_tokens), SUM(cost)
  FROM usage GROUP BY 1, 2, 3, 4;
CREATE TRIGGER usage_daily_insert AFTER INSERT ON usage BEGIN ${ADD_NEW} END;
CREATE TRIGGER usage_daily_delete AFTER DELETE ON usage BEGIN ${SUBTRACT_OLD} END;
-- An interrupted record replaced by its late settlement (the store's replaceInterrupted): out with the old, in with the new.
CREATE TRIGGER usage_daily_update AFTER UPDATE ON usage BEGIN ${SUBTRACT_OLD} ${ADD_NEW} END;
`,
  },
];
