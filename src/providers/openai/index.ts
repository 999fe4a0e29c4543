import type { ChatResponse, ClientProtocol, JsonObject, StreamEvent } from '../../types/chat.js';
import type { ChatCall, ChatStream, EmbeddingsCall, Provider, ProviderDescriptor, StoredResponseAnswer, StoredResponseCall } from '../contract.js';
import { parseObject, UpstreamHttp } from '../http/transport.js';
import { parseSpan, scanObject } from '../raw-json.js';
import type { RawResult } from '../types.js';
import { UpstreamError } from '../upstream-error.js';
import type { HeldBody, UpstreamLimits } from '../whole-body.js';
import { openaiSchema, type OpenAIProviderConfig } from './config.js';
import { ChunkReader, fromCompletion, fromUsage } from './from-provider.js';
import { fromResponse, ResponsesEventReader, toResponsesBody } from './responses.js';
import { toChatBody } from './to-provider.js';
import type { OpenAIChunk, OpenAICompletion } from './wire.js';

/** Any OpenAI-compatible API (OpenAI, Azure OpenAI, Zhipu, DeepSeek, vLLM, Ollama, …) over the shared transport. */
export class OpenAIProvider implements Provider {
  readonly type = 'openai';
  private readonly http: UpstreamHttp;
  readonly secrets: readonly string[];
  readonly nativeProtocols: readonly ClientProtocol[];

  constructor(
    readonly name: string,
    cfg: OpenAIProviderConfig,
    limits: UpstreamLimits,
  ) {
    this.http = new UpstreamHttp(cfg, limits);
    this.secrets = this.http.secrets;
    this.nativeProtocols = cfg.responses === 'native' ? ['openai-chat', 'openai-responses'] : ['openai-chat'];
  }

  /** The client's Responses body, when this deployment takes Responses requests as they came. */
  private responsesBody(call: ChatCall): JsonObject | null {
    const source = call.request.source;
    return source?.protocol === 'openai-responses' && this.nativeProtocols.includes('openai-responses') ? source.body : null;
  }

  chat(call: ChatCall): Promise<ChatResponse> {
    const native = this.responsesBody(call);
    if (native !== null) return this.http.json('/responses', toResponsesBody(call, native, false), call, parseResponse);
    return this.http.json('/chat/completions', toChatBody(call, false), call, parseWhole);
  }

  embeddings(call: EmbeddingsCall): Promise<RawResult> {
    return this.http.json('/embeddings', { ...call.body, model: call.upstreamModel }, call, rawWhole);
  }

  async chatStream(call: ChatCall): Promise<ChatStream> {
    const native = this.responsesBody(call);
    if (native !== null) return openStream(responsesEvents(await this.http.stream('/responses', toResponsesBody(call, native, true), call)));
    return openStream(events(await this.http.stream('/chat/completions', toChatBody(call, true), call)));
  }

  /** Only a deployment that made Responses natively has any to read or delete (SPEC §6). */
  storedResponse(call: StoredResponseCall): Promise<StoredResponseAnswer> {
    if (!this.nativeProtocols.includes('openai-responses')) return Promise.reject(new UpstreamError('status', 'not a native Responses deployment', { status: 404 }));
    const path = `/responses/${encodeURIComponent(call.id)}${call.query === '' ? '' : `?${call.query}`}`;
    return this.http.read(call.method, path, call, (held, status) => ({ status, body: parseHeld(held) }));
  }

  async close(): Promise<void> {
    await this.http.close();
  }
}

export const openaiProvider: ProviderDescriptor<OpenAIProviderConfig> = {
  type: 'openai',
  schema: openaiSchema,
  create: (name, cfg, env) => new OpenAIProvider(name, cfg, env.limits),
};

/** Reads events until the first one arrives, so failures before it are still ordinary errors (and failover is still possible). */
export async function openStream(events: AsyncGenerator<StreamEvent, void, undefined>): Promise<ChatStream> {
  let first: IteratorResult<StreamEvent, void>;
  try {
    first = await events.next();
  } catch (e) {
    await events.return();
    throw e;
  }
  return {
    async *[Symbol.asyncIterator]() {
      try {
        if (first.done === true) return;
        yield first.value;
        yield* events;
      } finally {
        // A consumer that stops early ends the reader too: it closes the upstream response and stops the watch.
        await events.return();
      }
    },
  };
}

/** The typed events of an OpenAI event stream, up to `[DONE]`. */
async function* events(data: AsyncGenerator<string, void, undefined>): AsyncGenerator<StreamEvent, void, undefined> {
  const reader = new ChunkReader();
  const out: StreamEvent[] = [];
  try {
    for await (const text of data) {
      if (text === '[DONE]') return;
      const chunk = parseObject(text, 'an event');
      if (chunk['error'] !== undefined) {
        throw new UpstreamError('status', 'upstream sent an error event', { status: 500, body: text });
      }
      reader.read(chunk as OpenAIChunk, out);
      for (const ev of out) yield ev;
      out.length = 0;
    }
  } finally {
    await data.return();
  }
  // Some OpenAI-compatible servers omit [DONE]; a stream that ended after a finish_reason is whole.
  if (!reader.finished) throw new UpstreamError('reset', 'upstream stream ended early');
}

/** The events of a Responses stream, up to its terminal event (it sends no `[DONE]`). */
async function* responsesEvents(data: AsyncGenerator<string, void, undefined>): AsyncGenerator<StreamEvent, void, undefined> {
  const reader = new ResponsesEventReader();
  const out: StreamEvent[] = [];
  try {
    for await (const text of data) {
      if (text === '[DONE]') break;
      const event = parseObject(text, 'an event');
      reader.read(text, event, out);
      for (const ev of out) yield ev;
      out.length = 0;
      const failed = reader.failure(event, text);
      if (failed !== null) throw failed;
      if (reader.finished) return;
    }
  } finally {
    await data.return();
  }
  if (!reader.finished) throw new UpstreamError('reset', 'upstream stream ended early');
}

/** A Response object, parsed whole. */
function parseResponse(held: HeldBody): ChatResponse {
  return fromResponse(parseHeld(held));
}

function parseHeld(held: HeldBody): JsonObject {
  let v: unknown;
  try {
    v = JSON.parse(held.bytes.toString('utf8'));
  } catch {
    throw new UpstreamError('protocol', 'upstream sent a body that is not JSON');
  } finally {
    held.release();
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new UpstreamError('protocol', 'upstream sent a body that is not a JSON object');
  return v as JsonObject;
}

/** A chat completion: small, parsed whole; its buffer goes back to the budget once parsed. */
function parseWhole(held: HeldBody): ChatResponse {
  return fromCompletion(parseHeld(held) as OpenAICompletion);
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
