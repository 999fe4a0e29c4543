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
    const old = new Database(path);
    old.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
    for (const m of SQLITE_MIGRATIONS.filter((m) => m.version <= 4)) {
      old.exec(m.sql);
      old.prepare('INSERT INTO schema_migrations VALUES (?, ?, 0)').run(m.version, m.name);
    }
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

  test('migration versions are unique and ascending', () => {
    const versions = SQLITE_MIGRATIONS.map((m) => m.version);
    assert.deepEqual(versions, [...versions].sort((x, y) => x - y));
    assert.equal(new Set(versions).size, versions.length);
  });

  test('an unsupported database URL is a configuration error', async () => {
    await assert.rejects(openStore('mysql://localhost/db'), (e: unknown) => e instanceof ConfigError && /database/.test(e.message));
  });
});
