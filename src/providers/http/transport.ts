import { Pool, errors as undiciErrors } from 'undici';
import { badRequest } from '../../errors.js';
import type { FirstByte, UpstreamTrace } from '../contract.js';
import { SseDecoder } from '../sse.js';
import type { JsonObject } from '../types.js';
import { UpstreamError } from '../upstream-error.js';
import { readWhole, type HeldBody, type UpstreamLimits } from '../whole-body.js';

type ResponseData = Awaited<ReturnType<Pool['request']>>;

/** Of the client request an upstream request serves: its abort signal, and the trace headers every upstream request carries (SPEC §8). */
export interface RequestScope {
  signal: AbortSignal;
  trace: UpstreamTrace;
  /** Told when a non-streamed answer's 2xx headers came (routing's budget ends there). */
  firstByte?: FirstByte | undefined;
}

/** What every HTTP provider's config has (SPEC §1): where, with which credential, and its timeouts. */
export interface TransportConfig {
  base_url: string;
  api_key?: string | undefined;
  /** The header that carries the key: `authorization` (as `Bearer <key>`) unless the provider says otherwise (Azure: `api-key`). */
  api_key_header?: string | undefined;
  headers: Record<string, string>;
  max_connections: number;
  timeout_ms: number;
  first_byte_timeout_ms: number;
  idle_timeout_ms: number;
  connect_timeout_ms: number;
}

/**
 * The one way providers talk HTTP: a keep-alive undici pool to the base URL, its query string
 * (Azure's `?api-version=…`) on every request, the credential in the header the provider
 * wants, non-2xx answers as failures with a bounded body, whole bodies under the size limits,
 * and SSE read event by event under the stream timers. Adapters only build bodies and read them.
 */
export class UpstreamHttp {
  private readonly pool: Pool;
  private readonly basePath: string;
  private readonly query: string;
  private readonly headers: Record<string, string>;
  /** The same without `content-type`: a request with no body says nothing of its type. */
  private readonly bodilessHeaders: Record<string, string>;
  /** Strings a client must never see in an upstream message: the credential and the host. */
  readonly secrets: readonly string[];

  constructor(
    private readonly cfg: TransportConfig,
    private readonly limits: UpstreamLimits,
    defaults: { headers?: Record<string, string> } = {},
  ) {
    const url = new URL(cfg.base_url);
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.query = url.search.length > 1 ? url.search.slice(1) : '';
    this.pool = new Pool(url.origin, {
      connections: cfg.max_connections,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      connect: { timeout: cfg.connect_timeout_ms },
    });
    this.headers = { 'content-type': 'application/json', accept: 'application/json', ...defaults.headers, ...cfg.headers };
    if (cfg.api_key) {
      const header = (cfg.api_key_header ?? 'authorization').toLowerCase();
      this.headers[header] = header === 'authorization' ? `Bearer ${cfg.api_key}` : cfg.api_key;
    }
    const { 'content-type': _type, ...bodiless } = this.headers;
    this.bodilessHeaders = bodiless;
    this.secrets = [cfg.api_key ?? '', url.host].filter((s) => s !== '');
  }

  /** The request target for `path` (which may carry its own query): base path, path, and the base URL's query. */
  target(path: string): string {
    if (this.query === '') return this.basePath + path;
    return this.basePath + path + (path.includes('?') ? '&' : '?') + this.query;
  }

  /** A non-streamed call, cut after `timeout_ms` for the whole response or when the client goes away. */
  /** `extra`: headers of this request alone (a client's protocol headers passed through), over the defaults. */
  async json<T>(path: string, body: JsonObject, scope: RequestScope, take: (held: HeldBody) => T, extra?: Record<string, string>): Promise<T> {
    return this.whole('POST', path, body, scope, take, extra);
  }

  /**
   * A call without a request body (`GET`/`DELETE` of an upstream resource, such as a stored
   * Response), under the same timeout, size caps and failure classification as json().
   * `take` also gets the status, which is a 2xx.
   */
  read<T>(method: 'GET' | 'DELETE', path: string, scope: RequestScope, take: (held: HeldBody, status: number) => T): Promise<T> {
    return this.whole(method, path, undefined, scope, take);
  }

  private async whole<T>(
    method: 'POST' | 'GET' | 'DELETE',
    path: string,
    body: JsonObject | undefined,
    scope: RequestScope,
    take: (held: HeldBody, status: number) => T,
    extra?: Record<string, string>,
  ): Promise<T> {
    const payload = serialize(body);
    const clientSignal = scope.signal;
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
      // A long answer is bounded by timeout_ms, not routing's budget (FirstByte).
      scope.firstByte?.waiting();
      const res = await this.send(method, path, payload, ac.signal, this.cfg.timeout_ms, this.cfg.timeout_ms, scope.trace, extra);
      return take(await readWhole(res, this.limits), res.statusCode);
    } catch (e) {
      throw classify(e, timedOut);
    } finally {
      clearTimeout(timer);
      clientSignal.removeEventListener('abort', onClientGone);
    }
  }

  /**
   * A streamed call: the `data` of each SSE event, as it comes. Fails (an UpstreamError) on a
   * non-2xx, a body that is not an event stream, the stream timers, or an event over the cap.
   * The caller decides what ends a stream whole; returning early closes the upstream response.
   */
  async stream(path: string, body: JsonObject, scope: RequestScope, extra?: Record<string, string>): Promise<AsyncGenerator<string, void, undefined>> {
    const payload = serialize(body);
    const watch = new StreamWatch(scope.signal, this.cfg.first_byte_timeout_ms, this.cfg.idle_timeout_ms);
    let res: ResponseData;
    try {
      // No undici body timeout: the watch times events and lines, not bytes.
      res = await this.send('POST', path, payload, watch.signal, this.cfg.first_byte_timeout_ms, 0, scope.trace, extra);
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
    return readEvents(res, watch, this.limits.maxEventBytes);
  }

  private async send(
    method: 'POST' | 'GET' | 'DELETE',
    path: string,
    payload: string | null,
    signal: AbortSignal,
    headersTimeout: number,
    bodyTimeout: number,
    trace: UpstreamTrace,
    extra?: Record<string, string>,
  ): Promise<ResponseData> {
    const headers = payload === null ? this.bodilessHeaders : this.headers;
    const res = await this.pool.request({
      method,
      path: this.target(path),
      // The trace last: neither the config's headers nor a client's passed-through ones replace it.
      headers: extra === undefined ? { ...headers, ...trace } : { ...headers, ...extra, ...trace },
      body: payload,
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

async function* readEvents(res: ResponseData, watch: StreamWatch, maxEventBytes: number): AsyncGenerator<string, void, undefined> {
  const sse = new SseDecoder(maxEventBytes);
  const queue: string[] = [];
  try {
    for await (const buf of res.body) {
      const lines = sse.lines;
      sse.feed(buf as Buffer, queue);
      if (queue.length === 0) {
        if (sse.lines !== lines) watch.lines();
        continue;
      }
      for (const data of queue) {
        watch.handOver();
        yield data;
        watch.resume();
      }
      queue.length = 0;
    }
  } catch (e) {
    throw classify(e, watch.timedOut);
  } finally {
    watch.stop();
    if (!res.body.destroyed) res.body.destroy();
  }
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

/** A JSON object from an upstream's text, or a protocol failure. */
export function parseObject(text: string, what: string): JsonObject {
  try {
    const v: unknown = JSON.parse(text);
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v as JsonObject;
  } catch {
    // fall through
  }
  throw new UpstreamError('protocol', `upstream sent ${what} that is not a JSON object`);
}

/**
 * The request body as JSON text, before anything is sent. A value nested too deep for
 * JSON.stringify can only come from a client's JSON string a converter parsed (validation refuses
 * those it knows of): the request's fault, a 400 that is never retried, not a failure of the
 * upstream.
 */
function serialize(body: JsonObject | undefined): string | null {
  if (body === undefined) return null;
  try {
    return JSON.stringify(body);
  } catch (e) {
    if (e instanceof RangeError) throw badRequest('The request nests arrays and objects too deeply to be sent to the model service');
    throw e;
  }
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
