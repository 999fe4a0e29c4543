import { ConfigError } from '../config/load.js';
import { PostgresStore, type PostgresOptions } from './postgres/index.js';
import { SqliteStore } from './sqlite/index.js';
import type { Store } from './types.js';

/** `sqlite:PATH`, `sqlite::memory:`, or `postgres://…` / `postgresql://…` (a libpq connection URL). */
export async function openStore(url: string, opts: PostgresOptions = {}): Promise<Store> {
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length);
    return SqliteStore.open(path === ':memory:' ? ':memory:' : path, opts);
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) return PostgresStore.open(url, opts);
  throw new ConfigError(`database: ${url.split(':')[0]} is not supported; use sqlite:PATH or postgres://USER@HOST/DATABASE`);
}

/** The database URL as logs and the CLI show it: a password in a URL is masked. */
export function describeDatabase(url: string): string {
  return url.replace(/\/\/[^@]*@/, '//***@');
}
