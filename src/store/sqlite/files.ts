import { chmodSync, closeSync, existsSync, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname } from 'node:path';

// The database holds key hashes, balances and usage: readable by its owner only.

/**
 * Before opening: creates the missing directories 0700 (a directory that exists is the
 * operator's choice and keeps its mode) and a new database file 0600, so that SQLite creates
 * its -wal and -shm files with the same mode.
 */
export function prepareDatabaseFile(path: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  if (!existsSync(path)) {
    try {
      closeSync(openSync(path, 'wx', 0o600));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
}

/** After opening: database files made before (or by another umask) are narrowed to 0600 too. */
export function restrictDatabaseFiles(path: string): void {
  for (const f of [path, `${path}-wal`, `${path}-shm`]) {
    try {
      chmodSync(f, 0o600);
    } catch {
      // Not there (yet), or not ours to change: SQLite gives new ones the database file's mode.
    }
  }
}

/** The identity of the file at a path: device and inode, or null when there is none. */
export function fileIdentity(path: string): string | null {
  try {
    const st = statSync(path);
    return `${st.dev}:${st.ino}`;
  } catch {
    return null;
  }
}
