import { setTimeout as sleep } from 'node:timers/promises';
import { decode, encode } from 'gpt-tokenizer';
import { estimateChatTokens, estimatePromptTokens, lastUserText } from '../../billing/estimate.js';
import { newId } from '../../store/ids.js';
import type { ChatResponse, JsonObject, StreamEvent, Usage } from '../../types/chat.js';
import type { ChatCall, ChatStream, EmbeddingsCall, EmbeddingsResult, Provider, ProviderDescriptor } from '../contract.js';
import { UpstreamError } from '../upstream-error.js';
import { demoSchema, type DemoProviderConfig } from './config.js';

/** Without a cap the demo answers in at most this many tokens. */
const DEFAULT_REPLY_TOKENS = 64;
const EMBEDDING_DIMENSIONS = 16;
/** `dimensions` beyond this is refused: the demo should not build arbitrarily large bodies. */
const MAX_EMBEDDING_DIMENSIONS = 4096;

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

  private reply(call: ChatCall): { tokens: number[]; finish: 'stop' | 'length'; n: number; usage: Usage } {
    const said = lastUserText(call.request).replace(/\s+/g, ' ').trim().slice(0, 200);
    const text = said === '' ? 'Hello! This is the Token360 demo model.' : `Hello! This is the Token360 demo model. You said: "${said}"`;
    let tokens = encode(text).slice(0, DEFAULT_REPLY_TOKENS);
    const cap = requestedCap(call);
    const finish = cap !== null && tokens.length > cap ? 'length' : 'stop';
    if (cap !== null) tokens = tokens.slice(0, cap);
    // `n` choices, each the same deterministic reply; as with OpenAI, usage counts the output of all of them.
    const n = Number.isInteger(call.request.n) && call.request.n > 1 ? call.request.n : 1;
    // A client that spoke OpenAI is counted as the hold counted it, so that the demo's usage matches the estimate.
    const source = call.request.source;
    const prompt = source?.protocol === 'openai-chat' ? estimatePromptTokens(source.body) : estimateChatTokens(call.request);
    const usage = { promptTokens: prompt, completionTokens: tokens.length * n, cachedTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 };
    return { tokens, finish, n, usage };
  }

  async chat(call: ChatCall): Promise<ChatResponse> {
    const { tokens, finish, n, usage } = this.reply(call);
    await this.wait(this.cfg.latency_ms + this.paceMs(tokens.length), call.signal);
    const content = decode(tokens);
    return {
      id: `chatcmpl-${newId('demo')}`,
      created: Math.floor(Date.now() / 1000),
      choices: Array.from({ length: n }, (_, index) => ({ index, content, finishReason: finish })),
      usage: { ...usage, raw: openAIUsage(usage) },
    };
  }

  async chatStream(call: ChatCall): Promise<ChatStream> {
    const { tokens, finish, n, usage } = this.reply(call);
    const id = `chatcmpl-${newId('demo')}`;
    const created = Math.floor(Date.now() / 1000);
    await this.wait(this.cfg.latency_ms, call.signal);
    const perToken = this.paceMs(1);
    // Unpaced, the reply goes in a few chunks; paced, one token a chunk as a real model would.
    const step = perToken > 0 ? 1 : Math.max(1, Math.ceil(tokens.length / 4));
    const self = this;
    return {
      // With n > 1 the choices' events interleave, each naming its choice, as OpenAI sends them.
      async *[Symbol.asyncIterator](): AsyncGenerator<StreamEvent> {
        yield { type: 'start', id, created };
        for (let i = 0; i < tokens.length; i += step) {
          if (i > 0 && perToken > 0) await self.wait(perToken * step, call.signal);
          const text = decode(tokens.slice(i, i + step));
          for (let c = 0; c < n; c++) yield { type: 'text', choice: c, text };
        }
        for (let c = 0; c < n; c++) yield { type: 'finish', choice: c, reason: finish };
        yield { type: 'usage', usage: { ...usage, raw: openAIUsage(usage) } };
      },
    };
  }

  /**
   * One embedding per input, `dimensions` long when asked (else 16), as float32 values like a
   * real model's; `encoding_format: "base64"` sends each as base64 of little-endian float32, as
   * OpenAI does (the OpenAI SDK asks for base64 unless told otherwise).
   */
  async embeddings(call: EmbeddingsCall): Promise<EmbeddingsResult> {
    const dimensions = embeddingDimensions(call.body['dimensions']);
    const format = call.body['encoding_format'] ?? 'float';
    if (format !== 'float' && format !== 'base64') {
      throw invalid(`Invalid value for 'encoding_format': expected 'float' or 'base64'`, 'encoding_format');
    }
    const input = call.body['input'];
    // A string, or a list of inputs each a string or a list of token ids.
    const items: unknown[] = Array.isArray(input) ? input : [input];
    let promptTokens = 0;
    const data = items.map((item, index) => {
      const text = typeof item === 'string' ? item : JSON.stringify(item);
      promptTokens += Array.isArray(item) ? item.length : encode(text).length;
      const vector = pseudoVector(text, dimensions);
      return { object: 'embedding', index, embedding: format === 'base64' ? base64Of(vector) : Array.from(vector) };
    });
    const usage = { promptTokens, completionTokens: 0, cachedTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 };
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

export const demoProvider: ProviderDescriptor<DemoProviderConfig> = {
  type: 'demo',
  schema: demoSchema,
  create: (name, cfg) => new DemoProvider(name, cfg),
};

function requestedCap(call: ChatCall): number | null {
  return call.maxTokens;
}

function openAIUsage(u: Usage): JsonObject {
  return {
    prompt_tokens: u.promptTokens,
    completion_tokens: u.completionTokens,
    total_tokens: u.promptTokens + u.completionTokens,
    prompt_tokens_details: { cached_tokens: u.cachedTokens },
  };
}

function embeddingDimensions(v: unknown): number {
  if (v === undefined || v === null) return EMBEDDING_DIMENSIONS;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= MAX_EMBEDDING_DIMENSIONS) return v;
  throw invalid(`Invalid value for 'dimensions': expected an integer from 1 to ${MAX_EMBEDDING_DIMENSIONS}`, 'dimensions');
}

/** What an OpenAI-compatible upstream answers to a parameter it cannot take: a 400 the gateway relays. */
function invalid(message: string, param: string): UpstreamError {
  const body = JSON.stringify({ error: { message, type: 'invalid_request_error', param, code: null } });
  return new UpstreamError('status', message, { status: 400, body });
}

/** A deterministic unit vector from the text: same input, same embedding. */
function pseudoVector(text: string, dimensions: number): Float32Array {
  const v = new Float64Array(dimensions);
  let h = 2166136261;
  let sum = 0;
  for (let i = 0; i < dimensions; i++) {
    for (let j = 0; j < text.length; j++) h = Math.imul(h ^ text.charCodeAt(j), 16777619) >>> 0;
    h = Math.imul(h ^ i, 16777619) >>> 0;
    v[i] = (h / 0xffffffff) * 2 - 1;
    sum += v[i]! * v[i]!;
  }
  const norm = Math.sqrt(sum) || 1;
  return Float32Array.from(v, (x) => x / norm);
}

/** Little-endian float32, whatever the machine's byte order. */
function base64Of(vector: Float32Array): string {
  const buf = Buffer.allocUnsafe(vector.length * 4);
  vector.forEach((x, i) => buf.writeFloatLE(x, i * 4));
  return buf.toString('base64');
}
