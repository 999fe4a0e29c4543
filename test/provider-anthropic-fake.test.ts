// The fake Anthropic upstream is faithful: Anthropic's own SDK reads its answers, streams and
// errors as it reads Anthropic's.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import { AnthropicUpstream, errorEvent } from './helpers/anthropic-upstream.js';

let up: AnthropicUpstream;
let client: Anthropic;

before(async () => {
  up = await AnthropicUpstream.start();
  client = new Anthropic({ apiKey: up.apiKey, baseURL: up.url, maxRetries: 0 });
});
after(() => up.close());

test('messages.create: the SDK reads the message, its usage and request id', async () => {
  up.next({ kind: 'message', content: [{ type: 'text', text: 'Bonjour !' }], usage: { input_tokens: 10, output_tokens: 3, cache_read_input_tokens: 4 } });
  const { data, request_id } = await client.messages.create({ model: 'claude-x', max_tokens: 100, messages: [{ role: 'user', content: 'Salut' }] }).withResponse();
  assert.deepEqual(data.content, [{ type: 'text', text: 'Bonjour !' }]);
  assert.equal(data.stop_reason, 'end_turn');
  assert.equal(data.usage.input_tokens, 10);
  assert.equal(data.usage.cache_read_input_tokens, 4);
  assert.match(request_id ?? '', /^req_/);
  assert.equal(up.last.headers['authorization'], `Bearer ${up.apiKey}`);
  assert.equal(typeof up.last.headers['anthropic-version'], 'string');
});

test('messages.stream: two tool calls and text arrive as the SDK assembles them', async () => {
  up.next({
    kind: 'message',
    content: [
      { type: 'text', text: 'Checking both cities.' },
      { type: 'tool_use', id: 'toolu_01A', name: 'get_weather', input: { city: 'Paris' } },
      { type: 'tool_use', id: 'toolu_01B', name: 'get_weather', input: { city: 'Lyon', unit: 'c' } },
    ],
  });
  const stream = client.messages.stream({ model: 'claude-x', max_tokens: 100, messages: [{ role: 'user', content: 'Weather?' }] });
  const jsons: unknown[] = [];
  stream.on('inputJson', (_partial, snapshot) => jsons.push(snapshot));
  const msg = await stream.finalMessage();
  assert.equal(msg.stop_reason, 'tool_use');
  assert.deepEqual(
    msg.content.map((b) => (b.type === 'tool_use' ? [b.id, b.input] : b.type === 'text' ? b.text : b.type)),
    ['Checking both cities.', ['toolu_01A', { city: 'Paris' }], ['toolu_01B', { city: 'Lyon', unit: 'c' }]],
  );
  assert.ok(jsons.length >= 2, 'arguments streamed in pieces');
  assert.equal(up.last.body['stream'], true);
});

test('messages.stream: thinking with its signature', async () => {
  up.next({ kind: 'message', content: [{ type: 'thinking', thinking: 'Let me think.', signature: 'sig-abc' }, { type: 'text', text: '42' }] });
  const msg = await client.messages
    .stream({ model: 'claude-x', max_tokens: 4000, thinking: { type: 'enabled', budget_tokens: 1024 }, messages: [{ role: 'user', content: 'Q' }] })
    .finalMessage();
  assert.deepEqual(msg.content[0], { type: 'thinking', thinking: 'Let me think.', signature: 'sig-abc' });
  assert.equal(msg.usage.output_tokens, 7);
});

test('an error event mid-stream surfaces as the SDK error of that type', async () => {
  up.next({ kind: 'events', events: [{ type: 'message_start', message: { id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-x', content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 5, output_tokens: 1 } } }, errorEvent('overloaded_error', 'Overloaded')] });
  const stream = await client.messages.create({ model: 'claude-x', max_tokens: 100, stream: true, messages: [{ role: 'user', content: 'Hi' }] });
  await assert.rejects(
    (async () => {
      for await (const _ of stream) void _;
    })(),
    (e: unknown) => e instanceof Anthropic.APIError && /overloaded_error/.test(String(e.message)),
  );
});

test('error answers become the SDK error classes of their status', async () => {
  const cases: [number, string, new (...a: never[]) => Error][] = [
    [400, 'invalid_request_error', Anthropic.BadRequestError],
    [429, 'rate_limit_error', Anthropic.RateLimitError],
    [529, 'overloaded_error', Anthropic.APIError],
    [500, 'api_error', Anthropic.InternalServerError],
  ];
  for (const [status, type, cls] of cases) {
    up.next({ kind: 'error', status, type, message: `fake ${type}` });
    await assert.rejects(client.messages.create({ model: 'claude-x', max_tokens: 10, messages: [{ role: 'user', content: 'Hi' }] }), (e: unknown) => {
      assert.ok(e instanceof cls, `${status} → ${cls.name}`);
      const err = e as InstanceType<typeof Anthropic.APIError>;
      assert.equal(err.status, status);
      assert.equal((err.error as { error: { type: string } }).error.type, type);
      assert.match(err.requestID ?? '', /^req_/);
      return true;
    });
  }
});

test('requests Anthropic would refuse are refused as Anthropic does', async () => {
  const bad = new Anthropic({ apiKey: 'sk-ant-wrong', baseURL: up.url, maxRetries: 0 });
  await assert.rejects(bad.messages.create({ model: 'claude-x', max_tokens: 10, messages: [{ role: 'user', content: 'Hi' }] }), Anthropic.AuthenticationError);
  await assert.rejects(
    client.messages.create({ model: 'claude-x', max_tokens: 10, messages: [{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }] }),
    (e: unknown) => e instanceof Anthropic.BadRequestError && /alternate/.test(e.message),
  );
  await assert.rejects(
    client.messages.create({ model: 'claude-x', max_tokens: 10, messages: [{ role: 'user', content: 'a' }], frequency_penalty: 1 } as unknown as Anthropic.MessageCreateParamsNonStreaming),
    (e: unknown) => e instanceof Anthropic.BadRequestError && /frequency_penalty: Extra inputs/.test(e.message),
  );
});
