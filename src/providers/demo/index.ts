import { setTimeout as sleep } from 'node:timers/promises';
import { decode, encode } from 'gpt-tokenizer';
import { estimatePromptTokens, lastUserText } from '../../billing/estimate.js';
import type { DemoProviderConfig } from '../../config/schema.js';
import { newId } from '../../store/ids.js';
import type { ChatCall, ChatResult, ChatStream, EmbeddingsCall, JsonObject, Provider, TokenUsage } from '../types.js';
import { UpstreamError } from '../upstream-error.js';

/** Without a cap the demo answers in at most this many tokens. */
const DEFAULT_REPLY_TOKENS = 64;
const EMBEDDING_DIMENSIONS = 16;

/**
 * The built-in provider: a deterministic reply made from the prompt, honest token counts, and a
 * configurable pace, so that `npm start` works with no upstream account and benchmarks and tests
 * have a provider that costs nothing.
 */
export class DemoProvider implements Provider {
  readonly type = 'demo';
  readonly secrets: readonly string[] = [];

  constructor(
    readonly name: string,
    private readonly cfg: DemoProviderConfig,
  ) {}

  private reply(call: ChatCall): { tokens: number[]; finish: 'stop' | 'length'; usage: TokenUsage } {
    const said = lastUserText(call.body).replace(/\s+/g, ' ').trim().slice(0, 200);
    const text = said === '' ? 'Hello! This is the Token360 demo model.' : `Hello! This is the Token360 demo model. You said: "${said}"`;
    let tokens = encode(text).slice(0, DEFAULT_REPLY_TOKENS);
    const cap = requestedCap(call);
    const finish = cap !== null && tokens.length > cap ? 'length' : 'stop';
    if (cap !== null) tokens = tokens.slice(0, cap);
    const usage = { promptTokens: estimatePromptTokens(call.body), completionTokens: tokens.length, cachedTokens: 0 };
    return { tokens, finish, usage };
  }

  async chat(call: ChatCall): Promise<ChatResult> {
    const { tokens, finish, usage } = this.reply(call);
    await this.wait(this.cfg.latency_ms + this.paceMs(tokens.length), call.signal);
    const body: JsonObject = {
      id: `chatcmpl-${newId('demo')}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: call.upstreamModel,
      choices: [{ index: 0, message: { role: 'assistant', content: decode(tokens), refusal: null }, logprobs: null, finish_reason: finish }],
      usage: openAIUsage(usage),
    };
    return { body, usage };
  }

  async chatStream(call: ChatCall): Promise<ChatStream> {
    const { tokens, finish, usage } = this.reply(call);
    const id = `chatcmpl-${newId('demo')}`;
    const created = Math.floor(Date.now() / 1000);
    const chunk = (delta: JsonObject, finishReason: string | null): JsonObject => ({
      id, object: 'chat.completion.chunk', created, model: call.upstreamModel,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
    });
    await this.wait(this.cfg.latency_ms, call.signal);
    const perToken = this.paceMs(1);
    // Unpaced, the reply goes in a few chunks; paced, one token a chunk as a real model would.
    const step = perToken > 0 ? 1 : Math.max(1, Math.ceil(tokens.length / 4));
    let sent = false;
    const self = this;
    return {
      get usage() {
        return sent ? usage : null;
      },
      async *[Symbol.asyncIterator]() {
        yield chunk({ role: 'assistant', content: '' }, null);
        for (let i = 0; i < tokens.length; i += step) {
          if (i > 0 && perToken > 0) await self.wait(perToken * step, call.signal);
          yield chunk({ content: decode(tokens.slice(i, i + step)) }, null);
        }
        yield chunk({}, finish);
        sent = true;
        yield { id, object: 'chat.completion.chunk', created, model: call.upstreamModel, choices: [], usage: openAIUsage(usage) };
      },
    };
  }

  async embeddings(call: EmbeddingsCall): Promise<ChatResult> {
    const input = call.body['input'];
    const items: unknown[] = Array.isArray(input) ? input : [input];
    let promptTokens = 0;
    const data = items.map((item, index) => {
      const text = typeof item === 'string' ? item : JSON.stringify(item);
      const toks = encode(text);
      promptTokens += toks.length;
      return { object: 'embedding', index, embedding: pseudoVector(text) };
    });
    const usage = { promptTokens, completionTokens: 0, cachedTokens: 0 };
    return {
      body: { object: 'list', data, model: call.upstreamModel, usage: { prompt_tokens: promptTokens, total_tokens: promptTokens } },
      usage,
    };
  }

  private paceMs(tokens: number): number {
    return this.cfg.tokens_per_second > 0 ? (tokens * 1000) / this.cfg.tokens_per_second : 0;
  }

  private async wait(ms: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw new UpstreamError('aborted', 'request aborted');
    if (ms <= 0) return;
    try {
      await sleep(ms, undefined, { signal });
    } catch (e) {
      throw new UpstreamError('aborted', 'request aborted', { cause: e });
    }
  }

  async close(): Promise<void> {}
}

function requestedCap(call: ChatCall): number | null {
  if (call.maxTokens !== null) return call.maxTokens;
  for (const name of ['max_completion_tokens', 'max_tokens']) {
    const v = call.body[name];
    if (typeof v === 'number' && Number.isInteger(v) && v > 0) return v;
  }
  return null;
}

function openAIUsage(u: TokenUsage): JsonObject {
  return {
    prompt_tokens: u.promptTokens,
    completion_tokens: u.completionTokens,
    total_tokens: u.promptTokens + u.completionTokens,
    prompt_tokens_details: { cached_tokens: u.cachedTokens },
  };
}

/** A deterministic unit vector from the text: same input, same embedding. */
function pseudoVector(text: string): number[] {
  const v: number[] = [];
  let h = 2166136261;
  for (let i = 0; i < EMBEDDING_DIMENSIONS; i++) {
    for (let j = 0; j < text.length; j++) h = Math.imul(h ^ text.charCodeAt(j), 16777619) >>> 0;
    h = Math.imul(h ^ i, 16777619) >>> 0;
    v.push((h / 0xffffffff) * 2 - 1);
  }
  const norm = Math.hypot(...v) || 1;
  return v.map((x) => Number((x / norm).toFixed(6)));
}
