// A real HTTP server speaking Anthropic's Messages API (POST /v1/messages, anthropic-version
// 2023-06-01) as its public API reference describes it: message objects, the SSE event grammar
// (message_start, content_block_start/delta/stop, message_delta, message_stop, ping, error), error
// bodies {type:'error', error:{type, message}} and a request-id header. It checks requests the way
// Anthropic does where the gateway's translation could go wrong (required fields and headers,
// unknown fields, alternating roles, thinking rules), and records what it received.
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';

type Json = Record<string, unknown>;

export interface AnthropicUsageIn {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens?: number;
  cache_read_input_tokens?: number;
}

export type Block =
  | { type: 'text'; text: string }
  | { type: 'tool_use'; id: string; name: string; input: Json }
  | { type: 'thinking'; thinking: string; signature: string }
  | { type: 'redacted_thinking'; data: string };

export type Script =
  /** A message: the JSON object, or (for `stream: true`) the events that build it. */
  | { kind: 'message'; content: Block[]; stopReason?: string; stopSequence?: string | null; usage?: AnthropicUsageIn; id?: string }
  /** Exactly these events (each sent as `event: <type>`), then `end`: the response ends (default) or the socket is cut. */
  | { kind: 'events'; events: Json[]; end?: 'close' | 'cut' }
  /** A recorded stream, byte for byte. */
  | { kind: 'sse'; text: string }
  /** An error answer as Anthropic shapes it. */
  | { kind: 'error'; status: number; type: string; message: string; headers?: Record<string, string> };

export interface Received {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: Json;
}

const TOP_LEVEL = new Set([
  'model', 'messages', 'max_tokens', 'system', 'stop_sequences', 'stream', 'temperature', 'top_p', 'top_k', 'tools',
  'tool_choice', 'thinking', 'metadata', 'service_tier', 'container', 'mcp_servers', 'context_management',
]);

export class AnthropicUpstream {
  readonly received: Received[] = [];
  private readonly scripts: Script[] = [];
  private requests = 0;

  private constructor(
    private readonly server: Server,
    readonly url: string,
    readonly apiKey: string,
  ) {}

  static async start(apiKey = 'sk-ant-test-0123456789abcdef'): Promise<AnthropicUpstream> {
    let self: AnthropicUpstream | null = null;
    const server = createServer((req, res) => void self!.handle(req, res));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    self = new AnthropicUpstream(server, `http://127.0.0.1:${port}`, apiKey);
    return self;
  }

  /** Answers for the next requests, in order; without one a request gets a short text message. */
  next(...scripts: Script[]): this {
    this.scripts.push(...scripts);
    return this;
  }

  get last(): Received {
    const r = this.received[this.received.length - 1];
    if (r === undefined) throw new Error('the fake upstream received no request');
    return r;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    this.server.close();
    await once(this.server, 'close');
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = `req_fake${String(++this.requests).padStart(6, '0')}`;
    res.setHeader('request-id', requestId);
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    let body: Json = {};
    try {
      body = JSON.parse(text) as Json;
    } catch {
      // checked below
    }
    this.received.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, body });

    if (req.method !== 'POST' || req.url !== '/v1/messages') return sendError(res, 404, 'not_found_error', 'Not found');
    // Anthropic takes the key in x-api-key, or (as its current SDK sends it) as a Bearer token.
    const auth = req.headers['authorization'];
    const key = req.headers['x-api-key'] ?? (auth?.startsWith('Bearer ') === true ? auth.slice(7) : undefined);
    if (key === undefined) return sendError(res, 401, 'authentication_error', 'x-api-key header is required');
    if (key !== this.apiKey) return sendError(res, 401, 'authentication_error', 'invalid x-api-key');
    if (req.headers['anthropic-version'] === undefined) return sendError(res, 400, 'invalid_request_error', 'anthropic-version: header is required');
    const problem = text === '' ? 'request body is empty' : checkBody(body);
    if (problem !== null) return sendError(res, 400, 'invalid_request_error', problem);

    const script = this.scripts.shift() ?? { kind: 'message', content: [{ type: 'text', text: 'Hello from the fake.' }] };
    if (script.kind === 'error') return sendError(res, script.status, script.type, script.message, script.headers);
    const model = String(body['model']);
    if (script.kind === 'message' && body['stream'] !== true) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(messageObject(script, model)));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
    if (script.kind === 'sse') {
      res.end(script.text);
      return;
    }
    const events = script.kind === 'message' ? messageEvents(script, model) : script.events;
    for (const ev of events) res.write(sse(ev));
    if (script.kind === 'events' && script.end === 'cut') {
      // Let the events reach the client before the connection breaks.
      await new Promise<void>((resolve) => res.write('', () => resolve()));
      res.socket?.destroy();
      return;
    }
    res.end();
  }
}

export function sse(ev: Json): string {
  return `event: ${String(ev['type'])}\ndata: ${JSON.stringify(ev)}\n\n`;
}

export function errorEvent(type: string, message: string): Json {
  return { type: 'error', error: { type, message } };
}

function sendError(res: ServerResponse, status: number, type: string, message: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify({ type: 'error', error: { type, message }, request_id: res.getHeader('request-id') }));
}

function usageOf(s: Extract<Script, { kind: 'message' }>): Json {
  const u = s.usage ?? { input_tokens: 12, output_tokens: 7 };
  return { input_tokens: u.input_tokens, cache_creation_input_tokens: u.cache_creation_input_tokens ?? 0, cache_read_input_tokens: u.cache_read_input_tokens ?? 0, output_tokens: u.output_tokens };
}

function stopReasonOf(s: Extract<Script, { kind: 'message' }>): string {
  return s.stopReason ?? (s.content.some((b) => b.type === 'tool_use') ? 'tool_use' : 'end_turn');
}

export function messageObject(s: Extract<Script, { kind: 'message' }>, model: string): Json {
  return {
    id: s.id ?? 'msg_01FakeMessage',
    type: 'message',
    role: 'assistant',
    model,
    content: s.content,
    stop_reason: stopReasonOf(s),
    stop_sequence: s.stopSequence ?? null,
    usage: usageOf(s),
  };
}

/** The events Anthropic sends for a message: every block started empty, filled by deltas in two pieces, stopped. */
export function messageEvents(s: Extract<Script, { kind: 'message' }>, model: string): Json[] {
  const usage = usageOf(s);
  const out: Json[] = [
    { type: 'message_start', message: { ...messageObject(s, model), content: [], stop_reason: null, stop_sequence: null, usage: { ...usage, output_tokens: 1 } } },
    { type: 'ping' },
  ];
  s.content.forEach((b, index) => {
    const halves = (t: string): string[] => [t.slice(0, Math.ceil(t.length / 2)), t.slice(Math.ceil(t.length / 2))].filter((x) => x !== '');
    switch (b.type) {
      case 'text':
        out.push({ type: 'content_block_start', index, content_block: { type: 'text', text: '' } });
        for (const text of halves(b.text)) out.push({ type: 'content_block_delta', index, delta: { type: 'text_delta', text } });
        break;
      case 'tool_use':
        out.push({ type: 'content_block_start', index, content_block: { type: 'tool_use', id: b.id, name: b.name, input: {} } });
        out.push({ type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: '' } });
        for (const partial_json of halves(JSON.stringify(b.input))) out.push({ type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json } });
        break;
      case 'thinking':
        out.push({ type: 'content_block_start', index, content_block: { type: 'thinking', thinking: '', signature: '' } });
        for (const thinking of halves(b.thinking)) out.push({ type: 'content_block_delta', index, delta: { type: 'thinking_delta', thinking } });
        out.push({ type: 'content_block_delta', index, delta: { type: 'signature_delta', signature: b.signature } });
        break;
      case 'redacted_thinking':
        out.push({ type: 'content_block_start', index, content_block: b });
        break;
    }
    out.push({ type: 'content_block_stop', index });
  });
  out.push({ type: 'message_delta', delta: { stop_reason: stopReasonOf(s), stop_sequence: s.stopSequence ?? null }, usage: { output_tokens: usage['output_tokens'] } });
  out.push({ type: 'message_stop' });
  return out;
}

/** What Anthropic would refuse with a 400 (the subset a translation can get wrong), or null. */
function checkBody(body: Json): string | null {
  for (const k of Object.keys(body)) if (!TOP_LEVEL.has(k)) return `${k}: Extra inputs are not permitted`;
  if (typeof body['model'] !== 'string') return 'model: Field required';
  const max = body['max_tokens'];
  if (typeof max !== 'number' || !Number.isInteger(max) || max < 1) return 'max_tokens: Field required';
  const messages = body['messages'];
  if (!Array.isArray(messages) || messages.length === 0) return 'messages: at least one message is required';
  let prev = '';
  for (const [i, m] of (messages as Json[]).entries()) {
    const role = m['role'];
    if (role !== 'user' && role !== 'assistant') return `messages.${i}.role: Input should be 'user' or 'assistant'`;
    if (role === prev) return 'messages: roles must alternate between "user" and "assistant"';
    prev = role;
    const content = m['content'];
    if (typeof content === 'string') continue;
    if (!Array.isArray(content) || content.length === 0) return `messages.${i}: all messages must have non-empty content`;
    let seenOther = false;
    for (const b of content as Json[]) {
      if (b['type'] === 'text' && b['text'] === '') return `messages.${i}: text content blocks must be non-empty`;
      if (b['type'] === 'tool_result' && seenOther) return `messages.${i}: tool_result blocks must come first in the user message`;
      if (b['type'] !== 'tool_result') seenOther = true;
      if (b['type'] === 'tool_use' && (b['input'] === null || typeof b['input'] !== 'object' || Array.isArray(b['input']))) return `messages.${i}: tool_use.input: Input should be a valid dictionary`;
    }
  }
  const thinking = body['thinking'] as Json | undefined;
  if (thinking !== undefined) {
    const budget = thinking['budget_tokens'];
    if (typeof budget !== 'number' || budget < 1024) return 'thinking.enabled.budget_tokens: Input should be greater than or equal to 1024';
    if (budget >= max) return '`max_tokens` must be greater than `thinking.budget_tokens`';
    if (body['temperature'] !== undefined) return '`temperature` may only be set to 1 when thinking is enabled';
    if (body['top_k'] !== undefined) return '`top_k` must be unset when thinking is enabled';
    const choice = body['tool_choice'] as Json | undefined;
    if (choice !== undefined && (choice['type'] === 'any' || choice['type'] === 'tool')) return 'Thinking may not be enabled when tool_choice forces tool use.';
    const lastAssistant = [...(messages as Json[])].reverse().find((m) => m['role'] === 'assistant');
    const blocks = Array.isArray(lastAssistant?.['content']) ? (lastAssistant['content'] as Json[]) : [];
    if (blocks.some((b) => b['type'] === 'tool_use') && blocks[0]?.['type'] !== 'thinking' && blocks[0]?.['type'] !== 'redacted_thinking') {
      return 'messages: Expected `thinking` or `redacted_thinking`, but found `tool_use`. When `thinking` is enabled, a final `assistant` message must start with a thinking block.';
    }
  }
  if (body['tool_choice'] !== undefined && body['tools'] === undefined) return 'tool_choice may only be specified while providing tools.';
  return null;
}
