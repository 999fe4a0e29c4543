import type { ChatResponse, FinishReason, JsonObject, Usage as TokenUsage } from '../../types/chat.js';

// The gateway's own form rendered as Anthropic's Messages API: a `message` object. An answer
// that came from an Anthropic upstream (a request passed through) is sent on as the upstream
// made it, with the client's model name and the usage that was billed.

/**
 * Finish reasons as Anthropic's stop reasons. `stop` is `end_turn`: OpenAI-style upstreams do
 * not say whether a stop sequence ended the answer, so `stop_sequence` is never claimed.
 */
export function stopReason(r: FinishReason): string {
  switch (r) {
    case 'length':
      return 'max_tokens';
    case 'tool_calls':
      return 'tool_use';
    case 'content_filter':
      return 'refusal';
    default:
      return 'end_turn';
  }
}

/** Anthropic's usage for what was billed: its `input_tokens` leaves out cache reads and writes. */
export function anthropicUsage(u: TokenUsage): JsonObject {
  return {
    input_tokens: Math.max(0, u.promptTokens - u.cachedTokens - u.cacheWriteTokens),
    cache_creation_input_tokens: u.cacheWriteTokens,
    cache_read_input_tokens: u.cachedTokens,
    output_tokens: u.completionTokens,
  };
}

/** Anthropic message ids start `msg_`; another provider's id is kept after that prefix. */
export function messageId(id: string): string {
  return id.startsWith('msg_') ? id : `msg_${id === '' ? 'token360' : id}`;
}

/** A tool call's arguments as the object Anthropic's `input` must be; text that does not parse (a cut answer) as `{}`. */
export function toolInput(args: string): JsonObject {
  try {
    const v: unknown = JSON.parse(args);
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v as JsonObject;
  } catch {
    // keep {}
  }
  return {};
}

/** The `message` object for an answer, showing the client's model and the billed usage. */
export function encodeMessage(r: ChatResponse, model: string, usage: TokenUsage): JsonObject {
  if (r.native?.protocol === 'anthropic-messages') {
    const u = r.native.body['usage'];
    const base = u !== null && typeof u === 'object' && !Array.isArray(u) ? (u as JsonObject) : {};
    return { ...r.native.body, model, usage: { ...base, ...anthropicUsage(usage) } };
  }
  const c = r.choices[0];
  const content: JsonObject[] = [];
  for (const x of c?.reasoning ?? []) {
    if (x.redacted !== undefined) content.push({ type: 'redacted_thinking', data: x.redacted });
    else content.push({ type: 'thinking', thinking: x.text, signature: x.signature ?? '' });
  }
  const text = (c?.content ?? '') + (c?.refusal ?? '');
  if (text !== '') content.push({ type: 'text', text });
  for (const t of c?.toolCalls ?? []) content.push({ type: 'tool_use', id: t.id, name: t.name, input: toolInput(t.arguments) });
  return {
    id: messageId(r.id),
    type: 'message',
    role: 'assistant',
    model,
    content,
    stop_reason: stopReason(c?.finishReason ?? 'stop'),
    stop_sequence: null,
    usage: anthropicUsage(usage),
  };
}

