// A real HTTP server imitating an OpenAI-compatible provider, so integration
// tests exercise the gateway's actual network code (timeouts, resets, SSE).
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

export interface UpstreamUsage {
  prompt_tokens: number;
  completion_tokens: number;
  cached_tokens?: number;
}

export type Behavior =
  /** `bodyDelayMs` (not streamed): the headers go out at once, the body after this long. */
  | { kind: 'ok'; text?: string; usage?: UpstreamUsage; delayMs?: number; bodyDelayMs?: number; gate?: Promise<void> }
  | { kind: 'status'; status: number; body?: unknown; headers?: Record<string, string> }
  | { kind: 'reset' }
  | { kind: 'hang' }
  | {
      kind: 'stream';
      chunks?: string[];
      usage?: UpstreamUsage | null;
      chunkDelayMs?: number;
      breakAfter?: number;
      firstByteDelayMs?: number;
      hangAfter?: number;
      /** Raw deltas to send instead of `chunks` (tool calls, reasoning). */
      deltas?: Record<string, unknown>[];
      /** Nothing is sent until this resolves. */
      gate?: Promise<void>;
    }
  /** Exactly this status, headers and body, whatever the path (a redirect, say). */
  | { kind: 'raw'; status: number; headers?: Record<string, string>; body?: string }
  /**
   * An embeddings answer of about `bytes` bytes (built once per size and shared), announced with
   * Content-Length unless `chunked`. With `barrier`, the headers go out at once and the body only
   * once `barrier` requests are waiting, so that they all hold a response at the same time.
   */
  | { kind: 'big'; bytes: number; chunked?: boolean; barrier?: number }
  /** SSE headers, `events` ordinary chunks, then one `data:` line of `bytes` bytes that never ends. */
  | { kind: 'hugeLine'; bytes: number; events?: number }
  /** SSE headers, `events` ordinary chunks, then `pattern` (default ':\n') a byte every `intervalMs`, over and over. */
  | { kind: 'drip'; intervalMs: number; pattern?: string; events?: number };

type StreamBehavior = Extract<Behavior, { kind: 'stream' }>;

/** The embeddings body of a `big` behaviour: its bytes, and where the data array ends (all before is the vectors). */
export interface BigBody {
  bytes: Buffer;
  dataEnd: number;
  model: string;
  promptTokens: number;
}

const bigBodies = new Map<number, BigBody>();

/** `{"object":"list","data":[…vectors…],"model":…,"usage":…}` of at least `size` bytes, built once per size. */
export function bigEmbeddingsBody(size: number, model = 'big-upstream-model'): BigBody {
  const cached = bigBodies.get(size);
  if (cached !== undefined) return cached;
  const vector = Array.from({ length: 1536 }, (_, i) => ((i * 7919) % 10007 / 10007 - 0.5).toFixed(9)).join(',');
  const head = '{"object":"list","data":[';
  const items: string[] = [];
  let len = head.length;
  for (let i = 0; len < size; i++) {
    const item = `${i === 0 ? '' : ','}{"object":"embedding","index":${i},"embedding":[${vector}]}`;
    items.push(item);
    len += item.length;
  }
  const promptTokens = items.length * 3;
  const prefix = head + items.join('') + ']';
  const body: BigBody = {
    bytes: Buffer.from(`${prefix},"model":${JSON.stringify(model)},"usage":{"prompt_tokens":${promptTokens},"total_tokens":${promptTokens}}}`),
    dataEnd: Buffer.byteLength(prefix),
    model,
    promptTokens,
  };
  bigBodies.set(size, body);
  return body;
}

export interface RecordedRequest {
  method: string;
  /** Raw request target, including any query string. */
  path: string;
  headers: IncomingHttpHeaders;
  /** Parsed JSON, or the raw string when the body is not JSON (empty string for no body). */
  body: unknown;
}

export interface FakeUpstream {
  /** Base URL for the gateway, e.g. http://127.0.0.1:PORT/v1 */
  url: string;
  requests: RecordedRequest[];
  setBehavior(b: Behavior | ((req: RecordedRequest) => Behavior)): void;
  /** Resolves with performance.now() at which the client side of the most recent request closed before the response ended. */
  waitForClientAbort(timeoutMs?: number): Promise<number>;
  close(): Promise<void>;
}

const DEFAULT_TEXT = 'Hello from the fake upstream.';
const DEFAULT_CHUNKS = ['Hello', ' from', ' the', ' fake', ' upstream.'];
const DEFAULT_USAGE: UpstreamUsage = { prompt_tokens: 10, completion_tokens: 7, cached_tokens: 0 };

const ERROR_KINDS: Record<number, { type: string; code: string | null; message: string }> = {
  400: { type: 'invalid_request_error', code: null, message: 'Invalid request.' },
  401: { type: 'invalid_request_error', code: 'invalid_api_key', message: 'Incorrect API key provided.' },
  403: { type: 'invalid_request_error', code: null, message: 'Forbidden.' },
  404: { type: 'invalid_request_error', code: 'model_not_found', message: 'The model does not exist.' },
  429: { type: 'requests', code: 'rate_limit_exceeded', message: 'Rate limit reached.' },
};

function errorBody(status: number, message?: string): unknown {
  const k = ERROR_KINDS[status] ?? { type: 'server_error', code: null, message: 'The server had an error.' };
  return { error: { message: message ?? k.message, type: k.type, param: null, code: k.code } };
}

function wireUsage(u: UpstreamUsage) {
  return {
    prompt_tokens: u.prompt_tokens,
    completion_tokens: u.completion_tokens,
    total_tokens: u.prompt_tokens + u.completion_tokens,
    prompt_tokens_details: { cached_tokens: u.cached_tokens ?? 0 },
  };
}

function field(body: unknown, key: string): unknown {
  return typeof body === 'object' && body !== null ? (body as Record<string, unknown>)[key] : undefined;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const payload = typeof body === 'string' ? body : JSON.stringify(body);
  if (!res.headersSent) res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(payload);
}

/** Splits text into word-ish pieces that keep their leading whitespace, like real token deltas. */
function splitText(text: string): string[] {
  return text.match(/\s*\S+/g) ?? [text];
}

function embeddingInputs(input: unknown): unknown[] {
  if (!Array.isArray(input)) return [input];
  // A flat number array is a single pre-tokenized input.
  return input.length > 0 && input.every((x) => typeof x === 'number') ? [input] : input;
}

function countTokens(input: unknown): number {
  if (Array.isArray(input)) return input.length;
  return typeof input === 'string' ? Math.max(1, input.split(/\s+/).filter(Boolean).length) : 1;
}

interface Exchange {
  /** Set when the server itself killed the connection, so it is not mistaken for a client abort. */
  serverClosed: boolean;
  abortedAt?: number;
}

export async function startFakeUpstream(opts: { behavior?: Behavior } = {}): Promise<FakeUpstream> {
  let behavior: Behavior | ((req: RecordedRequest) => Behavior) = opts.behavior ?? { kind: 'ok' };
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Socket>();
  const waiters = new Set<{ resolve: (t: number) => void; reject: (e: Error) => void }>();
  let latest: Exchange | undefined;
  let closing = false;

  const server = createServer((req, res) => {
    void handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendJson(res, 500, errorBody(500, String(err)));
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 30_000;
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const bufs: Buffer[] = [];
    for await (const c of req) bufs.push(c as Buffer);
    const raw = Buffer.concat(bufs).toString('utf8');
    let body: unknown = raw;
    try {
      if (raw !== '') body = JSON.parse(raw);
    } catch {
      // Not JSON: keep the raw string so tests can still inspect it.
    }
    const rec: RecordedRequest = { method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers, body };
    requests.push(rec);

    const ex: Exchange = { serverClosed: false };
    latest = ex;
    // Cancels pending delays once the connection is gone, so timers never outlive a test.
    const gone = new AbortController();
    res.on('close', () => {
      gone.abort();
      if (res.writableEnded || ex.serverClosed || closing) return;
      ex.abortedAt = performance.now();
      if (ex !== latest) return;
      for (const w of waiters) w.resolve(ex.abortedAt);
      waiters.clear();
    });
    const wait = async (ms: number | undefined): Promise<boolean> => {
      if (!ms) return !gone.signal.aborted;
      try {
        await sleep(ms, undefined, { signal: gone.signal });
        return true;
      } catch {
        return false;
      }
    };
    const kill = (): void => {
      ex.serverClosed = true;
      req.socket.destroy();
    };

    const b = typeof behavior === 'function' ? behavior(rec) : behavior;
    if (b.kind === 'reset') return kill();
    if (b.kind === 'hang') return;
    if (b.kind === 'status') {
      const custom = b.body !== undefined;
      return sendJson(res, b.status, custom ? b.body : errorBody(b.status), b.headers);
    }
    if (b.kind === 'raw') {
      res.writeHead(b.status, b.headers ?? {});
      return void res.end(b.body ?? '');
    }
    if (b.kind === 'big') return sendBig(b, res, gone.signal);
    if (b.kind === 'hugeLine' || b.kind === 'drip') return sendBroken(b, res, gone.signal);

    const pathname = new URL(rec.path, 'http://x').pathname;
    const model = field(body, 'model');

    if (req.method === 'GET' && pathname === '/v1/models') {
      const created = 1_700_000_000;
      const ids = ['gpt-4o-mini', 'gpt-4o', 'text-embedding-3-small'];
      return sendJson(res, 200, { object: 'list', data: ids.map((id) => ({ id, object: 'model', created, owned_by: 'openai' })) });
    }

    if (req.method === 'POST' && pathname === '/v1/embeddings') {
      if (b.kind === 'ok' && !(await wait(b.delayMs))) return;
      const inputs = embeddingInputs(field(body, 'input'));
      const tokens = inputs.reduce<number>((n, x) => n + countTokens(x), 0);
      return sendJson(res, 200, {
        object: 'list',
        data: inputs.map((_, index) => ({ object: 'embedding', index, embedding: [0.1, 0.2, 0.3] })),
        model,
        usage: { prompt_tokens: tokens, total_tokens: tokens },
      });
    }

    if (req.method !== 'POST' || pathname !== '/v1/chat/completions') {
      return sendJson(res, 404, errorBody(404, `Unknown request URL: ${req.method} ${pathname}`));
    }

    const id = `chatcmpl-${randomUUID().replace(/-/g, '').slice(0, 24)}`;
    const created = Math.floor(Date.now() / 1000);
    const wantsStream = field(body, 'stream') === true;

    if ((b.kind === 'ok' || b.kind === 'stream') && b.gate !== undefined) await b.gate;
    if (b.kind === 'ok' && !wantsStream) {
      if (!(await wait(b.delayMs))) return;
      if (b.bodyDelayMs !== undefined) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.flushHeaders();
        if (!(await wait(b.bodyDelayMs))) return;
      }
      return sendJson(res, 200, {
        id,
        object: 'chat.completion',
        created,
        model,
        choices: [
          { index: 0, message: { role: 'assistant', content: b.text ?? DEFAULT_TEXT, refusal: null }, logprobs: null, finish_reason: 'stop' },
        ],
        usage: wireUsage(b.usage ?? DEFAULT_USAGE),
      });
    }

    // An 'ok' behaviour answering a stream:true request streams its text, so the default behaviour
    // works for both modes. A 'stream' behaviour always answers with SSE, whatever the request asked.
    const s: Omit<StreamBehavior, 'kind'> =
      b.kind === 'stream'
        ? b
        : { chunks: b.text === undefined ? undefined : splitText(b.text), usage: b.usage, firstByteDelayMs: b.delayMs };
    const includeUsage = field(field(body, 'stream_options'), 'include_usage') === true;
    const usage = s.usage === undefined ? DEFAULT_USAGE : s.usage;
    const chunk = (choices: unknown[], extra: Record<string, unknown> = {}): string => {
      // OpenAI sends usage: null on every chunk but the last when include_usage is on.
      const u = includeUsage ? { usage: null } : {};
      return `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices, ...u, ...extra })}\n\n`;
    };

    if (!(await wait(s.firstByteDelayMs))) return;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    res.flushHeaders();

    const chunks = s.deltas ?? s.chunks ?? DEFAULT_CHUNKS;
    for (let i = 0; i <= chunks.length; i++) {
      // Break only once what was written has left this process, so the client really gets it first.
      if (i === s.breakAfter) return void res.write('', () => kill());
      if (i === s.hangAfter) return;
      if (i === chunks.length) break;
      if (i > 0 && !(await wait(s.chunkDelayMs))) return;
      const c = chunks[i]!;
      const delta = typeof c !== 'string' ? c : i === 0 ? { role: 'assistant', content: c } : { content: c };
      res.write(chunk([{ index: 0, delta, logprobs: null, finish_reason: null }]));
    }
    if (!(await wait(s.chunkDelayMs))) return;
    res.write(chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }]));
    if (includeUsage && usage !== null) res.write(chunk([], { usage: wireUsage(usage) }));
    res.end('data: [DONE]\n\n');
  }

  // Requests of `big` behaviours that have their headers and wait for the barrier.
  let atBarrier: (() => void)[] = [];
  async function sendBig(b: Extract<Behavior, { kind: 'big' }>, res: ServerResponse, gone: AbortSignal): Promise<void> {
    const { bytes } = bigEmbeddingsBody(b.bytes);
    res.writeHead(200, b.chunked === true ? { 'content-type': 'application/json' } : { 'content-type': 'application/json', 'content-length': String(bytes.length) });
    if (b.barrier !== undefined) {
      res.flushHeaders();
      const all = new Promise<void>((resolve) => atBarrier.push(resolve));
      if (atBarrier.length >= b.barrier) {
        for (const go of atBarrier) go();
        atBarrier = [];
      }
      await all;
    }
    if (gone.aborted) return;
    if (b.chunked !== true) return void res.end(bytes);
    // Chunked: in pieces, as a streaming server would send it, honouring backpressure.
    for (let i = 0; i < bytes.length && !gone.aborted; i += 1 << 20) {
      if (!res.write(bytes.subarray(i, i + (1 << 20)))) await once(res, 'drain', { signal: gone }).catch(() => undefined);
    }
    res.end();
  }

  async function sendBroken(b: Extract<Behavior, { kind: 'hugeLine' | 'drip' }>, res: ServerResponse, gone: AbortSignal): Promise<void> {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.flushHeaders();
    const base = { id: 'chatcmpl-broken', object: 'chat.completion.chunk', created: 1_700_000_000, model: 'broken' };
    for (let i = 0; i < (b.events ?? 0); i++) {
      const delta = i === 0 ? { role: 'assistant', content: `part${i}` } : { content: ` part${i}` };
      res.write(`data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta, logprobs: null, finish_reason: null }] })}\n\n`);
    }
    if (b.kind === 'hugeLine') {
      const piece = Buffer.alloc(64 * 1024, 'x');
      res.write('data: {"choices":[{"delta":{"content":"');
      for (let sent = 0; sent < b.bytes && !gone.aborted; sent += piece.length) {
        if (!res.write(piece)) await once(res, 'drain', { signal: gone }).catch(() => undefined);
      }
      return;
    }
    const pattern = b.pattern ?? ':\n';
    for (let i = 0; !gone.aborted; i++) {
      res.write(pattern[i % pattern.length]!);
      await sleep(b.intervalMs, undefined, { signal: gone }).catch(() => undefined);
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    setBehavior(b) {
      behavior = b;
    },
    waitForClientAbort(timeoutMs = 5000) {
      if (latest?.abortedAt !== undefined) return Promise.resolve(latest.abortedAt);
      return new Promise<number>((resolve, reject) => {
        const w = {
          resolve(t: number) {
            clearTimeout(timer);
            resolve(t);
          },
          reject(e: Error) {
            clearTimeout(timer);
            reject(e);
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(w);
          reject(new Error(`fake upstream: no client abort within ${timeoutMs}ms`));
        }, timeoutMs);
        waiters.add(w);
      });
    },
    async close() {
      closing = true;
      for (const w of waiters) w.reject(new Error('fake upstream closed before a client abort'));
      waiters.clear();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
