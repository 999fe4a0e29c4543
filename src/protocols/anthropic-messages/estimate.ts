import { countText, estimateChatTokens } from '../../billing/estimate.js';
import type { ChatRequest, JsonObject } from '../../types/chat.js';

// The prompt estimate of a Messages request, for its hold and for count_tokens: the typed form
// counted as for any chat request, plus what the typed form does not carry (documents, server
// tools and their blocks, file-id images) counted as its JSON, so that a passed-through request's
// hold does not fall short of what the upstream will bill.

const TYPED_BLOCKS = new Set(['text', 'image', 'tool_use', 'tool_result', 'thinking', 'redacted_thinking']);

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

export function estimateMessagesTokens(req: ChatRequest, body: JsonObject): number {
  let n = estimateChatTokens(req);
  for (const m of Array.isArray(body['messages']) ? (body['messages'] as unknown[]) : []) {
    if (!isObj(m) || !Array.isArray(m['content'])) continue;
    for (const b of m['content'] as unknown[]) n += untyped(b);
  }
  for (const t of Array.isArray(body['tools']) ? (body['tools'] as unknown[]) : []) {
    if (isObj(t) && t['type'] !== undefined && t['type'] !== null && t['type'] !== 'custom') n += countText(JSON.stringify(t));
  }
  return n;
}

function untyped(b: unknown): number {
  if (!isObj(b)) return 0;
  if (b['type'] === 'tool_result' && Array.isArray(b['content'])) return (b['content'] as unknown[]).reduce<number>((s, x) => s + untyped(x), 0);
  const fileImage = b['type'] === 'image' && isObj(b['source']) && b['source']['type'] === 'file';
  if (TYPED_BLOCKS.has(String(b['type'])) && !fileImage) return 0;
  // A plain-text document is in the typed form as text already.
  if (b['type'] === 'document' && isObj(b['source']) && b['source']['type'] === 'text') return 0;
  // Base64 (a PDF) is not text: a token per four characters bounds it without running the tokenizer over megabytes.
  const source = b['source'];
  if (isObj(source) && source['type'] === 'base64' && typeof source['data'] === 'string') return Math.ceil(source['data'].length / 4) + BLOCK_FRAMING;
  return countText(JSON.stringify(b));
}

const BLOCK_FRAMING = 16;
