import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { ConfigError } from '../src/config/load.js';
import { openStore } from '../src/store/open.js';
import { SQLITE_MIGRATIONS } from '../src/store/sqlite/migrations.js';
import { storeContract } from './helpers/store-contract.js';

const dir = mkdtempSync(join(tmpdir(), 'token360-store-'));
after(() => rmSync(dir, { recursive: true, force: true }));

// Every call opens a new, empty in-memory database.
storeContract('SQLite in memory', () => openStore('sqlite::memory:'));

// Every call opens the same file: the contract's second-connection tests run too.
const file = join(dir, 'nested', 'dir', 'contract.db');
storeContract('SQLite file', () => openStore(`sqlite:${file}`), { sharedDatabase: true });

/** A database file as an older release left it: migrated up to `version`. */
function databaseAt(path: string, version: number): Database.Database {
  const db = new Database(path);
  db.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
  for (const m of SQLITE_MIGRATIONS.filter((m) => m.version <= version)) {
    db.exec(m.sql);
    db.prepare('INSERT INTO schema_migrations VALUES (?, ?, 0)').run(m.version, m.name);
  }
  return db;
}

describe('SQLite specifics', () => {
  test('openStore creates the missing directories of the database path', () => {
    assert.ok(existsSync(file));
  });

  test('versioned migrations are applied once: reopening keeps data and records each version once', async () => {
    const path = join(dir, 'migrate.db');
    const s1 = await openStore(`sqlite:${path}`);
    const a = await s1.createAccount({ name: 'persist', credit: 123n });
    await s1.close();

    // A second open must not re-run the migrations (they would fail on existing tables or wipe data).
    const s2 = await openStore(`sqlite:${path}`);
    await s2.migrate();
    assert.equal((await s2.getAccount(a.id))!.balance, 123n);
    await s2.close();

    const db = new Database(path, { readonly: true });
    try {
      const rows = db.prepare('SELECT version FROM schema_migrations ORDER BY version').all() as { version: number }[];
      assert.deepEqual(
        rows.map((r) => r.version),
        SQLITE_MIGRATIONS.map((m) => m.version),
      );
    } finally {
      db.close();
    }
  });

  test('a response origin remembered before accounts were noted (version 4) comes back, after the upgrade, with no account', async () => {
    const path = join(dir, 'origins-v4.db');
    const old = databaseAt(path, 4);
    const until = Date.now() + 60_000;
    old.prepare("INSERT INTO response_origins (id, provider, upstream_model, expires_at) VALUES ('resp_old', 'nat', 'gpt-x', ?)").run(until);
    old.close();
    const store = await openStore(`sqlite:${path}`);
    try {
      assert.deepEqual(await store.findResponse('resp_old', Date.now()), { provider: 'nat', upstreamModel: 'gpt-x', accountId: null });
      await store.rememberResponse('resp_new', { provider: 'nat', upstreamModel: 'gpt-x', accountId: 'acct_1' }, until);
      assert.equal((await store.findResponse('resp_new', Date.now()))?.accountId, 'acct_1');
    } finally {
      await store.close();
    }
  });

  test('the daily totals of version 8 start from the records already there: summaries of an upgraded database count them', async () => {
    const path = join(dir, 'usage-v6.db');
    const old = databaseAt(path, 6);
    const day = Date.UTC(2026, 5, 1);
    const insert = old.prepare(
      "INSERT INTO usage (trace_id, account_id, key_id, model, prompt_tokens, completion_tokens, cached_tokens, cost, status, stream, latency_ms, created_at, cache_write_tokens, reasoning_tokens) VALUES (?, 'acct_old', ?, 'm', ?, 1, 0, ?, ?, 0, 5, ?, 0, 0)",
    );
    insert.run('t1', 'key_a', 10, 100, 200, day + 1000);
    insert.run('t2', 'key_a', 20, 200, 429, day + 2000);
    insert.run('t3', 'key_b', 30, 300, 200, day + 86_400_000 + 5);
    old.close();
    const store = await openStore(`sqlite:${path}`);
    try {
      const byDay = await store.summarizeUsage({ groupBy: 'day', from: day, to: day + 2 * 86_400_000 });
      assert.deepEqual(byDay.map((r) => [r.group, r.requests, r.errors, r.promptTokens, r.cost]), [
        ['2026-06-01', 2, 1, 30, 300n],
        ['2026-06-02', 1, 0, 30, 300n],
      ]);
      // And records written after the upgrade join them.
      await store.recordUsage({
        traceId: 't4', accountId: 'acct_old', keyId: 'key_b', model: 'm', provider: null, upstreamModel: null, promptTokens: 1, completionTokens: 1,
        cachedTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0, cost: 4n, status: 200, errorType: null, stream: false, latencyMs: 1, ttftMs: null,
        createdAt: day + 3000, attempts: 1, clientRequestId: null,
      });
      const byKey = await store.summarizeUsage({ groupBy: 'key', from: day, to: day + 2 * 86_400_000, accountId: 'acct_old' });
      assert.deepEqual(byKey.map((r) => [r.group, r.requests, r.cost]), [['key_b', 2, 304n], ['key_a', 2, 300n]]);
    } finally {
      await store.close();
    }
  });

  test('migration versions are unique and ascending', () => {
    const versions = SQLITE_MIGRATIONS.map((m) => m.version);
    assert.deepEqual(versions, [...versions].sort((x, y) => x - y));
    assert.equal(new Set(versions).size, versions.length);
  });

  test('an unsupported database URL is a configuration error', async () => {
    await assert.rejects(openStore('mysql://localhost/db'), (e: unknown) => e instanceof ConfigError && /database/.test(e.message));
  });
});
