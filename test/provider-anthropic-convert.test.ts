// Anthropic converters and mappers, without a server: requests in the typed form → Messages API
// bodies, answers and recorded streams (test/fixtures/anthropic/*.sse) → the typed form.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { ChatRequest, StreamEvent } from '../src/types/chat.js';
import type { ChatCall } from '../src/providers/contract.js';
import { SseDecoder } from '../src/providers/sse.js';
import { UpstreamError, toGatewayError } from '../src/providers/upstream-error.js';
import { DEFAULT_MAX_TOKENS, jsonInstruction, thinkingBudget, toImage, toMessages, toMessagesBody, toToolChoice, toToolUse } from '../src/providers/anthropic/to-provider.js';
import { finishReason, fromMessage, fromUsage, reclassify, StreamConverter, streamError } from '../src/providers/anthropic/from-provider.js';
import type { AnthropicStreamEvent } from '../src/providers/anthropic/wire.js';

function req(over: Partial<ChatRequest> = {}): ChatRequest {
  return { model: 'claude', messages: [{ role: 'user', content: 'Hi' }], n: 1, stream: false, includeUsage: false, extra: {}, ...over };
}
function call(over: Partial<ChatRequest> = {}, maxTokens: number | null = 1000): ChatCall {
  return { request: req(over), upstreamModel: 'claude-sonnet-4-5', maxTokens, signal: new AbortController().signal, trace: {} };
}

function replay(name: string): { events: StreamEvent[]; error: unknown; done: boolean } {
  const dec = new SseDecoder(1 << 20);
  const datas: string[] = [];
  dec.feed(readFileSync(new URL(`./fixtures/anthropic/${name}`, import.meta.url)), datas);
  const conv = new StreamConverter(1700000000);
  const events: StreamEvent[] = [];
  try {
    for (const d of datas) events.push(...conv.step(JSON.parse(d) as AnthropicStreamEvent));
  } catch (e) {
    return { events, error: e, done: conv.done };
  }
  return { events, error: null, done: conv.done };
}

// ---- requests ----

test('body: model, max_tokens always, system and developer messages on top, stop sequences, sampling', () => {
  const body = toMessagesBody(
    call({
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hi' },
        { role: 'developer', content: [{ type: 'text', text: 'Use French.' }] },
      ],
      stop: ['END'],
      temperature: 0.3,
      topP: 0.9,
      seed: 7,
    }),
    false,
  );
  assert.deepEqual(body, {
    model: 'claude-sonnet-4-5',
    max_tokens: 1000,
    messages: [{ role: 'user', content: [{ type: 'text', text: 'Hi' }] }],
    system: [{ type: 'text', text: 'Be brief.' }, { type: 'text', text: 'Use French.' }],
    stop_sequences: ['END'],
    temperature: 0.3,
    top_p: 0.9,
  });
  assert.equal(toMessagesBody(call({}, null), true).max_tokens, DEFAULT_MAX_TOKENS);
  assert.equal(toMessagesBody(call({}, null), true).stream, true);
});

test('body: extra passes only what Anthropic knows; user becomes metadata.user_id', () => {
  const body = toMessagesBody(call({ user: 'u-42', extra: { top_k: 5, service_tier: 'auto', metadata: { foo: 1 }, frequency_penalty: 1, logit_bias: {} } }), false);
  assert.equal(body.top_k, 5);
  assert.equal(body.service_tier, 'auto');
  assert.deepEqual(body.metadata, { foo: 1, user_id: 'u-42' });
  assert.equal((body as unknown as Record<string, unknown>)['frequency_penalty'], undefined);
  assert.equal((body as unknown as Record<string, unknown>)['logit_bias'], undefined);
});

test('tools: input_schema, a tool without parameters takes none; tool_choice and parallel_tool_calls', () => {
  const body = toMessagesBody(
    call({ tools: [{ name: 'now', description: 'time' }, { name: 'w', parameters: { type: 'object', properties: { c: { type: 'string' } } }, strict: true }], toolChoice: 'required', parallelToolCalls: false }),
    false,
  );
  assert.deepEqual(body.tools, [
    { name: 'now', description: 'time', input_schema: { type: 'object', properties: {} } },
    { name: 'w', input_schema: { type: 'object', properties: { c: { type: 'string' } } } },
  ]);
  assert.deepEqual(body.tool_choice, { type: 'any', disable_parallel_tool_use: true });
  assert.deepEqual(toToolChoice('auto', undefined), { type: 'auto' });
  assert.deepEqual(toToolChoice('none', false), { type: 'none' });
  assert.deepEqual(toToolChoice({ name: 'w' }, true), { type: 'tool', name: 'w' });
  assert.deepEqual(toToolChoice(undefined, false), { type: 'auto', disable_parallel_tool_use: true });
  assert.equal(toToolChoice(undefined, undefined), undefined);
  // No tools: no tool_choice (Anthropic refuses one without tools).
  assert.equal(toMessagesBody(call({ toolChoice: 'auto' }), false).tool_choice, undefined);
});

test('messages: tool calls ↔ tool_use, tool results merged into one user turn first, same roles merged', () => {
  const out = toMessages([
    { role: 'user', content: 'Weather in Paris and Lyon?' },
    {
      role: 'assistant',
      content: 'Checking.',
      reasoning: [{ text: 'two calls', signature: 'sig1' }, { text: '', redacted: 'REDACTED' }, { text: 'unsigned, dropped' }],
      toolCalls: [
        { id: 'toolu_1', name: 'w', arguments: '{"c":"Paris"}' },
        { id: 'toolu_2', name: 'w', arguments: '{"c":"Ly' },
      ],
    },
    { role: 'tool', toolCallId: 'toolu_1', content: '18C' },
    { role: 'tool', toolCallId: 'toolu_2', content: [{ type: 'text', text: '20C' }] },
    { role: 'user', content: 'And tomorrow?' },
    { role: 'assistant', content: null },
    { role: 'assistant', content: [{ type: 'text', text: 'Sunny.' }] },
  ]);
  assert.deepEqual(out, [
    { role: 'user', content: [{ type: 'text', text: 'Weather in Paris and Lyon?' }] },
    {
      role: 'assistant',
      content: [
        { type: 'thinking', thinking: 'two calls', signature: 'sig1' },
        { type: 'redacted_thinking', data: 'REDACTED' },
        { type: 'text', text: 'Checking.' },
        { type: 'tool_use', id: 'toolu_1', name: 'w', input: { c: 'Paris' } },
        { type: 'tool_use', id: 'toolu_2', name: 'w', input: {} },
      ],
    },
    {
      role: 'user',
      content: [
        { type: 'tool_result', tool_use_id: 'toolu_1', content: '18C' },
        { type: 'tool_result', tool_use_id: 'toolu_2', content: [{ type: 'text', text: '20C' }] },
        { type: 'text', text: 'And tomorrow?' },
      ],
    },
    { role: 'assistant', content: [{ type: 'text', text: 'Sunny.' }] },
  ]);
  assert.deepEqual(toToolUse({ id: 'a', name: 'n', arguments: '[1,2]' }).input, {});
});

test('images: data URLs as base64 sources, http URLs as url sources, anything else a 400', () => {
  assert.deepEqual(toImage('data:image/png;base64,iVBORw0KGgo='), { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } });
  assert.deepEqual(toImage('https://example.com/cat.jpg'), { type: 'image', source: { type: 'url', url: 'https://example.com/cat.jpg' } });
  for (const bad of ['data:image/png,rawbytes', 'ftp://x/y.png']) {
    assert.throws(() => toImage(bad), (e: unknown) => e instanceof UpstreamError && e.isClientFault);
  }
  const body = toMessagesBody(call({ messages: [{ role: 'user', content: [{ type: 'text', text: 'What?' }, { type: 'image', url: 'https://example.com/a.png', detail: 'high' }] }] }), false);
  assert.equal(body.messages[0]!.content[1]!.type, 'image');
});

test('reasoning effort → thinking budget below max_tokens, without temperature or top_k', () => {
  assert.equal(thinkingBudget('minimal', 8000), 1024);
  assert.equal(thinkingBudget('low', 8000), 1024);
  assert.equal(thinkingBudget('medium', 8000), 4096);
  assert.equal(thinkingBudget('high', 8000), 7999);
  assert.equal(thinkingBudget('high', 100000), 16384);
  assert.equal(thinkingBudget('low', 1024), null);
  const body = toMessagesBody(call({ reasoningEffort: 'medium', temperature: 0.2, topP: 0.5, extra: { top_k: 3 } }, 8000), false);
  assert.deepEqual(body.thinking, { type: 'enabled', budget_tokens: 4096 });
  assert.equal(body.temperature, undefined);
  assert.equal(body.top_p, undefined);
  assert.equal(body.top_k, undefined);
  assert.equal(toMessagesBody(call({ reasoningEffort: 'high', topP: 0.97 }, 8000), false).top_p, 0.97);
  // Too small a cap: no thinking, and the sampling parameters go as asked.
  const small = toMessagesBody(call({ reasoningEffort: 'high', temperature: 0.2 }, 500), false);
  assert.equal(small.thinking, undefined);
  assert.equal(small.temperature, 0.2);
  // A forced tool: Anthropic refuses thinking with it; the tool choice wins.
  const forced = toMessagesBody(call({ reasoningEffort: 'high', tools: [{ name: 't' }], toolChoice: { name: 't' } }, 8000), false);
  assert.equal(forced.thinking, undefined);
});

test('JSON mode: an instruction in the system prompt, with the schema for json_schema', () => {
  assert.equal(jsonInstruction({ type: 'text' }), null);
  assert.match(jsonInstruction({ type: 'json_object' }) ?? '', /single valid JSON object/);
  const schema = { type: 'object', properties: { a: { type: 'number' } }, required: ['a'] };
  const body = toMessagesBody(call({ messages: [{ role: 'system', content: 'S' }, { role: 'user', content: 'Hi' }], responseFormat: { type: 'json_schema', name: 'answer', schema } }), false);
  assert.equal(body.system?.length, 2);
  assert.equal(body.system?.[0]?.text, 'S');
  assert.ok(body.system?.[1]?.text.includes(JSON.stringify(schema)));
  assert.ok(body.system?.[1]?.text.includes('"answer"'));
});

test('n > 1 is refused as a client fault', () => {
  assert.throws(() => toMessagesBody(call({ n: 2 }), false), (e: unknown) => e instanceof UpstreamError && e.isClientFault && toGatewayError(e).message.includes('n must be 1'));
});

// ---- answers ----

test('finish reasons', () => {
  const cases: [string | null, string][] = [
    ['end_turn', 'stop'], ['stop_sequence', 'stop'], ['pause_turn', 'stop'], ['max_tokens', 'length'],
    ['model_context_window_exceeded', 'length'], ['tool_use', 'tool_calls'], ['refusal', 'content_filter'], [null, 'stop'], ['brand_new', 'stop'],
  ];
  for (const [reason, want] of cases) assert.equal(finishReason(reason), want, String(reason));
});

test('usage: prompt = input + cache reads + cache writes; non-numbers are NaN, missing 0, raw kept', () => {
  const raw = { input_tokens: 30, cache_creation_input_tokens: 200, cache_read_input_tokens: 1800, output_tokens: 120 };
  assert.deepEqual(fromUsage(raw), { promptTokens: 2030, completionTokens: 120, cachedTokens: 1800, cacheWriteTokens: 200, reasoningTokens: 0, raw });
  assert.deepEqual(fromUsage({ input_tokens: 5, output_tokens: 2, cache_read_input_tokens: null }), { promptTokens: 5, completionTokens: 2, cachedTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0, raw: { input_tokens: 5, output_tokens: 2, cache_read_input_tokens: null } });
  const odd = fromUsage({ input_tokens: '5' as unknown as number, output_tokens: 2 });
  assert.ok(Number.isNaN(odd?.promptTokens));
  assert.equal(fromUsage(null), null);
  assert.equal(fromUsage({ service_tier: 'standard' }), null);
});

test('message: text, thinking, redacted thinking, tool calls, stop reason and usage', () => {
  const res = fromMessage(
    {
      id: 'msg_1',
      content: [
        { type: 'thinking', thinking: 'hmm', signature: 'sig' },
        { type: 'redacted_thinking', data: 'xyz' },
        { type: 'text', text: 'Let me ' },
        { type: 'server_tool_use', id: 'srvtoolu_1', name: 'web_search', input: {} },
        { type: 'text', text: 'check.' },
        { type: 'tool_use', id: 'toolu_1', name: 'w', input: { c: 'Paris' } },
      ],
      stop_reason: 'tool_use',
      usage: { input_tokens: 10, output_tokens: 5 },
    },
    1700000000,
  );
  assert.deepEqual(res, {
    id: 'msg_1',
    created: 1700000000,
    choices: [
      {
        index: 0,
        content: 'Let me check.',
        reasoning: [{ text: 'hmm', signature: 'sig' }, { text: '', redacted: 'xyz' }],
        toolCalls: [{ id: 'toolu_1', name: 'w', arguments: '{"c":"Paris"}' }],
        finishReason: 'tool_calls',
      },
    ],
    usage: { promptTokens: 10, completionTokens: 5, cachedTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0, raw: { input_tokens: 10, output_tokens: 5 } },
  });
  assert.equal(fromMessage({ id: 'm', content: [{ type: 'tool_use', id: 't', name: 'n', input: {} }], stop_reason: 'tool_use' }, 0).choices[0]!.content, null);
});

// ---- streams (recorded fixtures) ----

const U = (input: number, output: number, cacheWrite = 0, cacheRead = 0): Omit<import('../src/types/chat.js').Usage, 'raw'> => ({
  promptTokens: input + cacheWrite + cacheRead, completionTokens: output, cachedTokens: cacheRead, cacheWriteTokens: cacheWrite, reasoningTokens: 0,
});
function withoutRaw(events: StreamEvent[]): unknown[] {
  return events.map((e) => (e.type === 'usage' ? { type: 'usage', usage: { ...e.usage, raw: undefined } } : e)).map((e) => JSON.parse(JSON.stringify(e)) as unknown);
}

test('fixture text.sse', () => {
  const { events, error, done } = replay('text.sse');
  assert.equal(error, null);
  assert.ok(done);
  assert.deepEqual(withoutRaw(events), [
    { type: 'start', id: 'msg_01TextFixture', created: 1700000000 },
    { type: 'text', choice: 0, text: 'Hello' },
    { type: 'text', choice: 0, text: '!' },
    { type: 'finish', choice: 0, reason: 'stop' },
    { type: 'usage', usage: U(25, 15) },
  ]);
  const usage = events.at(-1) as Extract<StreamEvent, { type: 'usage' }>;
  assert.deepEqual(usage.usage.raw, { input_tokens: 25, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 15, service_tier: 'standard' });
});

test('fixture tool-use-parallel.sse: tool calls numbered from 0, arguments as they come', () => {
  const { events, error } = replay('tool-use-parallel.sse');
  assert.equal(error, null);
  assert.deepEqual(withoutRaw(events), [
    { type: 'start', id: 'msg_01ToolsFixture', created: 1700000000 },
    { type: 'text', choice: 0, text: 'I will check both cities.' },
    { type: 'tool_call_start', choice: 0, index: 0, id: 'toolu_01T1x1fJ34qAmk2tNTrN7Up6', name: 'get_weather' },
    { type: 'tool_call_delta', choice: 0, index: 0, arguments: '{"location":' },
    { type: 'tool_call_delta', choice: 0, index: 0, arguments: ' "Paris, FR"}' },
    { type: 'tool_call_start', choice: 0, index: 1, id: 'toolu_01B7nEqWzXqf8Vd2bHjGQm4c', name: 'get_weather' },
    { type: 'tool_call_delta', choice: 0, index: 1, arguments: '{"location": "Lyon' },
    { type: 'tool_call_delta', choice: 0, index: 1, arguments: ', FR"}' },
    { type: 'finish', choice: 0, reason: 'tool_calls' },
    { type: 'usage', usage: U(472, 89) },
  ]);
});

test('fixture thinking.sse: reasoning, its signature, redacted thinking, cache usage merged from both halves', () => {
  const { events, error } = replay('thinking.sse');
  assert.equal(error, null);
  assert.deepEqual(withoutRaw(events), [
    { type: 'start', id: 'msg_01ThinkFixture', created: 1700000000 },
    { type: 'reasoning', choice: 0, text: '27 * 453 = 27 * 400 + 27 * 53' },
    { type: 'reasoning', choice: 0, text: ' = 10800 + 1431 = 12231' },
    { type: 'reasoning_signature', choice: 0, signature: 'EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds' },
    { type: 'reasoning_redacted', choice: 0, data: 'EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP' },
    { type: 'text', choice: 0, text: '27 * 453 = 12,231' },
    { type: 'finish', choice: 0, reason: 'stop' },
    { type: 'usage', usage: U(30, 120, 200, 1800) },
  ]);
});

test('fixture error-mid-stream.sse: the error event throws a saturated UpstreamError after the text', () => {
  const { events, error, done } = replay('error-mid-stream.sse');
  assert.equal(done, false);
  assert.deepEqual(withoutRaw(events).map((e) => (e as { type: string }).type), ['start', 'text']);
  assert.ok(error instanceof UpstreamError);
  assert.equal(error.status, 529);
  assert.ok(error.isSaturated);
  assert.match(error.body, /overloaded_error/);
});

test('stream: usage emitted at message_stop when no message_delta carried it; one finish only', () => {
  const conv = new StreamConverter(1);
  const out = [
    ...conv.step({ type: 'message_start', message: { id: 'm', usage: { input_tokens: 3, output_tokens: 1 } } }),
    ...conv.step({ type: 'message_delta', delta: { stop_reason: 'max_tokens' } }),
    ...conv.step({ type: 'message_stop' }),
  ];
  assert.deepEqual(withoutRaw(out), [
    { type: 'start', id: 'm', created: 1 },
    { type: 'finish', choice: 0, reason: 'length' },
    { type: 'usage', usage: U(3, 1) },
  ]);
});

test('stream errors: overloaded 529, rate limited 429, anything else 500', () => {
  assert.equal(streamError({ type: 'error', error: { type: 'overloaded_error', message: 'x' } }).status, 529);
  assert.equal(streamError({ type: 'error', error: { type: 'rate_limit_error', message: 'x' } }).status, 429);
  const other = streamError({ type: 'error', error: { type: 'invalid_request_error', message: 'x' } });
  assert.equal(other.status, 500);
  assert.equal(other.isClientFault, false);
});

test('reclassify: a 400 typed authentication_error is the gateway credential problem (502), invalid_request_error stays a 400', () => {
  const secret = 'sk-ant-api03-SECRETSECRETSECRET';
  const auth = new UpstreamError('status', 'upstream answered 400', { status: 400, body: JSON.stringify({ type: 'error', error: { type: 'authentication_error', message: `invalid x-api-key ${secret}` } }) });
  const fixed = reclassify(auth) as UpstreamError;
  assert.equal(fixed.status, 401);
  const shown = toGatewayError(fixed, [secret]);
  assert.equal(shown.status, 502);
  assert.ok(!shown.message.includes(secret));
  const bad = new UpstreamError('status', 'upstream answered 400', { status: 400, body: JSON.stringify({ type: 'error', error: { type: 'invalid_request_error', message: 'prompt is too long: 210000 tokens > 200000 maximum' } }) });
  assert.equal(reclassify(bad), bad);
  assert.equal(toGatewayError(bad).status, 400);
  assert.match(toGatewayError(bad).message, /prompt is too long/);
  const notJson = new UpstreamError('status', 'x', { status: 400, body: '<html>' });
  assert.equal(reclassify(notJson), notJson);
});
