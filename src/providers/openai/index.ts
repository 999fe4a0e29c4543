import type { OpenAIProviderConfig } from '../../config/schema.js';
import { parseObject, UpstreamHttp } from '../http/transport.js';
import { parseSpan, scanObject } from '../raw-json.js';
import type { ChatCall, ChatResult, ChatStream, EmbeddingsCall, JsonObject, Provider, RawResult, TokenUsage } from '../types.js';
import { UpstreamError } from '../upstream-error.js';
import type { HeldBody, UpstreamLimits } from '../whole-body.js';
import { fromUsage } from './from-provider.js';
import { toChatBody } from './to-provider.js';
import type { OpenAIChunk } from './wire.js';

/** Any OpenAI-compatible API (OpenAI, Azure OpenAI, Zhipu, DeepSeek, vLLM, Ollama, …) over the shared transport. */
export class OpenAIProvider implements Provider {
  readonly type = 'openai';
  private readonly http: UpstreamHttp;
  readonly secrets: readonly string[];

  constructor(
    readonly name: string,
    cfg: OpenAIProviderConfig,
    limits: UpstreamLimits,
  ) {
    this.http = new UpstreamHttp(cfg, limits);
    this.secrets = this.http.secrets;
  }

  chat(call: ChatCall): Promise<ChatResult> {
    return this.http.json('/chat/completions', toChatBody(call, false), call.signal, parseWhole);
  }

  embeddings(call: EmbeddingsCall): Promise<RawResult> {
    return this.http.json('/embeddings', { ...call.body, model: call.upstreamModel }, call.signal, rawWhole);
  }

  async chatStream(call: ChatCall): Promise<ChatStream> {
    return openStream(chunks(await this.http.stream('/chat/completions', toChatBody(call, true), call.signal)));
  }

  async close(): Promise<void> {
    await this.http.close();
  }
}

/** Reads events until the first one arrives, so failures before it are still ordinary errors (and failover is still possible). */
async function openStream(events: AsyncGenerator<JsonObject, void, undefined>): Promise<ChatStream> {
  const first = await events.next();
  let usage: TokenUsage | null = null;
  const track = (chunk: JsonObject): JsonObject => {
    const u = (chunk as OpenAIChunk).usage;
    if (u !== undefined && u !== null) usage = fromUsage(u) ?? usage;
    return chunk;
  };
  return {
    get usage() {
      return usage;
    },
    async *[Symbol.asyncIterator]() {
      try {
        if (first.done === true) return;
        yield track(first.value);
        for (;;) {
          const next = await events.next();
          if (next.done === true) return;
          yield track(next.value);
        }
      } finally {
        // A consumer that stops early ends the reader too: it closes the upstream response and stops the watch.
        await events.return();
      }
    },
  };
}

/** The chat-completion chunks of an OpenAI event stream, up to `[DONE]`. */
async function* chunks(events: AsyncGenerator<string, void, undefined>): AsyncGenerator<JsonObject, void, undefined> {
  let finished = false;
  try {
    for await (const data of events) {
      if (data === '[DONE]') return;
      const chunk = parseObject(data, 'an event');
      if (chunk['error'] !== undefined) {
        throw new UpstreamError('status', 'upstream sent an error event', { status: 500, body: data });
      }
      if ((chunk as OpenAIChunk).choices?.some((c) => c.finish_reason)) finished = true;
      yield chunk;
    }
  } finally {
    await events.return();
  }
  // Some OpenAI-compatible servers omit [DONE]; a stream that ended after a finish_reason is whole.
  if (!finished) throw new UpstreamError('reset', 'upstream stream ended early');
}

/** A chat completion: small, parsed whole; its buffer goes back to the budget once parsed. */
function parseWhole(held: HeldBody): ChatResult {
  let v: unknown;
  try {
    v = JSON.parse(held.bytes.toString('utf8'));
  } catch {
    throw new UpstreamError('protocol', 'upstream sent a body that is not JSON');
  } finally {
    held.release();
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new UpstreamError('protocol', 'upstream sent a body that is not a JSON object');
  return { body: v as JsonObject, usage: fromUsage((v as OpenAIChunk).usage) };
}

/** An embeddings answer: kept as bytes, only its top level read (see scanObject). */
function rawWhole(held: HeldBody): RawResult {
  const top = scanObject(held.bytes);
  if (top === null) {
    held.release();
    throw new UpstreamError('protocol', 'upstream sent a body that is not a JSON object');
  }
  const usage = top.usage.length === 0 ? null : parseSpan(held.bytes, top.usage[top.usage.length - 1]!);
  return { raw: { ...top, ...held }, usage: fromUsage(usage as OpenAIChunk['usage']) };
}
