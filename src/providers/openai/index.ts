import { Pool, errors as undiciErrors } from 'undici';
import type { OpenAIProviderConfig } from '../../config/schema.js';
import { parseSpan, scanObject } from '../raw-json.js';
import { SseDecoder } from '../sse.js';
import type { ChatCall, ChatResult, ChatStream, EmbeddingsCall, JsonObject, Provider, RawResult, TokenUsage } from '../types.js';
import { UpstreamError } from '../upstream-error.js';
import { readWhole, type HeldBody, type UpstreamLimits } from '../whole-body.js';
import { fromUsage } from './from-provider.js';
import { toChatBody } from './to-provider.js';
import type { OpenAIChunk } from './wire.js';

type ResponseData = Awaited<ReturnType<Pool['request']>>;

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
    private readonly limits: UpstreamLimits,
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
    return this.whole('/chat/completions', toChatBody(call, false), call.signal, parseWhole);
  }

  embeddings(call: EmbeddingsCall): Promise<RawResult> {
    return this.whole('/embeddings', { ...call.body, model: call.upstreamModel }, call.signal, rawWhole);
  }

  /** A non-streamed call, cut after `timeout_ms` for the whole response or when the client goes away. */
  private async whole<T>(path: string, body: JsonObject, clientSignal: AbortSignal, take: (held: HeldBody) => T): Promise<T> {
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
      return take(await readWhole(res, this.limits));
    } catch (e) {
      throw classify(e, timedOut);
    } finally {
      clearTimeout(timer);
      clientSignal.removeEventListener('abort', onClientGone);
    }
  }

  async chatStream(call: ChatCall): Promise<ChatStream> {
    const watch = new StreamWatch(call.signal, this.cfg.first_byte_timeout_ms, this.cfg.idle_timeout_ms);
    let res: ResponseData;
    try {
      // No undici body timeout: the watch times events and lines, not bytes.
      res = await this.post('/chat/completions', toChatBody(call, true), watch.signal, this.cfg.first_byte_timeout_ms, 0);
    } catch (e) {
      watch.stop();
      throw classify(e, watch.timedOut);
    }
    const type = String(res.headers['content-type'] ?? '');
    if (!type.includes('text/event-stream')) {
      watch.stop();
      res.body.destroy();
      throw new UpstreamError('protocol', `expected an event stream, got ${type || 'no content type'}`);
    }
    return openStream(readEvents(res, watch, this.limits.maxEventBytes));
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
    // Anything but a 2xx is a failure: a redirect (never followed) or a 1xx undici did not consume
    // is not the answer, whatever its body looks like.
    if (res.statusCode < 200 || res.statusCode >= 300) {
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

/**
 * The stream's one timer and its abort. Until the first event: `first_byte_timeout_ms` from the
 * request, whatever bytes arrive (comments or a line that never ends do not hold it open). After
 * it: `idle_timeout_ms` between complete lines, comments included (providers send `:` keep-alives
 * while a model thinks), counted only while the reader waits on the upstream, not while the client
 * is slow to take what it has.
 */
class StreamWatch {
  private readonly ac = new AbortController();
  readonly signal = this.ac.signal;
  timedOut = false;
  private timer: NodeJS.Timeout;
  private started = false;
  private waiting = true;
  private readonly onClientGone = (): void => this.ac.abort();

  constructor(
    private readonly client: AbortSignal,
    firstByteMs: number,
    private readonly idleMs: number,
  ) {
    client.addEventListener('abort', this.onClientGone, { once: true });
    if (client.aborted) this.ac.abort();
    this.timer = setTimeout(this.fire, firstByteMs);
  }

  private readonly fire = (): void => {
    if (!this.waiting) return;
    this.timedOut = true;
    this.ac.abort();
  };

  /** Complete lines came without an event (keep-alives): alive, once the first event is in. */
  lines(): void {
    if (this.started) this.timer.refresh();
  }

  /** The reader hands an event to the consumer and waits for it; after the first, the idle timeout applies. */
  handOver(): void {
    this.waiting = false;
    if (this.started) return;
    this.started = true;
    clearTimeout(this.timer);
    this.timer = setTimeout(this.fire, this.idleMs);
  }

  /** The consumer wants the next event: the upstream's silence counts again from now. */
  resume(): void {
    this.waiting = true;
    this.timer.refresh();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.client.removeEventListener('abort', this.onClientGone);
  }
}

async function* readEvents(res: ResponseData, watch: StreamWatch, maxEventBytes: number): AsyncGenerator<JsonObject, void, undefined> {
  const sse = new SseDecoder(maxEventBytes);
  const queue: string[] = [];
  let done = false;
  let finished = false;
  try {
    for await (const buf of res.body) {
      const lines = sse.lines;
      sse.feed(buf as Buffer, queue);
      if (queue.length === 0) {
        if (sse.lines !== lines) watch.lines();
        continue;
      }
      for (const data of queue) {
        if (data === '[DONE]') {
          done = true;
          break;
        }
        const chunk = parseChunk(data);
        if (chunk['error'] !== undefined) {
          throw new UpstreamError('status', 'upstream sent an error event', { status: 500, body: data });
        }
        if ((chunk as OpenAIChunk).choices?.some((c) => c.finish_reason)) finished = true;
        watch.handOver();
        yield chunk;
        watch.resume();
      }
      queue.length = 0;
      if (done) break;
    }
  } catch (e) {
    throw classify(e, watch.timedOut);
  } finally {
    watch.stop();
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

/** The start of an error body, for the message and the logs. */
async function readCapped(res: ResponseData, cap: number): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const buf of res.body) {
    size += (buf as Buffer).length;
    if (size > cap) {
      res.body.destroy();
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
