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

  test('migration versions are unique and ascending', () => {
    const versions = SQLITE_MIGRATIONS.map((m) => m.version);
    assert.deepEqual(versions, [...versions].sort((x, y) => x - y));
    assert.equal(new Set(versions).size, versions.length);
  });

  test('an unsupported database URL is a configuration error', async () => {
    await assert.rejects(openStore('mysql://localhost/db'), (e: unknown) => e instanceof ConfigError && /database/.test(e.message));
  });
});
