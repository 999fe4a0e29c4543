import { placeHold, reserveQuota } from '../billing/hold.js';
import { admit as admitLimits, subjectsOf } from '../limits/admit.js';
import type { ModelRoute } from '../routing/catalog.js';
import type { RequestContext } from './context.js';
import type { Estimate } from './endpoint.js';
import type { Gateway } from './gateway.js';

// Steps admit and hold of the pipeline. Each result goes on the context as soon as it exists,
// so that a failure at any later point gives back exactly what was taken.

/** Admit: rpm, tpm and concurrency of the key and its account; the rate-limit headers go on the exchange. */
export async function admit<P>(gw: Gateway, ctx: RequestContext<P>, e: Estimate): Promise<void> {
  ctx.subjects = subjectsOf(ctx.key, await gw.keys.accountLimits(ctx.key.accountId));
  const requested = e.maxOutput === null ? 0 : e.maxOutput * e.choices;
  ctx.admission = await admitLimits(gw.limiter, ctx.subjects, e.promptTokens + requested, ctx.ex.traceId, ctx.ex.headers);
}

/**
 * Hold: the most the request can cost, from the balance, then reserved against the daily spend
 * quotas. Sets the output cap the hold covers and the cap per choice sent upstream: the
 * client's, or what the balance affords divided among the choices.
 */
export async function hold<P>(gw: Gateway, ctx: RequestContext<P>, route: ModelRoute, e: Estimate): Promise<void> {
  const requested = e.maxOutput === null ? null : e.maxOutput * e.choices;
  const key = ctx.key;
  const placed = await placeHold(gw.store, route, {
    id: ctx.ex.traceId, accountId: key.accountId, keyId: key.id, stream: ctx.stream, promptTokens: e.promptTokens, requested,
  });
  ctx.hold = placed.hold;
  gw.signals.holdPlaced();
  if (ctx.subjects.length > 0) {
    ctx.quotaDay = await reserveQuota(gw.store, gw.limiter, ctx.subjects, key.accountId, key.id, placed.hold.amount);
  }
  ctx.outputCap = requested ?? placed.maxTokens ?? route.maxOutputTokens;
  ctx.maxTokens = e.maxOutput ?? (placed.maxTokens === null ? null : Math.max(1, Math.floor(placed.maxTokens / e.choices)));
}
