import type { Limits } from '../store/types.js';

// One limiter interface, two implementations: in-process (limits/memory.ts, the embedded
// default) and Redis (limits/redis.ts, shared by every replica). Both pass test/limits.test.ts.
//
// Windows are sliding logs, not fixed buckets: "rpm: 60" means no 60-second span ever sees more
// than 60 admissions, and a burst of twice the limit admits exactly the limit.

export const WINDOW_MS = 60_000;

/** A key or an account, each with its own limits. */
export interface Subject {
  /** `key:<id>` or `acct:<id>` */
  id: string;
  limits: Limits;
}

export interface AdmitRequest {
  subjects: Subject[];
  /** Unique per request (the traceId). */
  requestId: string;
  /** Tokens counted against tpm at admission: the prompt estimate plus the requested output. */
  tokens: number;
  now: number;
}

/** What the rate-limit headers report, for the first subject (the key). */
export interface WindowState {
  limit: number;
  remaining: number;
  /** Until the oldest admission in the window leaves it. */
  resetMs: number;
}

export interface LimitState {
  requests?: WindowState;
  tokens?: WindowState;
}

export type LimitName = 'rpm' | 'tpm' | 'concurrency';

export interface Ticket {
  requestId: string;
  subjects: Subject[];
  tokens: number;
}

export type AdmitResult =
  | { ok: true; ticket: Ticket; state: LimitState }
  | { ok: false; limit: LimitName; subject: Subject; retryAfterMs: number; state: LimitState };

export type SpendResult = { ok: true } | { ok: false; subject: Subject };

export interface Limiter {
  readonly kind: 'memory' | 'redis';
  /** Checks every subject's rpm, tpm and concurrency and records the request only if all pass: atomically. */
  admit(req: AdmitRequest): Promise<AdmitResult>;
  /** The subject's rpm and tpm windows as they stand, recording nothing (headers of responses that admit nothing). */
  peek(subject: Subject, now: number): Promise<LimitState>;
  /** The request ended: frees its concurrency slot and corrects its tpm entry to the actual tokens. */
  release(ticket: Ticket, actualTokens: number, now: number): Promise<void>;
  /**
   * Reserves `amount` of each subject's daily spend quota for the UTC day `day`: refused when
   * today's spend + reserved + amount would pass it. `spentToday` gives the recorded spend when
   * the limiter has no figure yet for that subject and day.
   */
  reserveSpend(subjects: Subject[], amount: bigint, day: string, spentToday: (s: Subject) => Promise<bigint>): Promise<SpendResult>;
  /** Turns a reservation into the actual spend. */
  settleSpend(subjects: Subject[], reserved: bigint, actual: bigint, day: string): Promise<void>;
  /** Whether the limiter's backing service answers now (always true in process): `/readyz` asks. */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

/** The UTC day, `YYYY-MM-DD`. */
export function utcDay(now: number): string {
  return new Date(now).toISOString().slice(0, 10);
}

/** OpenAI's reset format: `12ms`, `1s`, `1.5s`, `6m0s`. */
export function formatDuration(ms: number): string {
  const v = Math.max(0, Math.ceil(ms));
  if (v < 1000) return `${v}ms`;
  if (v < 60_000) return `${trim(v / 1000)}s`;
  const m = Math.floor(v / 60_000);
  return `${m}m${trim((v - m * 60_000) / 1000)}s`;
}

const trim = (n: number): string => String(Math.round(n * 1000) / 1000);
