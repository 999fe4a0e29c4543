// A real HTTP server speaking Google's Gemini API (v1beta) as its public reference describes it:
// POST /v1beta/models/{model}:generateContent, :streamGenerateContent?alt=sse (each event
// `data: <GenerateContentResponse>` and a blank line, CRLF as Google sends them), :embedContent and
// :batchEmbedContents, the key in `x-goog-api-key` (or `?key=`), errors as google.rpc.Status JSON
// with details. Tests script its answers and read what it received.
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { once } from 'node:events';

export interface Received {
  method: string;
  /** The path as it arrived, percent-encoding kept. */
  path: string;
  /** The model segment, decoded. */
  model: string;
  /** generateContent, streamGenerateContent, embedContent, batchEmbedContents. */
  action: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  body: Record<string, unknown>;
}

export type GeminiBehavior =
  /** 200 with this GenerateContentResponse (generateContent), or as the only SSE event (stream). */
  | { kind: 'answer'; body: Record<string, unknown> }
  /** SSE events: each object as one `data:` event, or a string sent as it is (raw fixture text). */
  | { kind: 'stream'; events: Array<Record<string, unknown> | string>; cutAfter?: number; cutWhen?: Promise<void>; holdOpen?: Promise<void> }
  /** An error status with Google's error body. */
  | { kind: 'error'; status: number; body: Record<string, unknown>; headers?: Record<string, string> };

export const GEMINI_KEY = 'gemini-test-key-123';

/** Google's body for a rejected API key (400 INVALID_ARGUMENT with reason API_KEY_INVALID). */
export function badKeyBody(): Record<string, unknown> {
  return {
    error: {
      code: 400,
      message: 'API key not valid. Please pass a valid API key.',
      status: 'INVALID_ARGUMENT',
      details: [
        { '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'API_KEY_INVALID', domain: 'googleapis.com', metadata: { service: 'generativelanguage.googleapis.com' } },
        { '@type': 'type.googleapis.com/google.rpc.LocalizedMessage', locale: 'en-US', message: 'API key not valid. Please pass a valid API key.' },
      ],
    },
  };
}

/** Google's 429 for an exhausted quota, with the wait in RetryInfo. */
export function quotaBody(retryDelay = '30s'): Record<string, unknown> {
  return {
    error: {
      code: 429,
      message: 'You exceeded your current quota, please check your plan and billing details.',
      status: 'RESOURCE_EXHAUSTED',
      details: [
        { '@type': 'type.googleapis.com/google.rpc.QuotaFailure', violations: [{ quotaMetric: 'generativelanguage.googleapis.com/generate_content_free_tier_requests', quotaId: 'GenerateRequestsPerMinutePerProjectPerModel-FreeTier' }] },
        { '@type': 'type.googleapis.com/google.rpc.Help', links: [{ description: 'Learn more about Gemini API quotas', url: 'https://ai.google.dev/gemini-api/docs/rate-limits' }] },
        { '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay },
      ],
    },
  };
}

export function invalidArgumentBody(message: string): Record<string, unknown> {
  return { error: { code: 400, message, status: 'INVALID_ARGUMENT' } };
}

/** A one-candidate text answer with usage, as generateContent returns it. */
export function textAnswer(text: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    candidates: [{ content: { parts: [{ text }], role: 'model' }, finishReason: 'STOP', index: 0 }],
    usageMetadata: { promptTokenCount: 7, candidatesTokenCount: 5, totalTokenCount: 12, promptTokensDetails: [{ modality: 'TEXT', tokenCount: 7 }] },
    modelVersion: 'gemini-2.5-flash',
    responseId: 'resp-fake-1',
    ...extra,
  };
}

/** A deterministic vector for a text (what embeddings return here). */
export function fakeVector(text: string, dims = 8): number[] {
  return Array.from({ length: dims }, (_, i) => ((text.length * 31 + i * 7) % 97) / 97 - 0.5);
}

export class GeminiUpstream {
  readonly received: Received[] = [];
  private readonly script: GeminiBehavior[] = [];
  private readonly sockets = new Set<Socket>();
  /** Resolved with each response the client closed before it ended. */
  private readonly closedEarly: Array<() => void> = [];
  earlyCloses = 0;
  private readonly server = createServer((req, res) => void this.handle(req, res));
  url = '';

  async start(): Promise<this> {
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  /** The next requests' answers, in order; without one, a default answer. */
  next(...b: GeminiBehavior[]): this {
    this.script.push(...b);
    return this;
  }

  /** Resolves once the client has closed a response before its end. */
  nextEarlyClose(): Promise<void> {
    return new Promise((resolve) => this.closedEarly.push(resolve));
  }

  get last(): Received {
    const r = this.received[this.received.length - 1];
    if (r === undefined) throw new Error('the fake Gemini received nothing');
    return r;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.server.close();
    await once(this.server, 'close');
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const url = new URL(req.url ?? '/', 'http://x');
    const m = /^\/v1beta\/models\/([^/:]+(?:%2F[^/:]+)*):([A-Za-z]+)$/.exec(url.pathname);
    let body: Record<string, unknown> = {};
    try {
      body = chunks.length === 0 ? {} : (JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>);
    } catch {
      return this.json(res, 400, { error: { code: 400, message: 'Invalid JSON payload received.', status: 'INVALID_ARGUMENT' } });
    }
    if (req.method !== 'POST' || m === null) {
      return this.json(res, 404, { error: { code: 404, message: `Requested entity was not found.`, status: 'NOT_FOUND' } });
    }
    const action = m[2]!;
    this.received.push({ method: req.method, path: req.url ?? '', model: decodeURIComponent(m[1]!), action, query: url.searchParams, headers: req.headers, body });
    const key = req.headers['x-goog-api-key'] ?? url.searchParams.get('key');
    if (key !== GEMINI_KEY) return this.json(res, 400, badKeyBody());
    const scripted = this.script.shift();
    if (scripted?.kind === 'error') return this.json(res, scripted.status, scripted.body, scripted.headers);
    switch (action) {
      case 'generateContent':
        return this.json(res, 200, scripted?.kind === 'answer' ? scripted.body : textAnswer('Hello from the fake Gemini.'));
      case 'streamGenerateContent': {
        if (url.searchParams.get('alt') !== 'sse') {
          // Without alt=sse Google streams a JSON array; the gateway always asks for SSE.
          return this.json(res, 400, invalidArgumentBody('this fake serves streams only with alt=sse'));
        }
        const events = scripted?.kind === 'stream' ? scripted.events : scripted?.kind === 'answer' ? [scripted.body] : defaultStream();
        return this.sse(res, events, scripted?.kind === 'stream' ? scripted : undefined);
      }
      case 'embedContent': {
        const dims = typeof body['outputDimensionality'] === 'number' ? body['outputDimensionality'] : 8;
        return this.json(res, 200, { embedding: { values: fakeVector(textOf(body), dims) } });
      }
      case 'batchEmbedContents': {
        const requests = Array.isArray(body['requests']) ? (body['requests'] as Record<string, unknown>[]) : [];
        for (const r of requests) {
          if (r['model'] !== `models/${decodeURIComponent(m[1]!)}`) {
            return this.json(res, 400, invalidArgumentBody(`Model name in request (${String(r['model'])}) does not match the model in the URL.`));
          }
        }
        const embeddings = requests.map((r) => ({ values: fakeVector(textOf(r), typeof r['outputDimensionality'] === 'number' ? r['outputDimensionality'] : 8) }));
        return this.json(res, 200, { embeddings });
      }
      default:
        return this.json(res, 404, { error: { code: 404, message: `Method not found: ${action}`, status: 'NOT_FOUND' } });
    }
  }

  private json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', 'content-length': Buffer.byteLength(text), ...headers });
    res.end(text);
  }

  private async sse(res: ServerResponse, events: Array<Record<string, unknown> | string>, opts: { cutAfter?: number; cutWhen?: Promise<void>; holdOpen?: Promise<void> } | undefined): Promise<void> {
    res.on('close', () => {
      if (res.writableEnded) return;
      this.earlyCloses++;
      for (const resolve of this.closedEarly.splice(0)) resolve();
    });
    res.writeHead(200, { 'content-type': 'text/event-stream', 'x-content-type-options': 'nosniff' });
    const cutAfter = opts?.cutAfter;
    events.forEach((e, i) => {
      if (cutAfter !== undefined && i >= cutAfter) return;
      res.write(typeof e === 'string' ? e : `data: ${JSON.stringify(e)}\r\n\r\n`);
    });
    if (cutAfter !== undefined) {
      // Cut in the same packet as the events, a reader may drop the events unread with the
      // broken body; a test that needs them read first says when to cut.
      if (opts?.cutWhen !== undefined) await opts.cutWhen;
      res.socket?.end();
      return;
    }
    if (opts?.holdOpen !== undefined) await opts.holdOpen;
    if (!res.destroyed) res.end();
  }
}

function textOf(req: Record<string, unknown>): string {
  const content = req['content'] as { parts?: Array<{ text?: string }> } | undefined;
  return (content?.parts ?? []).map((p) => p.text ?? '').join('');
}

function defaultStream(): Record<string, unknown>[] {
  return [
    { candidates: [{ content: { parts: [{ text: 'Hello' }], role: 'model' }, index: 0 }], usageMetadata: { promptTokenCount: 7, totalTokenCount: 7 }, modelVersion: 'gemini-2.5-flash', responseId: 'resp-fake-s' },
    {
      candidates: [{ content: { parts: [{ text: ' there.' }], role: 'model' }, finishReason: 'STOP', index: 0 }],
      usageMetadata: { promptTokenCount: 7, candidatesTokenCount: 3, totalTokenCount: 10 },
      modelVersion: 'gemini-2.5-flash',
      responseId: 'resp-fake-s',
    },
  ];
}

export async function startGemini(): Promise<GeminiUpstream> {
  return new GeminiUpstream().start();
}
