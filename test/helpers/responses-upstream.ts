import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

// A fake of OpenAI's Responses API (`POST /v1/responses`, streamed and not), a real HTTP server
// on 127.0.0.1 speaking the wire format of the API reference: Response objects with output items
// (reasoning, message with output_text, function_call), typed SSE events with sequence numbers,
// a terminal response.completed / response.incomplete / response.failed. It stores the responses
// it made, so `previous_response_id` works only on the server that made the response (as at
// OpenAI: a continuation that reaches another deployment fails), and serves them back:
// `GET /v1/responses/{id}` (the Response object) and `DELETE /v1/responses/{id}` (`{id, object:
// "response", deleted: true}`), 404 for an id it does not have. Proved faithful by the openai
// SDK in test/protocol-openai-responses-fake.test.ts.

type Json = Record<string, unknown>;

export interface Received {
  method: string;
  /** With the query string, as it came. */
  path: string;
  headers: IncomingHttpHeaders;
  body: Json;
}

export interface Usage {
  input: number;
  output: number;
  cached?: number;
  reasoning?: number;
}

export type Script =
  /** An answer: optional reasoning summary, text, function calls; `incomplete` ends at max_output_tokens. */
  | { kind: 'answer'; text?: string; reasoning?: string; calls?: { name: string; arguments: string }[]; usage?: Usage; incomplete?: boolean }
  /** The stream fails after its first events with response.failed (usage as given). */
  | { kind: 'failed'; usage?: Usage }
  | { kind: 'status'; status: number; message?: string };

const DEFAULT_USAGE: Usage = { input: 12, output: 5 };

export class ResponsesUpstream {
  readonly received: Received[] = [];
  /** Responses this server made, by id: a continuation must come back here. */
  readonly stored = new Map<string, Json>();
  script: (body: Json) => Script = () => ({ kind: 'answer', text: 'Hello from Responses.' });
  /** When set, GET and DELETE of a stored response fail with this status and message instead. */
  failReads: { status: number; message: string } | null = null;

  private constructor(
    private readonly server: Server,
    readonly url: string,
    readonly apiKey: string,
  ) {}

  static async start(apiKey: string): Promise<ResponsesUpstream> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const up = new ResponsesUpstream(server, `http://127.0.0.1:${port}/v1`, apiKey);
    server.on('request', (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => up.handle(req.method ?? 'GET', req.url ?? '', req.headers, Buffer.concat(chunks).toString('utf8'), res));
    });
    return up;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private handle(method: string, path: string, headers: IncomingHttpHeaders, text: string, res: ServerResponse): void {
    if (headers.authorization !== `Bearer ${this.apiKey}`) return error(res, 401, 'Incorrect API key provided.', 'invalid_api_key', null);
    const one = /^\/v1\/responses\/([^/?]+)(?:\?.*)?$/.exec(path);
    if (one !== null && (method === 'GET' || method === 'DELETE')) return this.serveStored(method, path, decodeURIComponent(one[1]!), headers, res);
    if (path !== '/v1/responses' || method !== 'POST') return error(res, 404, `Unknown path ${path}`, null, null);
    let body: Json;
    try {
      body = JSON.parse(text) as Json;
    } catch {
      return error(res, 400, 'We could not parse the JSON body of your request.', null, null);
    }
    this.received.push({ method, path, headers, body });
    const prev = body['previous_response_id'];
    if (typeof prev === 'string' && !this.stored.has(prev)) {
      return error(res, 400, `Previous response with id '${prev}' not found.`, 'previous_response_not_found', 'previous_response_id');
    }
    const s = this.script(body);
    if (s.kind === 'status') return error(res, s.status, s.message ?? 'The server had an error.', null, null);
    const id = `resp_${randomBytes(16).toString('hex')}`;
    const base: Json = {
      id, object: 'response', created_at: Math.floor(Date.now() / 1000), status: 'in_progress', error: null, incomplete_details: null,
      instructions: body['instructions'] ?? null, max_output_tokens: body['max_output_tokens'] ?? null, model: body['model'],
      output: [], parallel_tool_calls: true, previous_response_id: prev ?? null, reasoning: { effort: null, summary: null },
      store: body['store'] ?? true, temperature: 1, text: { format: { type: 'text' } }, tool_choice: 'auto', tools: body['tools'] ?? [],
      top_p: 1, truncation: 'disabled', usage: null, user: null, metadata: {},
    };
    if (body['stream'] === true) this.stream(res, base, s);
    else {
      const done = finished(base, s);
      if (done['store'] !== false) this.stored.set(id, done);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(done));
    }
  }

  /** A stored response read or deleted; the query (`include[]`, …) is recorded, not interpreted. */
  private serveStored(method: 'GET' | 'DELETE', path: string, id: string, headers: IncomingHttpHeaders, res: ServerResponse): void {
    this.received.push({ method, path, headers, body: {} });
    if (this.failReads !== null) return error(res, this.failReads.status, this.failReads.message, null, null);
    const found = this.stored.get(id);
    if (found === undefined) return error(res, 404, `Response with id '${id}' not found.`, null, null);
    const body = method === 'GET' ? found : { id, object: 'response', deleted: true };
    if (method === 'DELETE') this.stored.delete(id);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  private stream(res: ServerResponse, base: Json, s: Exclude<Script, { kind: 'status' }>): void {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' });
    let seq = 0;
    const send = (type: string, data: Json): void => {
      res.write(`event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: seq++, ...data })}\n\n`);
    };
    send('response.created', { response: base });
    send('response.in_progress', { response: base });
    if (s.kind === 'failed') {
      send('response.failed', { response: { ...base, status: 'failed', error: { code: 'server_error', message: 'The model broke down.' }, usage: usageOf(s.usage ?? DEFAULT_USAGE) } });
      res.end();
      return;
    }
    const done = finished(base, s);
    (done['output'] as Json[]).forEach((item, output_index) => {
      const id = item['id'] as string;
      if (item['type'] === 'reasoning') {
        const text = ((item['summary'] as Json[])[0]!['text'] as string);
        send('response.output_item.added', { output_index, item: { ...item, summary: [] } });
        send('response.reasoning_summary_part.added', { item_id: id, output_index, summary_index: 0, part: { type: 'summary_text', text: '' } });
        for (const delta of pieces(text)) send('response.reasoning_summary_text.delta', { item_id: id, output_index, summary_index: 0, delta });
        send('response.reasoning_summary_text.done', { item_id: id, output_index, summary_index: 0, text });
        send('response.reasoning_summary_part.done', { item_id: id, output_index, summary_index: 0, part: { type: 'summary_text', text } });
      } else if (item['type'] === 'message') {
        const text = ((item['content'] as Json[])[0]!['text'] as string);
        send('response.output_item.added', { output_index, item: { ...item, status: 'in_progress', content: [] } });
        const at = { item_id: id, output_index, content_index: 0 };
        send('response.content_part.added', { ...at, part: { type: 'output_text', text: '', annotations: [] } });
        for (const delta of pieces(text)) send('response.output_text.delta', { ...at, delta, logprobs: [] });
        send('response.output_text.done', { ...at, text, logprobs: [] });
        send('response.content_part.done', { ...at, part: { type: 'output_text', text, annotations: [] } });
      } else {
        const args = item['arguments'] as string;
        send('response.output_item.added', { output_index, item: { ...item, status: 'in_progress', arguments: '' } });
        for (const delta of pieces(args)) send('response.function_call_arguments.delta', { item_id: id, output_index, delta });
        send('response.function_call_arguments.done', { item_id: id, output_index, name: item['name'], arguments: args });
      }
      send('response.output_item.done', { output_index, item });
    });
    if (done['store'] !== false) this.stored.set(done['id'] as string, done);
    send(done['status'] === 'incomplete' ? 'response.incomplete' : 'response.completed', { response: done });
    res.end();
  }
}

function finished(base: Json, s: Extract<Script, { kind: 'answer' }> | { kind: 'failed' }): Json {
  if (s.kind === 'failed') return base;
  const suffix = (base['id'] as string).slice(5, 21);
  const output: Json[] = [];
  if (s.reasoning !== undefined) output.push({ id: `rs_${suffix}`, type: 'reasoning', summary: [{ type: 'summary_text', text: s.reasoning }] });
  if (s.text !== undefined) {
    output.push({ id: `msg_${suffix}`, type: 'message', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: s.text, annotations: [], logprobs: [] }] });
  }
  for (const [i, c] of (s.calls ?? []).entries()) {
    output.push({ id: `fc_${suffix}${i}`, type: 'function_call', status: 'completed', call_id: `call_${suffix}${i}`, name: c.name, arguments: c.arguments });
  }
  return {
    ...base,
    status: s.incomplete === true ? 'incomplete' : 'completed',
    incomplete_details: s.incomplete === true ? { reason: 'max_output_tokens' } : null,
    output,
    usage: usageOf(s.usage ?? DEFAULT_USAGE),
  };
}

function usageOf(u: Usage): Json {
  return {
    input_tokens: u.input,
    input_tokens_details: { cached_tokens: u.cached ?? 0 },
    output_tokens: u.output,
    output_tokens_details: { reasoning_tokens: u.reasoning ?? 0 },
    total_tokens: u.input + u.output,
  };
}

function pieces(text: string): string[] {
  return text.match(/\s*\S+/g) ?? [text];
}

function error(res: ServerResponse, status: number, message: string, code: string | null, param: string | null): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: { message, type: status === 401 ? 'invalid_request_error' : status >= 500 ? 'server_error' : 'invalid_request_error', param, code } }));
}
