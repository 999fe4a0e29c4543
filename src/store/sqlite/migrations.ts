// Versioned migrations, applied in order at start; each runs once, in a transaction, and is
// recorded in schema_migrations. Never edit a released migration: add the next one.

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
];
