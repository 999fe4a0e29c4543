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

/** A `chat.completion`: the model the client named, and `usage` as the caller shows it. */
export function encodeChatResponse(r: ChatResponse, model: string, usage: JsonObject): JsonObject {
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
      if (c.extra !== undefined) Object.assign(message, c.extra);
      return { index: c.index, message, logprobs: c.logprobs ?? null, finish_reason: c.finishReason };
    }),
    usage,
  };
  if (r.extra !== undefined) for (const [k, v] of Object.entries(r.extra)) if (!(k in body)) body[k] = v;
  return body;
}

/**
 * Stream events as OpenAI chunks, for one stream. Each choice's first chunk carries
 * `role: "assistant"`; tool calls carry OpenAI's per-choice `index`, the id and name in their
 * first chunk and argument pieces after it. With `include_usage`, every chunk carries
 * `usage: null` and the last one the usage, as OpenAI sends them.
 */
export class ChunkEncoder {
  private id = 'chatcmpl-token360';
  private created = Math.floor(Date.now() / 1000);
  private extra: JsonObject | undefined;
  private readonly spoke = new Set<number>();

  constructor(
    private readonly model: string,
    private readonly includeUsage: boolean = false,
  ) {}

  /** The chunk for `ev`, or null when it has no OpenAI form (the stream's start, a reasoning signature, usage). */
  encode(ev: StreamEvent): JsonObject | null {
    switch (ev.type) {
      case 'start':
        this.id = ev.id;
        this.created = ev.created;
        this.extra = ev.extra;
        return null;
      case 'text':
        return this.chunk(ev.choice, { content: ev.text }, null, ev.logprobs);
      case 'reasoning':
        return this.chunk(ev.choice, { reasoning_content: ev.text });
      case 'refusal':
        return this.chunk(ev.choice, { refusal: ev.text });
      case 'reasoning_signature':
      case 'reasoning_redacted':
      case 'usage':
      case 'native':
        return null;
      case 'tool_call_start':
        return this.chunk(ev.choice, { tool_calls: [{ index: ev.index, id: ev.id, type: 'function', function: { name: ev.name, arguments: '' } }] });
      case 'tool_call_delta':
        return this.chunk(ev.choice, { tool_calls: [{ index: ev.index, function: { arguments: ev.arguments } }] });
      case 'finish':
        return this.chunk(ev.choice, {}, ev.reason);
    }
  }

  /** The chunk that ends a stream the gateway cut at the output cap: each open choice stops for length. */
  capped(open: readonly number[]): JsonObject {
    const c: JsonObject = { ...this.frame(), choices: open.map((index) => ({ index, delta: {}, logprobs: null, finish_reason: 'length' })) };
    if (this.includeUsage) c['usage'] = null;
    return c;
  }

  /** The last chunk: no choices, the usage. */
  usage(usage: JsonObject): JsonObject {
    return { ...this.frame(), choices: [], usage };
  }

  private frame(): JsonObject {
    const f: JsonObject = { id: this.id, object: 'chat.completion.chunk', created: this.created, model: this.model };
    if (this.extra !== undefined) Object.assign(f, this.extra);
    return f;
  }

  private chunk(choice: number, delta: JsonObject, finish: FinishReason | null = null, logprobs: unknown = null): JsonObject {
    if (!this.spoke.has(choice)) {
      this.spoke.add(choice);
      delta = { role: 'assistant', ...delta };
    }
    const c: JsonObject = { ...this.frame(), choices: [{ index: choice, delta, logprobs: logprobs ?? null, finish_reason: finish }] };
    if (this.includeUsage) c['usage'] = null;
    return c;
  }
}
