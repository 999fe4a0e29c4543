import { ConfigError } from '../config/load.js';
import { SqliteStore } from './sqlite/index.js';
import type { Store, StoreOptions } from './types.js';

/** `sqlite:PATH` or `sqlite::memory:`. PostgreSQL (`postgres://…`) sits behind the same interface. */
export async function openStore(url: string, opts: StoreOptions = {}): Promise<Store> {
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length);
    const store = new SqliteStore(path === ':memory:' ? ':memory:' : path, opts);
    await store.migrate();
    return store;
  }
  throw new ConfigError(`database: ${url.split(':')[0]} is not supported by this build yet; use sqlite:PATH`);
}

/** The database URL as logs and the CLI show it: a password in a URL is masked. */
export function describeDatabase(url: string): string {
  return url.replace(/\/\/[^@]*@/, '//***@');
}
