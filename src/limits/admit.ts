import { GatewayError } from '../errors.js';
import type { ApiKey, Limits } from '../store/types.js';
import { formatDuration, type LimitState, type Limiter, type Subject, type Ticket } from './types.js';

export interface Admission {
  ticket: Ticket;
  subjects: Subject[];
}

const hasLimits = (l: Limits | null): l is Limits =>
  l !== null && (l.rpm !== undefined || l.tpm !== undefined || l.concurrency !== undefined || l.daily_spend !== undefined);

/** The key's limits first (its state fills the rate-limit headers), then its account's. */
export function subjectsOf(key: ApiKey, accountLimits: Limits | null): Subject[] {
  const out: Subject[] = [];
  if (hasLimits(key.limits)) out.push({ id: `key:${key.id}`, limits: key.limits });
  if (hasLimits(accountLimits)) out.push({ id: `acct:${key.accountId}`, limits: accountLimits });
  return out;
}

const NAMES = { rpm: 'requests per minute', tpm: 'tokens per minute', concurrency: 'concurrent requests' } as const;

/**
 * Step 4: rpm, tpm and concurrency of the key and its account. 429 naming the limit, with
 * `retry-after` set to when it frees. Sets the OpenAI rate-limit headers on `headers`, refused or not.
 */
export async function admit(limiter: Limiter, subjects: Subject[], tokens: number, requestId: string, headers: Record<string, string>): Promise<Admission | null> {
  if (subjects.length === 0) return null;
  const r = await limiter.admit({ subjects, requestId, tokens, now: Date.now() });
  rateLimitHeaders(r.state, headers);
  if (r.ok) return { ticket: r.ticket, subjects };
  const whose = r.subject.id.startsWith('key:') ? 'API key' : 'account';
  const limit = r.subject.limits[r.limit]!;
  const message =
    r.limit === 'tpm' && tokens > limit
      ? `This request needs about ${tokens} tokens, more than the ${whose}'s limit of ${limit} tokens per minute`
      : `Rate limit exceeded: the ${whose}'s limit of ${limit} ${NAMES[r.limit]}. Please slow down your requests`;
  throw new GatewayError('rate_limited', { message, retryAfterMs: Math.max(1, r.retryAfterMs), headers, limit: r.limit });
}

/**
 * The rate-limit headers of a response that admitted nothing (a listing, a refusal before
 * admission): the key's windows as they stand. Nothing to do for a key without rpm or tpm.
 */
export async function peekHeaders(limiter: Limiter, key: ApiKey, headers: Record<string, string>): Promise<void> {
  const l = key.limits;
  if (l === null || (l.rpm === undefined && l.tpm === undefined)) return;
  rateLimitHeaders(await limiter.peek({ id: `key:${key.id}`, limits: l }, Date.now()), headers);
}

export function rateLimitHeaders(state: LimitState, headers: Record<string, string>): void {
  if (state.requests !== undefined) {
    headers['x-ratelimit-limit-requests'] = String(state.requests.limit);
    headers['x-ratelimit-remaining-requests'] = String(state.requests.remaining);
    headers['x-ratelimit-reset-requests'] = formatDuration(state.requests.resetMs);
  }
  if (state.tokens !== undefined) {
    headers['x-ratelimit-limit-tokens'] = String(state.tokens.limit);
    headers['x-ratelimit-remaining-tokens'] = String(state.tokens.remaining);
    headers['x-ratelimit-reset-tokens'] = formatDuration(state.tokens.resetMs);
  }
}
