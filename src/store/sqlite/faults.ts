import type { Fault } from './group-commit.js';

export { storeUnavailable } from '../unavailable.js';

/** Thrown instead of writing while the database file is not the one this store opened. */
export class DatabaseFileGone extends Error {
  constructor(readonly path: string) {
    super(`the database file ${path} was deleted or replaced`);
    this.name = 'DatabaseFileGone';
  }
}

// SQLite result codes (and their extended forms, e.g. SQLITE_IOERR_WRITE) that say the database
// cannot be written now, whatever is written: the storage, not the statement, is at fault.
const STORAGE = /^SQLITE_(FULL|IOERR|READONLY|CANTOPEN|CORRUPT|NOTADB|PROTOCOL|NOMEM|PERM)/;
const LOCKED = /^SQLITE_(BUSY|LOCKED)/;

/** Why a write failed: another connection's lock, the storage, or null when the statement itself failed. */
export function classify(e: unknown): Fault | null {
  if (e instanceof DatabaseFileGone) return 'storage';
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return null;
  if (LOCKED.test(code)) return 'busy';
  return STORAGE.test(code) ? 'storage' : null;
}
