import { GatewayError } from '../errors.js';
import type { ModelRoute } from '../routing/catalog.js';
import { utcDay, type Limiter, type Subject } from '../limits/types.js';
import type { Account, Store } from '../store/types.js';
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
  const promptCost = costOf(promptTokens + Math.ceil(promptTokens / 10), route.price.input);
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

function insufficient(available: bigint, promptCost: bigint, afford: number): GatewayError {
  const message =
    available < promptCost
      ? `Insufficient account balance: the available balance (${formatUsd(available < 0n ? 0n : available)} USD) does not cover the prompt (${formatUsd(promptCost)} USD)`
      : `Insufficient account balance: the available balance (${formatUsd(available)} USD) affords at most ${afford} output tokens for this prompt; lower max_tokens or add credit`;
  return new GatewayError('insufficient_balance', { message });
}

export interface PlacedHold extends HoldPlan {
  /** The UTC day whose spend quota the hold was reserved against. */
  day: string;
}

/**
 * Step 5: reserves the most the request can cost. First against the daily spend quotas of the
 * key and account (429, no retry), then against the account's balance (402), atomically in the
 * store. The plan depends on the available balance, which concurrent requests move, so a hold the
 * store refuses is planned again on the fresher balance.
 */
export async function placeHold(
  store: Store,
  limiter: Limiter,
  subjects: Subject[],
  route: ModelRoute,
  account: Account,
  h: { id: string; keyId: string; stream: boolean; promptTokens: number; requested: number | null },
): Promise<PlacedHold> {
  let available = account.balance - account.held;
  const day = utcDay(Date.now());
  for (let attempt = 0; ; attempt++) {
    const plan = planHold(route, h.promptTokens, h.requested, available);
    const quota = await limiter.reserveSpend(subjects, plan.amount, day, (s) =>
      store.spendSince(account.id, Date.parse(day), s.id.startsWith('key:') ? h.keyId : undefined),
    );
    if (!quota.ok) throw quotaExhausted(quota.subject);
    const ok = await store.placeHold({
      id: h.id, accountId: account.id, keyId: h.keyId, model: route.id, amount: plan.amount, stream: h.stream, createdAt: Date.now(),
    });
    if (ok) return { ...plan, day };
    await limiter.settleSpend(subjects, plan.amount, 0n, day);
    const fresh = await store.getAccount(account.id);
    if (fresh === null || attempt >= 3) {
      throw new GatewayError('insufficient_balance', { message: 'Insufficient account balance: the balance is held by requests in flight' });
    }
    available = fresh.balance - fresh.held;
  }
}

function quotaExhausted(s: Subject): GatewayError {
  const whose = s.id.startsWith('key:') ? 'API key' : 'account';
  return new GatewayError('quota_exhausted', {
    message: `Daily spend quota exhausted: the ${whose}'s limit of ${formatUsd(s.limits.daily_spend ?? 0n)} USD per UTC day is reached; it resets at 00:00 UTC`,
  });
}
