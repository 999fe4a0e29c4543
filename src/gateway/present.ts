import { usageObject, type Bill } from '../billing/bill.js';
import { usdNumber } from '../billing/money.js';
import { parseSpan } from '../providers/raw-json.js';
import type { JsonObject, RawJson, Span } from '../providers/types.js';

/**
 * The OpenAI usage a client is shown: the upstream's own object (with its details) when that is
 * what was billed and it is OpenAI's shape, else what was billed; either way with its cost. An
 * upstream that sent no usage, or nonsense, never leaves the client without one.
 */
export function billedUsage(b: Bill, raw: unknown = b.usage.raw): JsonObject {
  const u = b.reported && isOpenAIUsage(raw) ? { ...raw } : usageObject(b.usage);
  u['cost'] = usdNumber(b.cost);
  return u;
}

function isOpenAIUsage(raw: unknown): raw is JsonObject {
  return raw !== null && typeof raw === 'object' && !Array.isArray(raw) && 'prompt_tokens' in raw;
}

/** A parsed OpenAI body (an embeddings answer) as the client sees it: the model it asked for, and what was billed. */
export function presentResult(body: JsonObject, model: string, b: Bill): void {
  body['model'] = model;
  body['usage'] = billedUsage(b, body['usage']);
}

/**
 * The same for an answer relayed as the upstream's bytes: the pieces to write, the upstream's
 * bytes untouched but for the top-level `model` and `usage` (each added if missing).
 */
export function presentRaw(raw: RawJson, model: string, b: Bill): Buffer[] {
  const edits: { span: Span; text: string }[] = [];
  const name = JSON.stringify(model);
  for (const span of raw.model) edits.push({ span, text: name });
  for (const span of raw.usage) edits.push({ span, text: JSON.stringify(billedUsage(b, parseSpan(raw.bytes, span))) });
  const added: string[] = [];
  if (raw.model.length === 0) added.push(`"model":${name}`);
  if (raw.usage.length === 0) added.push(`"usage":${JSON.stringify(billedUsage(b, null))}`);
  if (added.length > 0) edits.push({ span: [raw.close, raw.close], text: `${raw.empty ? '' : ','}${added.join(',')}` });
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
