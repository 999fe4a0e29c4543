import { placeHold, reserveQuota } from '../billing/hold.js';
import type { Meter } from '../billing/meter.js';
import { admit, subjectsOf } from '../limits/admit.js';
import type { ModelRoute } from '../routing/catalog.js';
import type { ApiKey } from '../store/types.js';
import type { Exchange, Gateway } from './gateway.js';

/**
 * Steps 4 and 5 of the request path: admit (rpm, tpm and concurrency of the key and its
 * account), hold the most the request can cost from the balance, then reserve that against the
 * daily spend quotas. Each result goes on the meter as soon as it exists, so a failure at any
 * later point gives back exactly what was taken. Returns the output cap for the upstream when the
 * client set none.
 */
export async function reserve(
  gw: Gateway,
  ex: Exchange,
  key: ApiKey,
  meter: Meter,
  route: ModelRoute,
  r: { promptTokens: number; requested: number | null },
): Promise<number | null> {
  meter.subjects = subjectsOf(key, await gw.keys.accountLimits(key.accountId));
  meter.admission = await admit(gw.limiter, meter.subjects, r.promptTokens + (r.requested ?? 0), ex.traceId, ex.headers);
  const placed = await placeHold(gw.store, route, {
    id: ex.traceId, accountId: key.accountId, keyId: key.id, stream: meter.stream, promptTokens: r.promptTokens, requested: r.requested,
  });
  meter.hold = placed.hold;
  if (meter.subjects.length > 0) {
    meter.quotaDay = await reserveQuota(gw.store, gw.limiter, meter.subjects, key.accountId, key.id, placed.hold.amount);
  }
  return placed.maxTokens;
}
