import type { TokenUsage } from '../types.js';
import type { OpenAIUsage } from './wire.js';

/** OpenAI usage → the gateway's; null when the provider sent none or sent nonsense. */
export function fromUsage(u: OpenAIUsage | null | undefined): TokenUsage | null {
  if (u === null || u === undefined || typeof u !== 'object') return null;
  const prompt = count(u.prompt_tokens);
  const completion = count(u.completion_tokens);
  if (prompt === null && completion === null) return null;
  const cached = count(u.prompt_tokens_details?.cached_tokens) ?? count(u.prompt_cache_hit_tokens) ?? 0;
  return { promptTokens: prompt ?? 0, completionTokens: completion ?? 0, cachedTokens: Math.min(cached, prompt ?? 0) };
}

function count(v: unknown): number | null {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : null;
}
