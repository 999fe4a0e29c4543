import type { TokenUsage } from '../providers/types.js';
import type { Price } from '../routing/catalog.js';
import { costOfUsage } from './cost.js';

/**
 * Output the gateway relays past the cap it set before it cuts a stream: our tokenizer (o200k)
 * and a provider's differ by a few percent, so a model that stopped at its own count of
 * `max_tokens` must not be cut short by ours. 10 %, at least 16 tokens.
 */
export function outputAllowance(cap: number): number {
  return cap + Math.max(16, Math.ceil(cap / 10));
}

export interface Bill {
  /** The usage charged: the upstream's, or the delivered output counted. */
  usage: TokenUsage;
  /** What the request costs: never more than its hold. */
  cost: bigint;
  /** The upstream reported usage and it was not believable (logged; the count was billed instead). */
  distrusted: boolean;
  /** The upstream's own usage was billed. */
  reported: boolean;
}

export interface BillInput {
  /** What the upstream reported, numbers unchecked; null when it reported nothing. */
  reported: TokenUsage | null;
  /** The prompt estimate and the delivered output counted with our tokenizer; called only when needed. */
  counted: () => TokenUsage;
  price: Price;
  /** The hold: the most this request may cost. */
  hold: bigint;
  /** The output cap the gateway set (the client's, or what the balance affords). */
  outputCap: number;
}

/**
 * What a request is charged (SPEC §4): the upstream's usage when it is believable, else what was
 * delivered, counted; and never more than the hold, whatever an upstream claims. Usage is not
 * believable when a count is negative, fractional or not a number, when more output is claimed
 * than the cap allowed, or when it would cost more than the hold.
 */
export function bill(b: BillInput): Bill {
  const r = b.reported;
  if (r !== null && believable(r, b.outputCap)) {
    const cost = costOfUsage(r, b.price);
    if (cost <= b.hold) return { usage: r, cost, distrusted: false, reported: true };
  }
  const usage = b.counted();
  const cost = costOfUsage(usage, b.price);
  return { usage, cost: cost > b.hold ? b.hold : cost, distrusted: r !== null, reported: false };
}

function believable(u: TokenUsage, outputCap: number): boolean {
  return (
    isCount(u.promptTokens) &&
    isCount(u.completionTokens) &&
    isCount(u.cachedTokens) &&
    isCount(u.cacheWriteTokens) &&
    isCount(u.reasoningTokens) &&
    u.cachedTokens + u.cacheWriteTokens <= u.promptTokens &&
    u.reasoningTokens <= u.completionTokens &&
    u.completionTokens <= outputAllowance(outputCap)
  );
}

const isCount = (n: number): boolean => Number.isSafeInteger(n) && n >= 0;

/** The OpenAI `usage` object of what was billed, for a client whose upstream sent none or sent nonsense. */
export function usageObject(u: TokenUsage): Record<string, unknown> {
  return {
    prompt_tokens: u.promptTokens,
    completion_tokens: u.completionTokens,
    total_tokens: u.promptTokens + u.completionTokens,
    prompt_tokens_details: { cached_tokens: u.cachedTokens },
    completion_tokens_details: { reasoning_tokens: u.reasoningTokens },
    ...(u.cacheWriteTokens > 0 ? { cache_creation_input_tokens: u.cacheWriteTokens } : {}),
  };
}
