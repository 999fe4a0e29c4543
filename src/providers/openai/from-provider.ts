import type { TokenUsage } from '../types.js';
import type { OpenAIUsage } from './wire.js';

/**
 * OpenAI usage → the gateway's, numbers as the provider sent them; null when it sent none.
 * Whether they are believable is billing's call (billing/bill.ts), so a field that is present but
 * not a number becomes NaN rather than a silent 0 that would undercharge.
 */
export function fromUsage(u: OpenAIUsage | null | undefined): TokenUsage | null {
  if (u === null || u === undefined || typeof u !== 'object') return null;
  if (u.prompt_tokens === undefined && u.completion_tokens === undefined) return null;
  const details = u.prompt_tokens_details;
  const cached = details !== null && typeof details === 'object' && details.cached_tokens !== undefined ? details.cached_tokens : u.prompt_cache_hit_tokens;
  const reasoning = u.completion_tokens_details?.reasoning_tokens;
  return {
    promptTokens: count(u.prompt_tokens),
    completionTokens: count(u.completion_tokens),
    cachedTokens: count(cached),
    // OpenAI-compatible APIs report no prompt-cache writes (OpenAI's caching has no write charge).
    cacheWriteTokens: 0,
    reasoningTokens: count(reasoning),
  };
}

function count(v: unknown): number {
  if (v === undefined || v === null) return 0;
  return typeof v === 'number' ? v : Number.NaN;
}
