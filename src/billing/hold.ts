import { GatewayError } from '../errors.js';
import type { ModelRoute, Price } from '../routing/catalog.js';
import { utcDay, type Limiter, type Subject } from '../limits/types.js';
import type { Hold, NewHold, Store } from '../store/types.js';
import { costOf, formatUsd, tokensAffordable } from './money.js';

export interface HoldPlan {
  amount: bigint;
  /** The output cap to send upstream when the client gave none; null when the client's stands. */
  maxTokens: number | null;
}

/**
 * The most a request can cost (SPEC §4): its prompt estimate, with a margin for tokenizers that
 * count more than ours, at the input price, plus the output cap at the output price. Without a
 * cap from the client, the cap is what the available balance affords, up to the model's
 * max_output_tokens. 402 when not even the prompt, or the client's own cap, can be covered.
 */
export function planHold(route: ModelRoute, promptTokens: number, requested: number | null, available: bigint): HoldPlan {
  const promptCost = costOf(promptTokens + Math.ceil(promptTokens / 10), promptPrice(route.price));
  const afford = available >= promptCost ? tokensAffordable(available - promptCost, route.price.output) : 0;
  if (requested !== null) {
    const amount = promptCost + costOf(requested, route.price.output);
    if (amount > available) throw insufficient(available, promptCost, afford);
    return { amount, maxTokens: null };
  }
  const cap = Math.min(afford, route.maxOutputTokens);
  if (available < promptCost || cap < 1) throw insufficient(available, promptCost, afford);
  return { amount: promptCost + costOf(cap, route.price.output), maxTokens: cap };
}

/**
 * The dearest way the prompt can be billed: a provider may report every prompt token as a cache
 * write, which Anthropic prices above input (1.25× for five minutes, 2× for an hour).
 */
function promptPrice(p: Price): bigint {
  let max = p.input;
  if (p.cachedInput > max) max = p.cachedInput;
  if (p.cacheWrite > max) max = p.cacheWrite;
  return max;
}

function insufficient(available: bigint, promptCost: bigint, afford: number): GatewayError {
  const message =
    available < promptCost
      ? `Insufficient account balance: the available balance (${formatUsd(available < 0n ? 0n : available)} USD) does not cover the prompt (${formatUsd(promptCost)} USD)`
      : `Insufficient account balance: the available balance (${formatUsd(available)} USD) affords at most ${afford} output tokens for this prompt; lower max_tokens or add credit`;
  return new GatewayError('insufficient_balance', { message, limit: 'balance' });
}

/**
 * Step 5: reserves the most the request can cost from the account's balance. The store plans
 * it on the balance it reads in the same atomic step, so concurrent requests can never hold
 * more than there is. 402 when even the prompt, or the client's own cap, cannot be covered.
 */
export async function placeHold(
  store: Store,
  route: ModelRoute,
  h: { id: string; accountId: string; keyId: string; stream: boolean; promptTokens: number; requested: number | null },
): Promise<{ hold: Hold; maxTokens: number | null }> {
  let planned: HoldPlan | null = null;
  const held: NewHold = { id: h.id, accountId: h.accountId, keyId: h.keyId, model: route.id, stream: h.stream, createdAt: Date.now() };
  const r = await store.placePlannedHold(held, (available) => {
    try {
      planned = planHold(route, h.promptTokens, h.requested, available);
      return planned.amount;
    } catch {
      return null;
    }
  });
  if (r === null) throw new GatewayError('invalid_api_key');
  if ('available' in r) {
    planHold(route, h.promptTokens, h.requested, r.available); // throws the 402 that explains it
    throw new GatewayError('insufficient_balance', { limit: 'balance' });
  }
  return { hold: { ...held, amount: r.amount }, maxTokens: (planned as HoldPlan | null)?.maxTokens ?? null };
}

/**
 * Step 5b: the daily spend quotas of the key and account (429, no retry): refused when today's
 * spend + what is reserved + this hold would pass them. Returns the UTC day reserved against.
 */
export async function reserveQuota(store: Store, limiter: Limiter, subjects: Subject[], accountId: string, keyId: string, amount: bigint): Promise<string> {
  const day = utcDay(Date.now());
  const quota = await limiter.reserveSpend(subjects, amount, day, (s) =>
    store.spendSince(accountId, Date.parse(day), s.id.startsWith('key:') ? keyId : undefined),
  );
  if (!quota.ok) throw quotaExhausted(quota.subject);
  return day;
}

function quotaExhausted(s: Subject): GatewayError {
  const whose = s.id.startsWith('key:') ? 'API key' : 'account';
  return new GatewayError('quota_exhausted', {
    message: `Daily spend quota exhausted: the ${whose}'s limit of ${formatUsd(s.limits.daily_spend ?? 0n)} USD per UTC day is reached; it resets at 00:00 UTC`,
    limit: 'daily_spend',
  });
}
