import type { ChatResponse, FinishReason, JsonObject, StreamEvent, Usage } from '../../types/chat.js';

// The gateway's own form rendered as OpenAI chat completions: a `chat.completion` object, or
// `chat.completion.chunk`s one stream event at a time. Reasoning goes out as `reasoning_content`
// and reasoning tokens in `completion_tokens_details` (SPEC §1), whoever the provider was.

/** OpenAI's `usage` object for a usage. */
export function openAIUsage(u: Usage): JsonObject {
  const out: JsonObject = {
    prompt_tokens: u.promptTokens,
    completion_tokens: u.completionTokens,
    total_tokens: u.promptTokens + u.completionTokens,
    prompt_tokens_details: { cached_tokens: u.cachedTokens },
    completion_tokens_details: { reasoning_tokens: u.reasoningTokens },
  };
  // OpenAI has no field for prompt-cache writes; Anthropic's name for them is the one clients know.
  if (u.cacheWriteTokens > 0) out['cache_creation_input_tokens'] = u.cacheWriteTokens;
  return out;
}

export function encodeChatResponse(r: ChatResponse, model: string): JsonObject {
  const body: JsonObject = {
    id: r.id,
    object: 'chat.completion',
    created: r.created,
    model,
    choices: r.choices.map((c) => {
      const message: JsonObject = { role: 'assistant', content: c.content, refusal: c.refusal ?? null };
      if (c.reasoning !== undefined && c.reasoning.length > 0) message['reasoning_content'] = c.reasoning.map((x) => x.text).join('');
      if (c.toolCalls !== undefined && c.toolCalls.length > 0) {
        message['tool_calls'] = c.toolCalls.map((t) => ({ id: t.id, type: 'function', function: { name: t.name, arguments: t.arguments } }));
      }
      return { index: c.index, message, logprobs: null, finish_reason: c.finishReason };
    }),
  };
  if (r.usage !== null) body['usage'] = openAIUsage(r.usage);
  return body;
}

/**
 * Stream events as OpenAI chunks, for one stream. Each choice's first chunk carries
 * `role: "assistant"`; tool calls carry OpenAI's per-choice `index`, the id and name in their
 * first chunk and argument pieces after it.
 */
export class ChunkEncoder {
  private id = 'chatcmpl-token360';
  private created = Math.floor(Date.now() / 1000);
  private readonly spoke = new Set<number>();

  constructor(private readonly model: string) {}

  /** The chunk for `ev`, or null when it has no OpenAI form (the stream's start, a reasoning signature). */
  encode(ev: StreamEvent): JsonObject | null {
    switch (ev.type) {
      case 'start':
        this.id = ev.id;
        this.created = ev.created;
        return null;
      case 'text':
        return this.chunk(ev.choice, { content: ev.text });
      case 'reasoning':
        return this.chunk(ev.choice, { reasoning_content: ev.text });
      case 'refusal':
        return this.chunk(ev.choice, { refusal: ev.text });
      case 'reasoning_signature':
      case 'reasoning_redacted':
        return null;
      case 'tool_call_start':
        return this.chunk(ev.choice, { tool_calls: [{ index: ev.index, id: ev.id, type: 'function', function: { name: ev.name, arguments: '' } }] });
      case 'tool_call_delta':
        return this.chunk(ev.choice, { tool_calls: [{ index: ev.index, function: { arguments: ev.arguments } }] });
      case 'finish':
        return this.chunk(ev.choice, {}, ev.reason);
      case 'usage':
        return { id: this.id, object: 'chat.completion.chunk', created: this.created, model: this.model, choices: [], usage: openAIUsage(ev.usage) };
    }
  }

  private chunk(choice: number, delta: JsonObject, finish: FinishReason | null = null): JsonObject {
    if (!this.spoke.has(choice)) {
      this.spoke.add(choice);
      delta = { role: 'assistant', ...delta };
    }
    return {
      id: this.id,
      object: 'chat.completion.chunk',
      created: this.created,
      model: this.model,
      choices: [{ index: choice, delta, logprobs: null, finish_reason: finish }],
    };
  }
}
