import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { Pool, errors as undiciErrors } from 'undici';
import type { OpenAIProviderConfig } from '../../config/schema.js';
import type { ChatCall, ChatResult, ChatStream, EmbeddingsCall, JsonObject, Provider, TokenUsage } from '../types.js';
import { UpstreamError } from '../upstream-error.js';
import { fromUsage } from './from-provider.js';
import { toChatBody } from './to-provider.js';
import type { OpenAIChunk } from './wire.js';

type ResponseData = Awaited<ReturnType<Pool['request']>>;

/** A non-streamed body larger than this is refused rather than buffered. */
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

/** Any OpenAI-compatible API (OpenAI, Zhipu, DeepSeek, vLLM, Ollama, …) over one keep-alive undici pool. */
export class OpenAIProvider implements Provider {
  readonly type = 'openai';
  private readonly pool: Pool;
  private readonly basePath: string;
  private readonly headers: Record<string, string>;
  readonly secrets: readonly string[];

  constructor(
    readonly name: string,
    private readonly cfg: OpenAIProviderConfig,
  ) {
    const url = new URL(cfg.base_url);
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.pool = new Pool(url.origin, {
      connections: cfg.max_connections,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      connect: { timeout: cfg.connect_timeout_ms },
    });
    this.headers = { 'content-type': 'application/json', accept: 'application/json', ...cfg.headers };
    if (cfg.api_key) this.headers['authorization'] = `Bearer ${cfg.api_key}`;
    this.secrets = [cfg.api_key ?? '', url.host].filter((s) => s !== '');
  }


  chat(call: ChatCall): Promise<ChatResult> {
    return this.whole('/chat/completions', toChatBody(call, false), call.signal);
  }

  embeddings(call: EmbeddingsCall): Promise<ChatResult> {
    return this.whole('/embeddings', { ...call.body, model: call.upstreamModel }, call.signal);
  }

  /** A non-streamed call, cut after `timeout_ms` for the whole response or when the client goes away. */
  private async whole(path: string, body: JsonObject, clientSignal: AbortSignal): Promise<ChatResult> {
    // Its own controller: a timeout is not the client leaving (failover goes on after a timeout).
    // One controller and one timer cost less per request than AbortSignal.any with AbortSignal.timeout.
    const ac = new AbortController();
    const onClientGone = (): void => ac.abort();
    clientSignal.addEventListener('abort', onClientGone, { once: true });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      ac.abort();
    }, this.cfg.timeout_ms);
    try {
      if (clientSignal.aborted) ac.abort();
      const res = await this.post(path, body, ac.signal, this.cfg.timeout_ms, this.cfg.timeout_ms);
      const json = await readJson(res);
      return { body: json, usage: fromUsage((json as OpenAIChunk).usage) };
    } catch (e) {
      throw classify(e, timedOut);
    } finally {
      clearTimeout(timer);
      clientSignal.removeEventListener('abort', onClientGone);
    }
  }

  async chatStream(call: ChatCall): Promise<ChatStream> {
    let res: ResponseData;
    try {
      res = await this.post('/chat/completions', toChatBody(call, true), call.signal, this.cfg.first_byte_timeout_ms, this.cfg.idle_timeout_ms);
    } catch (e) {
      throw classify(e, false);
    }
    const type = String(res.headers['content-type'] ?? '');
    if (!type.includes('text/event-stream')) {
      res.body.destroy();
      throw new UpstreamError('protocol', `expected an event stream, got ${type || 'no content type'}`);
    }
    return openStream(res);
  }

  private async post(path: string, body: JsonObject, signal: AbortSignal, headersTimeout: number, bodyTimeout: number): Promise<ResponseData> {
    const res = await this.pool.request({
      method: 'POST',
      path: this.basePath + path,
      headers: this.headers,
      body: JSON.stringify(body),
      signal,
      headersTimeout,
      bodyTimeout,
    });
    if (res.statusCode >= 400) {
      const text = await readCapped(res, 4096).catch(() => '');
      throw new UpstreamError('status', `upstream answered ${res.statusCode}`, {
        status: res.statusCode,
        headers: flatHeaders(res.headers),
        body: text,
      });
    }
    return res;
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}

/** Reads events until the first one arrives, so failures before it are still ordinary errors (and failover is still possible). */
async function openStream(res: ResponseData): Promise<ChatStream> {
  const events = readEvents(res);
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
      if (first.done === true) return;
      yield track(first.value);
      for (;;) {
        const next = await events.next();
        if (next.done === true) return;
        yield track(next.value);
      }
    },
  };
}

async function* readEvents(res: ResponseData): AsyncGenerator<JsonObject, void, undefined> {
  const queue: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (ev) => queue.push(ev) });
  const decoder = new TextDecoder();
  let done = false;
  let finished = false;
  try {
    for await (const buf of res.body) {
      parser.feed(decoder.decode(buf as Buffer, { stream: true }));
      while (queue.length > 0) {
        const ev = queue.shift()!;
        if (ev.data === '[DONE]') {
          done = true;
          break;
        }
        const chunk = parseChunk(ev.data);
        if (chunk['error'] !== undefined) {
          throw new UpstreamError('status', 'upstream sent an error event', { status: 500, body: ev.data });
        }
        if ((chunk as OpenAIChunk).choices?.some((c) => c.finish_reason)) finished = true;
        yield chunk;
      }
      if (done) break;
    }
  } catch (e) {
    throw classify(e, false);
  } finally {
    if (!res.body.destroyed) res.body.destroy();
  }
  // Some OpenAI-compatible servers omit [DONE]; a stream that ended after a finish_reason is whole.
  if (!done && !finished) throw new UpstreamError('reset', 'upstream stream ended early');
}

function parseChunk(data: string): JsonObject {
  try {
    const v: unknown = JSON.parse(data);
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v as JsonObject;
  } catch {
    // fall through
  }
  throw new UpstreamError('protocol', 'upstream sent an event that is not a JSON object');
}

async function readJson(res: ResponseData): Promise<JsonObject> {
  const text = await readCapped(res, MAX_RESPONSE_BYTES, true);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new UpstreamError('protocol', 'upstream sent a body that is not JSON');
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new UpstreamError('protocol', 'upstream sent a body that is not a JSON object');
  return v as JsonObject;
}

async function readCapped(res: ResponseData, cap: number, strict = false): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const buf of res.body) {
    size += (buf as Buffer).length;
    if (size > cap) {
      res.body.destroy();
      if (strict) throw new UpstreamError('protocol', 'upstream response too large');
      break;
    }
    parts.push(buf as Buffer);
  }
  return Buffer.concat(parts).toString('utf8');
}

function flatHeaders(h: ResponseData['headers']): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

/** undici and socket errors → UpstreamError. */
export function classify(e: unknown, timedOut: boolean): UpstreamError {
  if (e instanceof UpstreamError) return e;
  const err = e as { code?: string; name?: string; message?: string };
  const msg = err.message ?? String(e);
  if (timedOut) return new UpstreamError('timeout', 'upstream did not answer in time', { cause: e });
  if (err.name === 'AbortError' || err.code === 'UND_ERR_ABORTED' || e instanceof undiciErrors.RequestAbortedError) {
    return new UpstreamError('aborted', 'request aborted', { cause: e });
  }
  switch (err.code) {
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'ETIMEDOUT':
      return new UpstreamError('timeout', msg, { cause: e });
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new UpstreamError('connect', msg, { cause: e });
    default:
      return new UpstreamError('reset', msg, { cause: e });
  }
}
