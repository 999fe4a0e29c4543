import { usageObject, type Bill } from '../billing/bill.js';
import { usdNumber } from '../billing/money.js';
import type { JsonObject } from '../providers/types.js';

/**
 * The usage a client is shown: the upstream's own object (with its details) when that is what
 * was billed, else what was billed; either way with its cost. An upstream that sent no usage, or
 * nonsense, never leaves the client without one.
 */
export function billedUsage(raw: unknown, b: Bill): JsonObject {
  const u = b.reported && raw !== null && typeof raw === 'object' && !Array.isArray(raw) ? (raw as JsonObject) : usageObject(b.usage);
  u['cost'] = usdNumber(b.cost);
  return u;
}

/** A completion or embeddings result as the client sees it: the model it asked for, and what was billed. */
export function presentResult(body: JsonObject, model: string, b: Bill): void {
  body['model'] = model;
  body['usage'] = billedUsage(body['usage'], b);
}
