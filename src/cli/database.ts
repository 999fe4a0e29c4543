import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadConfig } from '../config/load.js';
import { describeDatabase, openStore } from '../store/open.js';
import type { Store } from '../store/types.js';

export interface CliStore {
  store: Store;
  /** The database as shown to the operator (credentials masked). */
  database: string;
  /** True when this command created the SQLite file. */
  created: boolean;
}

/**
 * The database a command works on, resolved exactly as `serve` resolves it (--config,
 * TOKEN360_CONFIG, ./token360.yaml, TOKEN360_DATABASE_URL) and named on stderr, so that an operator
 * in the wrong directory sees at once which database the command touched; stdout stays clean
 * for --json. Only `serve` and `migrate` may create a database: anywhere else a missing file means
 * the command was run in the wrong place, and a fresh empty database would hide that.
 */
export async function openCliStore(configPath: string | undefined, opts: { create: boolean }): Promise<CliStore> {
  const { config, source } = loadConfig({ path: configPath });
  const url = config.database;
  const fromEnv = (process.env['TOKEN360_DATABASE_URL'] ?? '') !== '';
  const file = url.startsWith('sqlite:') && url !== 'sqlite::memory:' ? resolve(url.slice('sqlite:'.length)) : null;
  const database = file === null ? describeDatabase(url) : `sqlite:${file}`;
  process.stderr.write(`token360: database ${database} (from ${fromEnv ? 'TOKEN360_DATABASE_URL' : (source ?? 'the built-in default')})\n`);
  const exists = file === null || existsSync(file);
  if (!exists && !opts.create) {
    throw new Error(
      `no database at ${file}: run \`token360 serve\` or \`token360 migrate\` to create it, or name an existing one with --config or TOKEN360_DATABASE_URL`,
    );
  }
  const store = await openStore(url, {
    leaseMs: config.store.lease_ms,
    lockTimeoutMs: config.store.lock_timeout_ms,
    poolSize: config.store.pool_size,
    connectTimeoutMs: config.store.connect_timeout_ms,
  });
  return { store, database, created: !exists };
}

/** `token360 migrate`: creates the database if needed and applies pending migrations, saying what it did. */
export async function migrateCommand(configPath: string | undefined, json: boolean): Promise<void> {
  const { store, database, created } = await openCliStore(configPath, { create: true });
  try {
    const applied = await store.migrate();
    if (json) {
      console.log(JSON.stringify({ database, created, applied }, null, 2));
      return;
    }
    if (created) console.log(`created ${database}`);
    for (const m of applied) console.log(`applied migration ${m.version}: ${m.name}`);
    if (applied.length === 0) console.log(`${database} is up to date`);
  } finally {
    await store.close();
  }
}
