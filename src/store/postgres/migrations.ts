// PostgreSQL's own versioned migrations (its types are not SQLite's: BIGINT money and times,
// BOOLEAN flags, identity sequences). Applied in order by migrate(), all pending ones in one
// transaction under an advisory lock, so replicas that start together apply each exactly once;
// each is recorded in schema_migrations. Never edit a released migration: add the next one.
//
// Version 1 is the schema SQLite reached in its versions 1–7 (usage summaries are summed from
// the records, so SQLite's 8 has no counterpart); the numbers of the two lists are independent.

export const PG_MIGRATIONS: readonly { version: number; name: string; sql: string }[] = [
  {
    version: 1,
    name: 'accounts, keys, ledger, holds with owners and leases, usage, settings, response origins',
    sql: `
CREATE TABLE accounts (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  balance BIGINT NOT NULL DEFAULT 0 CHECK (balance >= 0),
  held BIGINT NOT NULL DEFAULT 0 CHECK (held >= 0),
  limits TEXT,
  created_at BIGINT NOT NULL
);
CREATE TABLE api_keys (
  id TEXT PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(id),
  name TEXT,
  prefix TEXT NOT NULL,
  key_hash TEXT NOT NULL UNIQUE,
  models TEXT,
  limits TEXT,
  frozen BOOLEAN NOT NULL DEFAULT FALSE,
  expires_at BIGINT,
  revoked_at BIGINT,
  created_at BIGINT NOT NULL
);
CREATE INDEX api_keys_account ON api_keys(account_id);
CREATE TABLE ledger (
  seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(id),
  kind TEXT NOT NULL CHECK (kind IN ('credit', 'debit')),
  amount BIGINT NOT NULL CHECK (amount >= 0),
  trace_id TEXT,
  note TEXT,
  idempotency_key TEXT,
  created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX ledger_idempotency ON ledger(account_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX ledger_account ON ledger(account_id, seq);
-- A store instance's claim on its holds; expires_at is the database's clock (epoch ms), so hosts'
-- clocks need not agree.
CREATE TABLE leases (
  owner TEXT PRIMARY KEY,
  host TEXT NOT NULL,
  pid INTEGER NOT NULL,
  expires_at BIGINT NOT NULL
);
-- Only the requests in flight: recovery scans it whole, so no index on owner costs each hold a write.
CREATE TABLE holds (
  id TEXT PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(id),
  key_id TEXT NOT NULL,
  model TEXT NOT NULL,
  amount BIGINT NOT NULL CHECK (amount >= 0),
  stream BOOLEAN NOT NULL,
  created_at BIGINT NOT NULL,
  owner TEXT NOT NULL
);
CREATE TABLE usage (
  seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  trace_id TEXT NOT NULL,
  account_id TEXT NOT NULL,
  key_id TEXT NOT NULL,
  model TEXT NOT NULL,
  provider TEXT,
  upstream_model TEXT,
  prompt_tokens BIGINT NOT NULL,
  completion_tokens BIGINT NOT NULL,
  cached_tokens BIGINT NOT NULL,
  cache_write_tokens BIGINT NOT NULL DEFAULT 0,
  reasoning_tokens BIGINT NOT NULL DEFAULT 0,
  cost BIGINT NOT NULL,
  status INTEGER NOT NULL,
  error_type TEXT,
  stream BOOLEAN NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  latency_ms BIGINT NOT NULL,
  ttft_ms BIGINT,
  client_request_id TEXT,
  created_at BIGINT NOT NULL
);
CREATE INDEX usage_account ON usage(account_id, seq);
CREATE INDEX usage_key ON usage(key_id, seq);
CREATE INDEX usage_created ON usage(created_at);
-- Summaries and today's spend of an account or a key read a time range of its records.
CREATE INDEX usage_account_created ON usage(account_id, created_at);
CREATE INDEX usage_key_created ON usage(key_id, created_at);
CREATE TABLE settings (
  name TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE response_origins (
  id TEXT PRIMARY KEY,
  provider TEXT NOT NULL,
  upstream_model TEXT NOT NULL,
  account_id TEXT,
  expires_at BIGINT NOT NULL
);
CREATE INDEX response_origins_expiry ON response_origins(expires_at);
`,
  },
];
