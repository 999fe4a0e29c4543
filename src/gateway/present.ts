import { usdNumber } from '../billing/money.js';
import { parseSpan } from '../providers/raw-json.js';
import type { JsonObject, RawJson, Span } from '../providers/types.js';

/** A completion or embeddings result as the client sees it: the model it asked for, and what the request cost. */
export function presentResult(body: JsonObject, model: string, cost: bigint): void {
  body['model'] = model;
  const usage = body['usage'];
  if (usage !== null && typeof usage === 'object') (usage as JsonObject)['cost'] = usdNumber(cost);
}

/**
 * The same for an answer relayed as the upstream's bytes: the pieces to write, the upstream's
 * bytes untouched but for the top-level `model` (added if missing) and `usage` (with `cost`).
 */
export function presentRaw(raw: RawJson, model: string, cost: bigint): Buffer[] {
  const edits: { span: Span; text: string }[] = [];
  const name = JSON.stringify(model);
  for (const span of raw.model) edits.push({ span, text: name });
  for (const span of raw.usage) {
    const usage = parseSpan(raw.bytes, span);
    if (usage === null || typeof usage !== 'object' || Array.isArray(usage)) continue;
    (usage as JsonObject)['cost'] = usdNumber(cost);
    edits.push({ span, text: JSON.stringify(usage) });
  }
  if (raw.model.length === 0) edits.push({ span: [raw.close, raw.close], text: `${raw.empty ? '' : ','}"model":${name}` });
  edits.sort((x, y) => x.span[0] - y.span[0]);
  const pieces: Buffer[] = [];
  let at = 0;
  for (const { span, text } of edits) {
    pieces.push(raw.bytes.subarray(at, span[0]), Buffer.from(text));
    at = span[1];
  }
  pieces.push(raw.bytes.subarray(at));
  return pieces;
}
