import { countTokens } from 'gpt-tokenizer';
import type { ChatRequest, ContentPart } from '../types/chat.js';

// Prompt token estimates for holds and for the demo provider's usage. OpenAI's own accounting:
// each message costs its content plus about four tokens of framing, and the reply is primed with
// three. Images are counted at the cost of a large high-detail image, so a hold never falls short
// of one. The tokenizer is o200k_base; other providers' tokenizers differ by a few percent, which
// the hold's margin (billing/hold.ts) absorbs.

const PER_MESSAGE = 4;
const REPLY_PRIMER = 3;
const IMAGE_TOKENS = 1105;

/**
 * The tokenizer's merge step grows with the square of a run without whitespace (64k letters take
 * seconds, on the event loop), so long texts are counted in pieces of at most this many UTF-16
 * units, cut at whitespace where there is some. A cut adds at most a token or so per piece.
 */
const PIECE = 1024;

export function countText(text: string): number {
  if (text.length <= PIECE) return text.length === 0 ? 0 : countTokens(text);
  let n = 0;
  for (let start = 0; start < text.length; ) {
    let end = Math.min(start + PIECE, text.length);
    if (end < text.length) {
      // Cut before the last whitespace of the window, so that a word keeps its leading space.
      const ws = lastWhitespace(text, start + PIECE / 2, end);
      if (ws > start) end = ws;
      // Never split a surrogate pair.
      else if (isHighSurrogate(text.charCodeAt(end - 1))) end--;
    }
    n += countTokens(text.slice(start, end));
    start = end;
  }
  return n;
}

function lastWhitespace(text: string, from: number, to: number): number {
  for (let i = to - 1; i >= from; i--) {
    const c = text.charCodeAt(i);
    if (c === 32 || c === 10 || c === 9 || c === 13) return i;
  }
  return -1;
}

const isHighSurrogate = (c: number): boolean => c >= 0xd800 && c <= 0xdbff;

export function estimatePromptTokens(body: Record<string, unknown>): number {
  let total = REPLY_PRIMER;
  const messages = body['messages'];
  if (Array.isArray(messages)) {
    for (const m of messages as unknown[]) {
      total += PER_MESSAGE;
      if (m === null || typeof m !== 'object') continue;
      const msg = m as Record<string, unknown>;
      total += contentTokens(msg['content']);
      if (typeof msg['name'] === 'string') total += countText(msg['name']);
      if (msg['tool_calls'] !== undefined) total += countText(JSON.stringify(msg['tool_calls']));
    }
  }
  if (body['tools'] !== undefined) total += countText(JSON.stringify(body['tools']));
  if (body['functions'] !== undefined) total += countText(JSON.stringify(body['functions']));
  const rf = body['response_format'];
  if (rf !== null && typeof rf === 'object' && (rf as Record<string, unknown>)['json_schema'] !== undefined) {
    total += countText(JSON.stringify((rf as Record<string, unknown>)['json_schema']));
  }
  return total;
}

function contentTokens(content: unknown): number {
  if (typeof content === 'string') return countText(content);
  if (!Array.isArray(content)) return 0;
  let n = 0;
  for (const part of content as unknown[]) {
    if (part === null || typeof part !== 'object') continue;
    const p = part as Record<string, unknown>;
    if (typeof p['text'] === 'string') n += countText(p['text']);
    else if (p['type'] === 'image_url' || p['type'] === 'input_image') n += IMAGE_TOKENS;
    else if (p['type'] === 'input_audio' || p['type'] === 'file') n += IMAGE_TOKENS;
  }
  return n;
}

/**
 * The same estimate over the typed form, for requests that did not arrive as OpenAI chat
 * completions (and the demo provider's usage): for text messages it gives the same count.
 */
export function estimateChatTokens(req: ChatRequest): number {
  let total = REPLY_PRIMER;
  for (const m of req.messages) {
    total += PER_MESSAGE;
    if (m.content !== null) total += typeof m.content === 'string' ? countText(m.content) : partTokens(m.content);
    if ((m.role === 'user' || m.role === 'assistant') && m.name !== undefined) total += countText(m.name);
    if (m.role === 'assistant') {
      for (const t of m.toolCalls ?? []) total += countText(t.name) + countText(t.arguments) + PER_MESSAGE;
      for (const r of m.reasoning ?? []) total += countText(r.text);
    }
  }
  if (req.tools !== undefined) total += countText(JSON.stringify(req.tools));
  if (req.responseFormat?.type === 'json_schema') total += countText(JSON.stringify(req.responseFormat.schema));
  return total;
}

function partTokens(parts: ContentPart[]): number {
  let n = 0;
  for (const p of parts) n += p.type === 'text' ? countText(p.text) : IMAGE_TOKENS;
  return n;
}

/** The text of the last user message, for the demo provider. */
export function lastUserText(req: ChatRequest): string {
  for (let i = req.messages.length - 1; i >= 0; i--) {
    const m = req.messages[i]!;
    if (m.role !== 'user') continue;
    if (typeof m.content === 'string') return m.content;
    return m.content.map((p) => (p.type === 'text' ? p.text : '')).join(' ');
  }
  return '';
}
