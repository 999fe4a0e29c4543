import { badRequest } from '../../errors.js';
import type { JsonObject } from '../../types/chat.js';
import { UpstreamError } from '../upstream-error.js';
import type { GeminiBatchEmbedResponse, GeminiEmbedResponse } from './wire.js';

// OpenAI's embeddings request and answer ↔ Gemini's embedContent (one input) and
// batchEmbedContents (several). Gemini embeds text only: token-array inputs are refused (400)
// rather than decoded with a tokenizer that is not the model's.

export interface GeminiEmbedPlan {
  /** `embedContent` or `batchEmbedContents`. */
  method: 'embedContent' | 'batchEmbedContents';
  body: JsonObject;
  base64: boolean;
  count: number;
}

export function toEmbedRequest(body: JsonObject, modelPath: string): GeminiEmbedPlan {
  const input = body['input'];
  const texts = typeof input === 'string' ? [input] : Array.isArray(input) && input.length > 0 && input.every((s) => typeof s === 'string') ? (input as string[]) : null;
  if (texts === null) {
    const tokens = Array.isArray(input) && input.length > 0 && input.every((x) => typeof x === 'number' || Array.isArray(x));
    throw badRequest(tokens ? 'Token-array input is not supported for this model; send text' : 'input must be a string or a non-empty array of strings', 'input');
  }
  const dims = body['dimensions'];
  if (dims !== undefined && (typeof dims !== 'number' || !Number.isInteger(dims) || dims < 1)) throw badRequest('dimensions must be a positive integer', 'dimensions');
  const fmt = body['encoding_format'];
  if (fmt !== undefined && fmt !== 'float' && fmt !== 'base64') throw badRequest("encoding_format must be 'float' or 'base64'", 'encoding_format');
  const one = (text: string): JsonObject => {
    const req: JsonObject = { content: { parts: [{ text }] } };
    if (dims !== undefined) req['outputDimensionality'] = dims;
    return req;
  };
  const base64 = fmt === 'base64';
  if (typeof input === 'string') return { method: 'embedContent', body: one(texts[0]!), base64, count: 1 };
  return { method: 'batchEmbedContents', body: { requests: texts.map((t) => ({ model: modelPath, ...one(t) })) }, base64, count: texts.length };
}

/** Gemini's vectors as OpenAI's list; usage is null (Gemini reports none: the gateway counts the input). */
export function fromEmbedResponse(res: GeminiEmbedResponse & GeminiBatchEmbedResponse, plan: GeminiEmbedPlan, model: string): JsonObject {
  const vectors = plan.method === 'embedContent' ? [res.embedding?.values] : (res.embeddings ?? []).map((e) => e?.values);
  if (vectors.length !== plan.count || !vectors.every((v) => Array.isArray(v) && v.every((x) => typeof x === 'number'))) {
    throw new UpstreamError('protocol', 'upstream sent embeddings that do not match the inputs');
  }
  const data = (vectors as number[][]).map((v, index) => ({ object: 'embedding', index, embedding: plan.base64 ? float32Base64(v) : v }));
  return { object: 'list', data, model, usage: null };
}

/** As OpenAI encodes `encoding_format: base64`: the vector as little-endian float32, in base64. */
export function float32Base64(v: number[]): string {
  const buf = Buffer.allocUnsafe(v.length * 4);
  v.forEach((x, i) => buf.writeFloatLE(x, i * 4));
  return buf.toString('base64');
}
