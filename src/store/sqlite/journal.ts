import { closeSync, fstatSync, ftruncateSync, openSync, readdirSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Settlement, UsageRecord } from '../types.js';

// A response's last bytes may leave only once its settlement would survive the process dying
// (SPEC §4). Committing the settlement first puts a whole SQLite transaction on every response's
// critical path; appending one line to this file is a tenth of that, and is exactly as durable
// as a commit under `synchronous = NORMAL` (both live in the page cache until the OS writes them:
// a killed process loses neither, a power cut may lose both). The settlement then commits with
// its group as before. A journal belongs to one store instance (its owner id is in the file
// name); when that owner is gone, whoever recovers its holds first replays the journal: a line
// whose hold still exists is settled as the line says, then the file is removed. A line whose
// hold is gone was committed (or released) already, so replaying is idempotent.

/** Past this size the journal is emptied whenever every line in it has committed. */
const TRUNCATE_AT = 64 * 1024;

export interface JournalLine {
  hold: { id: string; accountId: string };
  cost: bigint;
  usage: UsageRecord;
}

export class SettlementJournal {
  private fd: number | null = null;
  private size = 0;
  /** Holds whose settlement is journaled and not known to be committed. */
  private readonly pending = new Set<string>();

  constructor(readonly file: string) {}

  /** Appends the settlement; false when it could not be written (the caller then waits for the commit). */
  append(st: Settlement): boolean {
    try {
      this.fd ??= openSync(this.file, 'a', 0o600);
      const line = JSON.stringify({ h: st.hold.id, a: st.hold.accountId, c: String(st.cost), u: { ...st.usage, cost: String(st.usage.cost) } }) + '\n';
      this.size += writeSync(this.fd, line);
      this.pending.add(st.hold.id);
      return true;
    } catch {
      return false;
    }
  }

  /** The settlement of this hold has committed. */
  committed(holdId: string): void {
    this.pending.delete(holdId);
    this.truncateIfDone();
  }

  /**
   * Periodic: forgets pending lines whose hold is gone from the database (a settlement kept for
   * a disk that came back, or a hold another process released), and starts a new file if this
   * one was removed from under us.
   */
  maintain(held: (holdId: string) => boolean): void {
    for (const id of this.pending) if (!held(id)) this.pending.delete(id);
    if (this.fd !== null) {
      try {
        if (fstatSync(this.fd).nlink === 0) {
          closeSync(this.fd);
          this.fd = null;
          this.size = 0;
        }
      } catch {
        this.fd = null;
      }
    }
    this.truncateIfDone();
  }

  /** On close: removes the file when everything in it has committed; else leaves it for recovery. */
  close(): boolean {
    if (this.fd === null) return this.pending.size === 0;
    closeSync(this.fd);
    this.fd = null;
    if (this.pending.size > 0) return false;
    removeQuietly(this.file);
    return true;
  }

  private truncateIfDone(): void {
    if (this.pending.size > 0 || this.size < TRUNCATE_AT || this.fd === null) return;
    try {
      ftruncateSync(this.fd, 0);
      this.size = 0;
    } catch {
      // Left as it is: a longer replay, never a wrong one.
    }
  }
}

const PREFIX = '-settle-';
const SUFFIX = '.jnl';

/** The journal file of an owner of the database at `dbPath`. */
export function journalFile(dbPath: string, owner: string): string {
  return `${dbPath}${PREFIX}${owner}${SUFFIX}`;
}

/** Every journal next to the database, with its owner. */
export function journalsOf(dbPath: string): { owner: string; file: string }[] {
  const dir = dirname(dbPath);
  const stem = basename(dbPath) + PREFIX;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((n) => n.startsWith(stem) && n.endsWith(SUFFIX))
    .map((n) => ({ owner: n.slice(stem.length, -SUFFIX.length), file: join(dir, n) }));
}

/** The lines of a journal; a line the process died while writing is not a settlement and is skipped. */
export function readJournal(file: string): JournalLine[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const out: JournalLine[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    try {
      const v = JSON.parse(line) as { h: string; a: string; c: string; u: Omit<UsageRecord, 'attempts' | 'clientRequestId'> & { cost: string; attempts?: number; clientRequestId?: string | null } };
      // Lines written before a field existed lack it.
      const usage = { ...v.u, cost: BigInt(v.u.cost), attempts: v.u.attempts ?? 0, clientRequestId: v.u.clientRequestId ?? null };
      out.push({ hold: { id: v.h, accountId: v.a }, cost: BigInt(v.c), usage });
    } catch {
      // A torn last line: that settlement was never durable, and its response never ended.
    }
  }
  return out;
}

export function removeQuietly(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    // Already gone.
  }
}
