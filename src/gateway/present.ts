import { usdNumber } from '../billing/money.js';
import type { JsonObject } from '../providers/types.js';

/** A completion or embeddings result as the client sees it: the model it asked for, and what the request cost. */
export function presentResult(body: JsonObject, model: string, cost: bigint): void {
  body['model'] = model;
  const usage = body['usage'];
  if (usage !== null && typeof usage === 'object') (usage as JsonObject)['cost'] = usdNumber(cost);
}
