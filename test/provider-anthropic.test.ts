// The anthropic provider, built through its descriptor from a parsed config, against the fake
// Anthropic upstream: what it sends (asserted on what the fake received) and what it makes of the
// answers, streams and failures.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChatRequest, StreamEvent } from '../src/types/chat.js';
import type { ChatCall, Provider } from '../src/providers/contract.js';
import { anthropicProvider } from '../src/providers/anthropic/index.js';
import { ByteBudget } from '../src/providers/whole-body.js';
import { UpstreamError, toGatewayError } from '../src/providers/upstream-error.js';
import { AnthropicUpstream, errorEvent } from './helpers/anthropic-upstream.js';

const env = { limits: { maxResponseBytes: 1 << 20, maxEventBytes: 1 << 16, budget: new ByteBudget(1 << 24) } };
let up: AnthropicUpstream;
let provider: Provider;

function make(extra: Record<string, unknown> = {}): Provider {
  const cfg = anthropicProvider.schema.parse({ type: 'anthropic', base_url: up.url, api_key: up.apiKey, ...extra });
  return anthropicProvider.create('claude', cfg, env);
}

before(async () => {
  up = await AnthropicUpstream.start();
  provider = make();
});
after(async () => {
  await provider.close();
  await up.close();
});

function call(over: Partial<ChatRequest> = {}, maxTokens: number | null = 2000): ChatCall {
  const request: ChatRequest = { model: 'claude', messages: [{ role: 'user', content: 'Hi' }], n: 1, stream: false, includeUsage: false, extra: {}, ...over };
  return { request, upstreamModel: 'claude-sonnet-4-5', maxTokens, signal: new AbortController().signal, trace: {} };
}

async function collect(c: ChatCall): Promise<StreamEvent[]> {
  const out: StreamEvent[] = [];
  for await (const ev of await provider.chatStream(c)) out.push(ev);
  return out;
}

async function failure(p: Promise<unknown>): Promise<UpstreamError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof UpstreamError, `an UpstreamError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected a failure');
}

test('chat: text answer; the request goes to /v1/messages with x-api-key and anthropic-version 2023-06-01', async () => {
  up.next({ kind: 'message', id: 'msg_abc', content: [{ type: 'text', text: 'Bonjour' }], usage: { input_tokens: 9, output_tokens: 2 } });
  const res = await provider.chat(call({ messages: [{ role: 'system', content: 'Be kind.' }, { role: 'user', content: 'Salut' }], stop: ['\n\n'], user: 'user-1' }));
  assert.equal(res.id, 'msg_abc');
  assert.equal(res.choices[0]!.content, 'Bonjour');
  assert.equal(res.choices[0]!.finishReason, 'stop');
  assert.deepEqual({ ...res.usage, raw: undefined }, { promptTokens: 9, completionTokens: 2, cachedTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0, raw: undefined });
  const r = up.last;
  assert.equal(r.path, '/v1/messages');
  assert.equal(r.headers['x-api-key'], up.apiKey);
  assert.equal(r.headers['authorization'], undefined);
  assert.equal(r.headers['anthropic-version'], '2023-06-01');
  assert.deepEqual(r.body, {
    model: 'claude-sonnet-4-5',
    max_tokens: 2000,
    messages: [{ role: 'user', content: [{ type: 'text', text: 'Salut' }] }],
    system: [{ type: 'text', text: 'Be kind.' }],
    stop_sequences: ['\n\n'],
    metadata: { user_id: 'user-1' },
  });
});

test('chat: without a cap from the gateway, max_tokens is 4096', async () => {
  await provider.chat(call({}, null));
  assert.equal(up.last.body['max_tokens'], 4096);
});

test('stream: text as it comes, finish and usage; stream: true sent', async () => {
  up.next({ kind: 'message', id: 'msg_s', content: [{ type: 'text', text: 'Hello there' }], usage: { input_tokens: 4, output_tokens: 3 } });
  const events = await collect(call({ stream: true }));
  assert.equal(up.last.body['stream'], true);
  assert.equal(events[0]!.type, 'start');
  assert.equal(events.filter((e) => e.type === 'text').map((e) => (e as { text: string }).text).join(''), 'Hello there');
  assert.deepEqual(events.at(-2), { type: 'finish', choice: 0, reason: 'stop' });
  const usage = events.at(-1);
  assert.ok(usage?.type === 'usage');
  assert.equal(usage.usage.promptTokens, 4);
  assert.equal(usage.usage.completionTokens, 3);
});

test('parallel tool calls in a stream, then the tool results round trip in one user turn', async () => {
  up.next({
    kind: 'message',
    content: [
      { type: 'tool_use', id: 'toolu_P', name: 'weather', input: { city: 'Paris' } },
      { type: 'tool_use', id: 'toolu_L', name: 'weather', input: { city: 'Lyon' } },
    ],
  });
  const tools = [{ name: 'weather', description: 'Weather now', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } }];
  const events = await collect(call({ stream: true, tools, toolChoice: 'auto' }));
  assert.deepEqual(up.last.body['tools'], [{ name: 'weather', description: 'Weather now', input_schema: tools[0]!.parameters }]);
  assert.deepEqual(up.last.body['tool_choice'], { type: 'auto' });
  const starts = events.filter((e) => e.type === 'tool_call_start');
  assert.deepEqual(starts, [
    { type: 'tool_call_start', choice: 0, index: 0, id: 'toolu_P', name: 'weather' },
    { type: 'tool_call_start', choice: 0, index: 1, id: 'toolu_L', name: 'weather' },
  ]);
  const args = (i: number): string => events.filter((e) => e.type === 'tool_call_delta' && e.index === i).map((e) => (e as { arguments: string }).arguments).join('');
  assert.deepEqual([JSON.parse(args(0)), JSON.parse(args(1))], [{ city: 'Paris' }, { city: 'Lyon' }]);
  assert.ok(events.some((e) => e.type === 'finish' && e.reason === 'tool_calls'));

  up.next({ kind: 'message', content: [{ type: 'text', text: 'Paris 18C, Lyon 20C.' }] });
  const res = await provider.chat(
    call({
      tools,
      messages: [
        { role: 'user', content: 'Weather in Paris and Lyon?' },
        { role: 'assistant', content: null, toolCalls: [{ id: 'toolu_P', name: 'weather', arguments: args(0) }, { id: 'toolu_L', name: 'weather', arguments: args(1) }] },
        { role: 'tool', toolCallId: 'toolu_P', content: '18C' },
        { role: 'tool', toolCallId: 'toolu_L', content: '20C' },
      ],
    }),
  );
  assert.equal(res.choices[0]!.content, 'Paris 18C, Lyon 20C.');
  assert.deepEqual(up.last.body['messages'], [
    { role: 'user', content: [{ type: 'text', text: 'Weather in Paris and Lyon?' }] },
    { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_P', name: 'weather', input: { city: 'Paris' } }, { type: 'tool_use', id: 'toolu_L', name: 'weather', input: { city: 'Lyon' } }] },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_P', content: '18C' }, { type: 'tool_result', tool_use_id: 'toolu_L', content: '20C' }] },
  ]);
});

test('non-streamed tool calls, parallel_tool_calls: false and a named tool choice', async () => {
  up.next({ kind: 'message', content: [{ type: 'tool_use', id: 'toolu_1', name: 'lookup', input: { q: 'x' } }] });
  const res = await provider.chat(call({ tools: [{ name: 'lookup' }], toolChoice: { name: 'lookup' }, parallelToolCalls: false }));
  assert.deepEqual(res.choices[0]!.toolCalls, [{ id: 'toolu_1', name: 'lookup', arguments: '{"q":"x"}' }]);
  assert.equal(res.choices[0]!.finishReason, 'tool_calls');
  assert.deepEqual(up.last.body['tool_choice'], { type: 'tool', name: 'lookup', disable_parallel_tool_use: true });
  assert.deepEqual(up.last.body['tools'], [{ name: 'lookup', input_schema: { type: 'object', properties: {} } }]);
});

test('images: data URL and http URL', async () => {
  await provider.chat(
    call({ messages: [{ role: 'user', content: [{ type: 'text', text: 'Compare' }, { type: 'image', url: 'data:image/jpeg;base64,/9j/4AAQ' }, { type: 'image', url: 'https://img.example/b.png' }] }] }),
  );
  assert.deepEqual((up.last.body['messages'] as { content: unknown[] }[])[0]!.content, [
    { type: 'text', text: 'Compare' },
    { type: 'image', source: { type: 'base64', media_type: 'image/jpeg', data: '/9j/4AAQ' } },
    { type: 'image', source: { type: 'url', url: 'https://img.example/b.png' } },
  ]);
});

test('JSON mode: the schema goes in the system prompt; no unknown field reaches Anthropic', async () => {
  up.next({ kind: 'message', content: [{ type: 'text', text: '{"a":1}' }] });
  const res = await provider.chat(call({ responseFormat: { type: 'json_schema', name: 'thing', schema: { type: 'object', properties: { a: { type: 'integer' } } } }, extra: { response_format: 'x', logprobs: true } }));
  assert.equal(res.choices[0]!.content, '{"a":1}');
  const system = up.last.body['system'] as { text: string }[];
  assert.match(system[0]!.text, /JSON Schema "thing"/);
  assert.ok(system[0]!.text.includes('{"type":"object","properties":{"a":{"type":"integer"}}}'));
});

test('reasoning: effort → thinking budget; thinking, signature and redacted thinking come back, and go back', async () => {
  up.next({ kind: 'message', content: [{ type: 'thinking', thinking: 'Think twice.', signature: 'sig-1' }, { type: 'redacted_thinking', data: 'RED' }, { type: 'text', text: 'Done.' }] });
  const events = await collect(call({ stream: true, reasoningEffort: 'medium', temperature: 0.5 }, 10000));
  assert.deepEqual(up.last.body['thinking'], { type: 'enabled', budget_tokens: 4096 });
  assert.equal(up.last.body['temperature'], undefined);
  assert.equal(events.filter((e) => e.type === 'reasoning').map((e) => (e as { text: string }).text).join(''), 'Think twice.');
  assert.ok(events.some((e) => e.type === 'reasoning_signature' && e.signature === 'sig-1'));
  assert.ok(events.some((e) => e.type === 'reasoning_redacted' && e.data === 'RED'));

  up.next({ kind: 'message', content: [{ type: 'thinking', thinking: 'Again.', signature: 'sig-2' }, { type: 'text', text: 'Yes.' }] });
  const res = await provider.chat(
    call(
      {
        reasoningEffort: 'low',
        messages: [
          { role: 'user', content: 'Q1' },
          { role: 'assistant', content: 'Done.', reasoning: [{ text: 'Think twice.', signature: 'sig-1' }, { text: '', redacted: 'RED' }] },
          { role: 'user', content: 'Q2' },
        ],
      },
      10000,
    ),
  );
  assert.deepEqual(res.choices[0]!.reasoning, [{ text: 'Again.', signature: 'sig-2' }]);
  assert.deepEqual((up.last.body['messages'] as { content: unknown[] }[])[1]!.content, [
    { type: 'thinking', thinking: 'Think twice.', signature: 'sig-1' },
    { type: 'redacted_thinking', data: 'RED' },
    { type: 'text', text: 'Done.' },
  ]);
});

test('every stop reason, streamed and not', async () => {
  const cases: [string, string][] = [['end_turn', 'stop'], ['stop_sequence', 'stop'], ['pause_turn', 'stop'], ['max_tokens', 'length'], ['tool_use', 'tool_calls'], ['refusal', 'content_filter']];
  for (const [stopReason, want] of cases) {
    up.next({ kind: 'message', content: [{ type: 'text', text: 'x' }], stopReason });
    assert.equal((await provider.chat(call())).choices[0]!.finishReason, want, stopReason);
    up.next({ kind: 'message', content: [{ type: 'text', text: 'x' }], stopReason });
    const finish = (await collect(call({ stream: true }))).filter((e) => e.type === 'finish');
    assert.deepEqual(finish, [{ type: 'finish', choice: 0, reason: want }], stopReason);
  }
});

test('usage with cache reads and writes, streamed and not; raw is Anthropic usage', async () => {
  const usage = { input_tokens: 30, output_tokens: 50, cache_creation_input_tokens: 1000, cache_read_input_tokens: 2000 };
  const want = { promptTokens: 3030, completionTokens: 50, cachedTokens: 2000, cacheWriteTokens: 1000, reasoningTokens: 0 };
  up.next({ kind: 'message', content: [{ type: 'text', text: 'x' }], usage });
  const res = await provider.chat(call());
  assert.deepEqual({ ...res.usage, raw: undefined }, { ...want, raw: undefined });
  assert.deepEqual(res.usage?.raw, usage);
  up.next({ kind: 'message', content: [{ type: 'text', text: 'x' }], usage });
  const events = await collect(call({ stream: true }));
  const u = events.filter((e) => e.type === 'usage');
  assert.equal(u.length, 1);
  assert.ok(u[0]!.type === 'usage');
  assert.deepEqual({ ...u[0]!.usage, raw: undefined }, { ...want, raw: undefined });
  assert.deepEqual(u[0]!.usage.raw, usage);
});

const started = { type: 'message_start', message: { id: 'msg_e', type: 'message', role: 'assistant', model: 'm', content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 5, output_tokens: 1 } } };
const someText = [
  { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
  { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Once' } },
];

test('an error event mid-stream: the iterator throws after the text (overloaded → saturated 529)', async () => {
  up.next({ kind: 'events', events: [started, ...someText, errorEvent('overloaded_error', 'Overloaded')] });
  const seen: StreamEvent[] = [];
  const err = await failure(
    (async () => {
      for await (const ev of await provider.chatStream(call({ stream: true }))) seen.push(ev);
    })(),
  );
  assert.deepEqual(seen.map((e) => e.type), ['start', 'text']);
  assert.equal(err.status, 529);
  assert.ok(err.isSaturated);
  up.next({ kind: 'events', events: [started, ...someText, errorEvent('api_error', 'Internal server error')] });
  const other = await failure(collect(call({ stream: true })));
  assert.equal(other.status, 500);
  assert.equal(toGatewayError(other).status, 502);
});

test('an error event before anything else fails chatStream itself (failover still possible)', async () => {
  up.next({ kind: 'events', events: [errorEvent('overloaded_error', 'Overloaded')] });
  const err = await failure(provider.chatStream(call({ stream: true })));
  assert.equal(err.status, 529);
  assert.ok(err.retryable);
});

test('an error event or a cut after message_start and pings, before any output, still fails chatStream itself', async () => {
  up.next({ kind: 'events', events: [started, { type: 'ping' }, errorEvent('overloaded_error', 'Overloaded')] });
  const busy = await failure(provider.chatStream(call({ stream: true })));
  assert.equal(busy.status, 529);
  assert.ok(busy.isSaturated);
  up.next({ kind: 'events', events: [started, { type: 'ping' }], end: 'cut' });
  assert.equal((await failure(provider.chatStream(call({ stream: true })))).failure, 'reset');
  // The start held back while waiting still comes first once output follows.
  up.next({ kind: 'message', id: 'msg_held', content: [{ type: 'text', text: 'Hi' }] });
  const events = await collect(call({ stream: true }));
  assert.deepEqual(events.slice(0, 2).map((e) => e.type), ['start', 'text']);
  assert.equal(events[0]!.type === 'start' && events[0]!.id, 'msg_held');
});

test('a stream that ends or is cut before message_stop is a reset', async () => {
  up.next({ kind: 'events', events: [started, ...someText, { type: 'content_block_stop', index: 0 }] });
  assert.equal((await failure(collect(call({ stream: true })))).failure, 'reset');
  up.next({ kind: 'events', events: [started, ...someText], end: 'cut' });
  assert.equal((await failure(collect(call({ stream: true })))).failure, 'reset');
});

test('overloaded (HTTP 529) and rate limited (429 with retry-after) are saturated: 503 with retry-after', async () => {
  up.next({ kind: 'error', status: 529, type: 'overloaded_error', message: 'Overloaded' });
  const busy = await failure(provider.chat(call()));
  assert.ok(busy.isSaturated);
  assert.equal(toGatewayError(busy).status, 503);
  up.next({ kind: 'error', status: 429, type: 'rate_limit_error', message: 'Number of request tokens has exceeded your per-minute rate limit', headers: { 'retry-after': '7' } });
  const limited = await failure(provider.chatStream(call({ stream: true })));
  assert.ok(limited.isSaturated);
  const shown = toGatewayError(limited);
  assert.equal(shown.status, 503);
  assert.equal(shown.retryAfterMs, 7000);
});

test('a bad key is the gateway credential problem: 502, nothing of the key in the message', async () => {
  const wrongKey = 'sk-ant-api03-WRONGwrongWRONGwrong0123456789';
  const bad = make({ api_key: wrongKey });
  try {
    const err = await failure(bad.chat(call()));
    assert.equal(err.status, 401);
    const shown = toGatewayError(err, bad.secrets);
    assert.equal(shown.status, 502);
    assert.ok(!JSON.stringify({ m: shown.message }).includes(wrongKey));
    assert.equal(up.last.headers['x-api-key'], wrongKey);
    // A proxy answering 400 with an authentication_error body is the same problem.
    up.next({ kind: 'error', status: 400, type: 'authentication_error', message: `invalid x-api-key ${up.apiKey}` });
    const proxied = await failure(provider.chat(call()));
    assert.equal(toGatewayError(proxied, provider.secrets).status, 502);
    assert.ok(!toGatewayError(proxied, provider.secrets).message.includes(up.apiKey));
  } finally {
    await bad.close();
  }
});

test('api_key_header: authorization sends a Bearer token instead (a proxy in front of Anthropic)', async () => {
  const viaBearer = make({ api_key_header: 'authorization' });
  try {
    await viaBearer.chat(call());
    assert.equal(up.last.headers['authorization'], `Bearer ${up.apiKey}`);
    assert.equal(up.last.headers['x-api-key'], undefined);
  } finally {
    await viaBearer.close();
  }
});

test('invalid_request_error stays a client fault with Anthropic words, cleaned of the key', async () => {
  up.next({ kind: 'error', status: 400, type: 'invalid_request_error', message: `prompt is too long: 210000 tokens > 200000 maximum (key ${up.apiKey})` });
  const err = await failure(provider.chat(call()));
  assert.ok(err.isClientFault);
  const shown = toGatewayError(err, provider.secrets);
  assert.equal(shown.status, 400);
  assert.match(shown.message, /prompt is too long: 210000 tokens > 200000 maximum/);
  assert.ok(!shown.message.includes(up.apiKey));
});

test('embeddings: refused as a client fault without calling Anthropic', async () => {
  const before = up.received.length;
  const err = await failure(provider.embeddings({ body: { input: 'x' }, upstreamModel: 'claude', signal: new AbortController().signal, trace: {} }));
  assert.ok(err.isClientFault);
  assert.equal(toGatewayError(err).message, 'This model does not support embeddings');
  assert.equal(up.received.length, before);
});

test('a consumer that stops early closes the upstream stream', async () => {
  up.next({ kind: 'message', content: [{ type: 'text', text: 'a long answer' }] });
  const stream = await provider.chatStream(call({ stream: true }));
  for await (const ev of stream) if (ev.type === 'text') break;
  // The pool's connection is free again: the next request is served.
  up.next({ kind: 'message', content: [{ type: 'text', text: 'next' }] });
  assert.equal((await provider.chat(call())).choices[0]!.content, 'next');
});

test('reasoning in a tool loop: with the signed thinking sent back thinking stays on; without it the request goes without thinking', async () => {
  const tools = [{ name: 'calc' }];
  const history = (signed: boolean): ChatRequest['messages'] => [
    { role: 'user', content: '2+2?' },
    { role: 'assistant', content: null, toolCalls: [{ id: 'toolu_c', name: 'calc', arguments: '{}' }], ...(signed ? { reasoning: [{ text: 'use calc', signature: 'sig-c' }] } : {}) },
    { role: 'tool', toolCallId: 'toolu_c', content: '4' },
  ];
  await provider.chat(call({ tools, reasoningEffort: 'low', messages: history(true) }, 5000));
  assert.deepEqual(up.last.body['thinking'], { type: 'enabled', budget_tokens: 1024 });
  const res = await provider.chat(call({ tools, reasoningEffort: 'low', temperature: 0.1, messages: history(false) }, 5000));
  assert.equal(res.choices[0]!.finishReason, 'stop');
  assert.equal(up.last.body['thinking'], undefined);
  assert.equal(up.last.body['temperature'], 0.1);
});
