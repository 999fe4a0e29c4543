// The Anthropic Messages API end to end, as its users meet it: the real `@anthropic-ai/sdk` →
// the gateway on a random port → a fake OpenAI-compatible upstream (translation) or a fake
// Anthropic upstream (passthrough). What the client sees, what the upstream received, what was
// billed.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import fc from 'fast-check';
import { countText } from '../src/billing/estimate.js';
import { parseUsd } from '../src/billing/money.js';
import { AnthropicUpstream } from './helpers/anthropic-upstream.js';
import { assertGrammar, parseFrames } from './helpers/anthropic-grammar.js';
import { backgroundDone, startTestGateway, type TestGateway } from './helpers/gateway.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/upstream.js';

type Json = Record<string, any>;

/** USD per 1M tokens; in nano-USD per token that is ×1000. */
const GPT_PRICE = { input: 1, output: 2 };
const CLAUDE_PRICE = { input: 3, output: 15, cached_input: 0.3, cache_write: 3.75 };

let gw: TestGateway;
let up: FakeUpstream;
let ant: AnthropicUpstream;
let key: string;
let client: Anthropic;

const sdk = (apiKey: string): Anthropic => new Anthropic({ baseURL: gw.url, apiKey, maxRetries: 0, timeout: 10_000 });

before(async () => {
  up = await startFakeUpstream();
  ant = await AnthropicUpstream.start();
  gw = await startTestGateway({
    providers: {
      up: { type: 'openai', base_url: up.url, api_key: 'sk-upstream-secret' },
      ant: { type: 'anthropic', base_url: ant.url, api_key: ant.apiKey },
    },
    models: {
      'gpt-x': { pricing: GPT_PRICE, deployments: [{ provider: 'up', model: 'gpt-upstream' }] },
      claude: { pricing: CLAUDE_PRICE, max_output_tokens: 8192, deployments: [{ provider: 'ant', model: 'claude-sonnet-4-5' }] },
    },
  });
  key = (await gw.createKey()).key;
  client = sdk(key);
});
beforeEach(() => up.setBehavior({ kind: 'ok' }));
after(async () => {
  await gw.close();
  await up.close();
  await ant.close();
});

const lastUpstream = (): Json => up.requests[up.requests.length - 1]!.body as Json;

async function usageRows(keyId: string): Promise<Json[]> {
  const res = await gw.admin('GET', `/usage?key_id=${keyId}`);
  assert.equal(res.status, 200, res.text);
  return res.json.data as Json[];
}

async function balance(accountId: string): Promise<bigint> {
  const res = await gw.admin('GET', `/accounts/${accountId}`);
  return parseUsd(res.json.balance as string)!;
}

async function failure(p: Promise<unknown>): Promise<InstanceType<typeof Anthropic.APIError>> {
  const err = await p.then(
    () => assert.fail('expected the request to fail'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof Anthropic.APIError, `expected an APIError, got ${String(err)}`);
  return err;
}

describe('translated: a model on an OpenAI-compatible upstream', () => {
  test('text, with a system prompt: the answer in Anthropic shape, the request in OpenAI words', async () => {
    const msg = await client.messages.create({
      model: 'gpt-x',
      max_tokens: 100,
      system: [{ type: 'text', text: 'Be brief.' }],
      messages: [{ role: 'user', content: 'Hi' }],
      stop_sequences: ['END'],
      metadata: { user_id: 'u-1' },
    });
    assert.equal(msg.type, 'message');
    assert.equal(msg.role, 'assistant');
    assert.equal(msg.model, 'gpt-x');
    assert.match(msg.id, /^msg_/);
    assert.deepEqual(msg.content, [{ type: 'text', text: 'Hello from the fake upstream.' }]);
    assert.equal(msg.stop_reason, 'end_turn');
    assert.equal(msg.usage.input_tokens, 10);
    assert.equal(msg.usage.output_tokens, 7);
    const got = lastUpstream();
    assert.deepEqual(got['messages'], [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hi' },
    ]);
    assert.equal(got['model'], 'gpt-upstream');
    assert.equal(got['max_tokens'], 100);
    assert.deepEqual(got['stop'], ['END']);
    assert.equal(got['user'], 'u-1');
    assert.equal(got['metadata'], undefined, "Anthropic's own fields do not reach an OpenAI upstream");
  });

  test('the request id: request-id equals x-request-id, and the SDK reads it', async () => {
    const { request_id, response } = await client.messages.create({ model: 'gpt-x', max_tokens: 10, messages: [{ role: 'user', content: 'Hi' }] }).withResponse();
    assert.match(response.headers.get('request-id') ?? '', /^req_/);
    assert.equal(response.headers.get('request-id'), response.headers.get('x-request-id'));
    assert.equal(request_id, response.headers.get('x-request-id'));
  });

  test('a stream follows the grammar, event by event, with the billed usage at the end', async () => {
    const stream = await client.messages.create({ model: 'gpt-x', max_tokens: 100, messages: [{ role: 'user', content: 'Hi' }], stream: true });
    const events: Json[] = [];
    for await (const ev of stream) events.push(ev as unknown as Json);
    assertGrammar(events);
    const text = events.filter((e) => e['type'] === 'content_block_delta').map((e) => e['delta']['text']).join('');
    assert.equal(text, 'Hello from the fake upstream.');
    assert.ok(events[0]!['message']['usage']['input_tokens'] > 0, 'message_start carries the estimate');
    const delta = events.find((e) => e['type'] === 'message_delta')!;
    assert.equal(delta['delta']['stop_reason'], 'end_turn');
    assert.equal(delta['usage']['input_tokens'], 10);
    assert.equal(delta['usage']['output_tokens'], 7);
  });

  test('the stream framing on the wire: event names repeat the type; SSE headers', async () => {
    const res = await gw.http('POST', '/v1/messages', {
      headers: { 'x-api-key': key, 'anthropic-version': '2023-06-01' },
      body: { model: 'gpt-x', max_tokens: 50, stream: true, messages: [{ role: 'user', content: 'Hi' }] },
    });
    assert.equal(res.status, 200);
    assert.match(res.headers['content-type']!, /^text\/event-stream/);
    assert.equal(res.headers['request-id'], res.headers['x-request-id']);
    assertGrammar(parseFrames(res.text));
  });

  test('the SDK stream helper builds the final message', async () => {
    const final = await client.messages.stream({ model: 'gpt-x', max_tokens: 100, messages: [{ role: 'user', content: 'Hi' }] }).finalMessage();
    assert.equal(final.content.length, 1);
    assert.equal(final.content[0]!.type === 'text' ? final.content[0]!.text : '', 'Hello from the fake upstream.');
    assert.equal(final.stop_reason, 'end_turn');
    assert.equal(final.usage.output_tokens, 7);
  });

  test('tools: the definitions and choice translated, a streamed tool call as a tool_use block', async () => {
    up.setBehavior({
      kind: 'stream',
      deltas: [
        { role: 'assistant', content: 'Let me look.' },
        { tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'weather', arguments: '' } }] },
        { tool_calls: [{ index: 0, function: { arguments: '{"city":' } }] },
        { tool_calls: [{ index: 0, function: { arguments: '"Paris"}' } }] },
      ],
    });
    const tools: Anthropic.Tool[] = [{ name: 'weather', description: 'By city', input_schema: { type: 'object', properties: { city: { type: 'string' } } } }];
    const stream = await client.messages.create({
      model: 'gpt-x',
      max_tokens: 100,
      tools,
      tool_choice: { type: 'any', disable_parallel_tool_use: true },
      messages: [{ role: 'user', content: 'Weather in Paris?' }],
      stream: true,
    });
    const events: Json[] = [];
    for await (const ev of stream) events.push(ev as unknown as Json);
    assertGrammar(events);
    const starts = events.filter((e) => e['type'] === 'content_block_start').map((e) => e['content_block']);
    assert.deepEqual(starts, [
      { type: 'text', text: '' },
      { type: 'tool_use', id: 'call_1', name: 'weather', input: {} },
    ]);
    const json = events.filter((e) => e['delta']?.['type'] === 'input_json_delta').map((e) => e['delta']['partial_json']).join('');
    assert.deepEqual(JSON.parse(json), { city: 'Paris' });
    const got = lastUpstream();
    assert.deepEqual(got['tools'], [{ type: 'function', function: { name: 'weather', description: 'By city', parameters: tools[0]!.input_schema } }]);
    assert.equal(got['tool_choice'], 'required');
    assert.equal(got['parallel_tool_calls'], false);
    // (The fake ends every stream with finish_reason "stop"; the stop reason is the upstream's.)
  });

  /** A streamed answer through the SDK's stream helper: every event (checked against the grammar) and the final message. */
  const streamed = async (params: Anthropic.MessageStreamParams): Promise<{ events: Json[]; final: Anthropic.Message }> => {
    const stream = client.messages.stream(params);
    const events: Json[] = [];
    stream.on('streamEvent', (ev) => events.push(structuredClone(ev) as unknown as Json));
    const final = await stream.finalMessage();
    assertGrammar(events);
    return { events, final };
  };
  const weather: Anthropic.Tool[] = [{ name: 'weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } } }];

  test('text after a tool call started: the text block first, then the call with all its arguments', async () => {
    up.setBehavior({
      kind: 'stream',
      deltas: [
        { role: 'assistant', tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'weather', arguments: '{"city":' } }] },
        { content: 'Checking the weather.' },
        { tool_calls: [{ index: 0, function: { arguments: '"Paris"}' } }] },
        { content: ' One moment.' },
      ],
    });
    const { final } = await streamed({ model: 'gpt-x', max_tokens: 100, tools: weather, messages: [{ role: 'user', content: 'Paris?' }] });
    assert.deepEqual(final.content, [
      { type: 'text', text: 'Checking the weather. One moment.' },
      { type: 'tool_use', id: 'call_1', name: 'weather', input: { city: 'Paris' } },
    ]);
  });

  test('two calls whose argument pieces interleave: each call whole, in the order they started', async () => {
    up.setBehavior({
      kind: 'stream',
      deltas: [
        { role: 'assistant', tool_calls: [{ index: 0, id: 'call_a', type: 'function', function: { name: 'weather', arguments: '{"ci' } }] },
        { tool_calls: [{ index: 1, id: 'call_b', type: 'function', function: { name: 'weather', arguments: '{"city":"Ro' } }] },
        { tool_calls: [{ index: 0, function: { arguments: 'ty":"Par' } }] },
        { tool_calls: [{ index: 1, function: { arguments: 'me"}' } }] },
        { tool_calls: [{ index: 0, function: { arguments: 'is"}' } }] },
      ],
    });
    const { events, final } = await streamed({ model: 'gpt-x', max_tokens: 100, tools: weather, messages: [{ role: 'user', content: 'Paris and Rome?' }] });
    assert.deepEqual(final.content, [
      { type: 'tool_use', id: 'call_a', name: 'weather', input: { city: 'Paris' } },
      { type: 'tool_use', id: 'call_b', name: 'weather', input: { city: 'Rome' } },
    ]);
    for (const index of [0, 1]) {
      const json = events.filter((e) => e['index'] === index && e['delta']?.['type'] === 'input_json_delta').map((e) => e['delta']['partial_json']).join('');
      assert.deepEqual(JSON.parse(json), { city: index === 0 ? 'Paris' : 'Rome' });
    }
  });

  test('a tool call cut at the output cap: written as far as it came, stop_reason max_tokens, billed for what was sent', async () => {
    // An upstream that ignores max_tokens and streams one call's arguments on and on.
    up.setBehavior({
      kind: 'stream',
      usage: null,
      deltas: [
        { role: 'assistant', tool_calls: [{ index: 0, id: 'call_long', type: 'function', function: { name: 'weather', arguments: '{"city":"' } }] },
        ...Array.from({ length: 2000 }, () => ({ tool_calls: [{ index: 0, function: { arguments: ' word' } }] })),
      ],
    });
    const k = await gw.createKey();
    const stream = sdk(k.key).messages.stream({ model: 'gpt-x', max_tokens: 50, tools: weather, messages: [{ role: 'user', content: 'Go on.' }] });
    const events: Json[] = [];
    stream.on('streamEvent', (ev) => events.push(structuredClone(ev) as unknown as Json));
    const final = await stream.finalMessage();
    assertGrammar(events);
    assert.equal(final.stop_reason, 'max_tokens');
    assert.equal(final.content.length, 1);
    assert.equal(final.content[0]!.type, 'tool_use');
    const json = events.filter((e) => e['delta']?.['type'] === 'input_json_delta').map((e) => e['delta']['partial_json']).join('');
    assert.match(json, /^\{"city":"( word)+$/);
    const delivered = countText(`weather${json}`);
    assert.ok(delivered >= 50 && delivered <= 66, `relayed ${delivered} tokens: the cap of 50 with its allowance`);
    await backgroundDone(gw);
    const rows = await usageRows(k.id);
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!['completion_tokens'], delivered);
    assert.equal(final.usage.output_tokens, delivered);
  });

  test('tool results go back as tool messages, errors marked, right after the call', async () => {
    await client.messages.create({
      model: 'gpt-x',
      max_tokens: 100,
      messages: [
        { role: 'user', content: 'Weather in Paris and Rome?' },
        {
          role: 'assistant',
          content: [
            { type: 'text', text: 'Checking.' },
            { type: 'tool_use', id: 'tu_1', name: 'weather', input: { city: 'Paris' } },
            { type: 'tool_use', id: 'tu_2', name: 'weather', input: { city: 'Rome' } },
          ],
        },
        {
          role: 'user',
          content: [
            { type: 'tool_result', tool_use_id: 'tu_1', content: [{ type: 'text', text: 'Sunny' }] },
            { type: 'tool_result', tool_use_id: 'tu_2', content: 'service down', is_error: true },
            { type: 'text', text: 'Thanks' },
          ],
        },
      ],
    });
    assert.deepEqual(lastUpstream()['messages'], [
      { role: 'user', content: 'Weather in Paris and Rome?' },
      {
        role: 'assistant',
        content: 'Checking.',
        tool_calls: [
          { id: 'tu_1', type: 'function', function: { name: 'weather', arguments: '{"city":"Paris"}' } },
          { id: 'tu_2', type: 'function', function: { name: 'weather', arguments: '{"city":"Rome"}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'tu_1', content: 'Sunny' },
      { role: 'tool', tool_call_id: 'tu_2', content: 'Error: service down' },
      { role: 'user', content: [{ type: 'text', text: 'Thanks' }] },
    ]);
  });

  test('a non-streamed tool call: tool_use with its input parsed, stop_reason tool_use', async () => {
    up.setBehavior({
      kind: 'status',
      status: 200,
      body: {
        id: 'chatcmpl-1', object: 'chat.completion', created: 1, model: 'gpt-upstream',
        choices: [{ index: 0, finish_reason: 'tool_calls', message: { role: 'assistant', content: null, tool_calls: [{ id: 'call_9', type: 'function', function: { name: 'weather', arguments: '{"city":"Oslo"}' } }] } }],
        usage: { prompt_tokens: 20, completion_tokens: 5, total_tokens: 25 },
      },
    });
    const msg = await client.messages.create({
      model: 'gpt-x',
      max_tokens: 100,
      tools: [{ name: 'weather', input_schema: { type: 'object' } }],
      messages: [{ role: 'user', content: 'Oslo?' }],
    });
    assert.deepEqual(msg.content, [{ type: 'tool_use', id: 'call_9', name: 'weather', input: { city: 'Oslo' } }]);
    assert.equal(msg.stop_reason, 'tool_use');
  });

  test('images: base64 as a data URL, url as it is', async () => {
    await client.messages.create({
      model: 'gpt-x',
      max_tokens: 100,
      messages: [
        {
          role: 'user',
          content: [
            { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
            { type: 'image', source: { type: 'url', url: 'https://example.com/cat.jpg' } },
            { type: 'text', text: 'What are these?' },
          ],
        },
      ],
    });
    assert.deepEqual(lastUpstream()['messages'][0]['content'], [
      { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
      { type: 'image_url', image_url: { url: 'https://example.com/cat.jpg' } },
      { type: 'text', text: 'What are these?' },
    ]);
  });

  test('thinking → reasoning_effort; reasoning back as a thinking block', async () => {
    up.setBehavior({
      kind: 'status',
      status: 200,
      body: {
        id: 'chatcmpl-2', object: 'chat.completion', created: 1, model: 'gpt-upstream',
        choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: '42', reasoning_content: 'Six times seven.' } }],
        usage: { prompt_tokens: 8, completion_tokens: 9, total_tokens: 17 },
      },
    });
    const msg = await client.messages.create({
      model: 'gpt-x',
      max_tokens: 20000,
      thinking: { type: 'enabled', budget_tokens: 16384 },
      messages: [{ role: 'user', content: '6×7?' }],
    });
    assert.equal(lastUpstream()['reasoning_effort'], 'high');
    assert.deepEqual(msg.content, [
      { type: 'thinking', thinking: 'Six times seven.', signature: '' },
      { type: 'text', text: '42' },
    ]);
  });
});

describe('passthrough: a model on an Anthropic upstream', () => {
  const thinkingTurn = [
    { role: 'user', content: [{ type: 'text', text: 'Long document…', cache_control: { type: 'ephemeral' } }] },
    {
      role: 'assistant',
      content: [
        { type: 'thinking', thinking: 'Earlier thought.', signature: 'sig-EARLIER-abc==' },
        { type: 'tool_use', id: 'toolu_1', name: 'lookup', input: { q: 'x' } },
      ],
    },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'found', cache_control: { type: 'ephemeral' } }] },
  ];

  test('the body goes on unchanged but for the model; the answer comes back as the upstream made it', async () => {
    ant.next({
      kind: 'message',
      content: [
        { type: 'thinking', thinking: 'New thought.', signature: 'sig-NEW-xyz==' },
        { type: 'text', text: 'Done.' },
      ],
      usage: { input_tokens: 30, output_tokens: 12, cache_read_input_tokens: 100, cache_creation_input_tokens: 0 },
    });
    const body = {
      model: 'claude',
      max_tokens: 4000,
      thinking: { type: 'enabled', budget_tokens: 2048 },
      system: [{ type: 'text', text: 'Sys', cache_control: { type: 'ephemeral' } }],
      tools: [
        { name: 'lookup', input_schema: { type: 'object' }, cache_control: { type: 'ephemeral' } },
        { type: 'web_search_20250305', name: 'web_search', max_uses: 2 },
      ],
      context_management: { edits: [{ type: 'clear_tool_uses_20250919' }] },
      messages: thinkingTurn,
    };
    const from = ant.received.length;
    const res = await gw.http('POST', '/v1/messages', {
      headers: { 'x-api-key': key, 'anthropic-version': '2023-06-01', 'anthropic-beta': 'context-management-2025-06-27' },
      body,
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(ant.received.length, from + 1);
    const got = ant.last;
    assert.deepEqual(got.body, { ...body, model: 'claude-sonnet-4-5' });
    assert.equal(got.headers['anthropic-version'], '2023-06-01');
    assert.equal(got.headers['anthropic-beta'], 'context-management-2025-06-27');
    assert.equal(got.headers['x-api-key'], ant.apiKey, "the gateway's upstream key, not the client's");
    const msg = res.json as Json;
    assert.equal(msg['model'], 'claude');
    assert.deepEqual(msg['content'], [
      { type: 'thinking', thinking: 'New thought.', signature: 'sig-NEW-xyz==' },
      { type: 'text', text: 'Done.' },
    ]);
    assert.deepEqual(msg['usage'], { input_tokens: 30, output_tokens: 12, cache_read_input_tokens: 100, cache_creation_input_tokens: 0 });
  });

  test('a streamed passthrough keeps thinking signatures, in grammar, with the billed usage', async () => {
    ant.next({
      kind: 'message',
      content: [
        { type: 'thinking', thinking: 'Streamed thought.', signature: 'sig-STREAM-123==' },
        { type: 'text', text: 'Answer.' },
        { type: 'tool_use', id: 'toolu_2', name: 'lookup', input: { q: 'y' } },
      ],
      usage: { input_tokens: 40, output_tokens: 20, cache_creation_input_tokens: 5 },
    });
    const stream = client.messages.stream({
      model: 'claude',
      max_tokens: 4000,
      thinking: { type: 'enabled', budget_tokens: 2048 },
      messages: thinkingTurn as Anthropic.MessageParam[],
    });
    const events: Json[] = [];
    // A copy: the SDK builds its snapshot inside message_start's message object.
    stream.on('streamEvent', (ev) => events.push(structuredClone(ev) as unknown as Json));
    const final = await stream.finalMessage();
    assertGrammar(events);
    assert.equal(final.model, 'claude');
    assert.deepEqual(final.content[0], { type: 'thinking', thinking: 'Streamed thought.', signature: 'sig-STREAM-123==' });
    assert.deepEqual(final.content[2], { type: 'tool_use', id: 'toolu_2', name: 'lookup', input: { q: 'y' } });
    assert.equal(final.stop_reason, 'tool_use');
    assert.equal(final.usage.output_tokens, 20);
    assert.equal(final.usage.cache_creation_input_tokens, 5);
    assert.equal(ant.last.body['stream'], true);
    assert.deepEqual(ant.last.body['messages'], thinkingTurn);
  });

  test('x-api-key and Bearer both authenticate', async () => {
    for (const headers of [{ 'x-api-key': key }, { authorization: `Bearer ${key}` }] as Record<string, string>[]) {
      const res = await gw.http('POST', '/v1/messages', { headers: { ...headers, 'anthropic-version': '2023-06-01' }, body: { model: 'claude', max_tokens: 10, messages: [{ role: 'user', content: 'Hi' }] } });
      assert.equal(res.status, 200, res.text);
    }
  });

  test('an upstream overloaded (529) is a 503 overloaded_error; the SDK raises ServiceUnavailableError', async () => {
    // Every attempt (3, the default) finds it overloaded.
    const overloaded = { kind: 'error', status: 529, type: 'overloaded_error', message: 'Overloaded' } as const;
    ant.next(overloaded, overloaded, overloaded);
    const err = await failure(client.messages.create({ model: 'claude', max_tokens: 10, messages: [{ role: 'user', content: 'Hi' }] }));
    assert.ok(err instanceof Anthropic.ServiceUnavailableError);
    assert.equal((err.error as Json)['error']['type'], 'overloaded_error');
    assert.ok(err.headers?.get('retry-after') !== null);
  });
});

describe('count_tokens', () => {
  test('free: the estimate, no usage record, no balance moved', async () => {
    const k = await gw.createKey();
    const before = await balance(k.accountId);
    const c = sdk(k.key);
    const short = await c.messages.countTokens({ model: 'gpt-x', messages: [{ role: 'user', content: 'Hi' }] });
    const long = await c.messages.countTokens({
      model: 'claude',
      system: 'You are a careful assistant.',
      tools: [{ name: 'weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } } }],
      messages: [{ role: 'user', content: 'Hi there, how is the weather in Paris today?' }],
    });
    assert.ok(short.input_tokens > 0);
    assert.ok(long.input_tokens > short.input_tokens);
    assert.deepEqual(await usageRows(k.id), []);
    assert.equal(await balance(k.accountId), before);
  });

  test('the same checks as /v1/messages: key, model, body', async () => {
    assert.ok((await failure(sdk('sk-nope').messages.countTokens({ model: 'gpt-x', messages: [{ role: 'user', content: 'Hi' }] }))) instanceof Anthropic.AuthenticationError);
    assert.ok((await failure(client.messages.countTokens({ model: 'nope', messages: [{ role: 'user', content: 'Hi' }] }))) instanceof Anthropic.NotFoundError);
    const bad = await failure(client.messages.countTokens({ model: 'gpt-x', messages: [] }));
    assert.ok(bad instanceof Anthropic.BadRequestError);
    assert.match(bad.message, /messages/);
  });
});

describe('errors: every class, in Anthropic shape, request-id beside x-request-id', () => {
  const hi: Anthropic.MessageParam[] = [{ role: 'user', content: 'Hi' }];
  const check = (err: InstanceType<typeof Anthropic.APIError>, cls: abstract new (...a: never[]) => unknown, status: number, type: string): void => {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${err.constructor.name}: ${err.message}`);
    assert.equal(err.status, status);
    const body = err.error as Json;
    assert.equal(body['type'], 'error');
    assert.equal(body['error']['type'], type);
    assert.equal(typeof body['error']['message'], 'string');
    assert.equal(body['request_id'], err.headers?.get('x-request-id'));
    assert.equal(err.requestID, err.headers?.get('x-request-id'));
  };

  test('400 BadRequestError names the field', async () => {
    const err = await failure(client.messages.create({ model: 'gpt-x', messages: hi } as unknown as Anthropic.MessageCreateParamsNonStreaming));
    check(err, Anthropic.BadRequestError, 400, 'invalid_request_error');
    assert.match(err.message, /max_tokens/);
  });
  test('401 AuthenticationError', async () => {
    check(await failure(sdk('sk-wrong').messages.create({ model: 'gpt-x', max_tokens: 5, messages: hi })), Anthropic.AuthenticationError, 401, 'authentication_error');
  });
  test('402 PaymentRequiredError', async () => {
    const poor = await gw.createKey({ credit: '0.000001' });
    check(await failure(sdk(poor.key).messages.create({ model: 'gpt-x', max_tokens: 100_000, messages: hi })), Anthropic.PaymentRequiredError, 402, 'billing_error');
  });
  test('403 PermissionDeniedError', async () => {
    const narrow = await gw.createKey({ models: ['claude'] });
    check(await failure(sdk(narrow.key).messages.create({ model: 'gpt-x', max_tokens: 5, messages: hi })), Anthropic.PermissionDeniedError, 403, 'permission_error');
  });
  test('404 NotFoundError', async () => {
    check(await failure(client.messages.create({ model: 'no-such-model', max_tokens: 5, messages: hi })), Anthropic.NotFoundError, 404, 'not_found_error');
  });
  test('429 RateLimitError', async () => {
    const limited = await gw.createKey({ limits: { rpm: 1 } });
    const c = sdk(limited.key);
    await c.messages.create({ model: 'gpt-x', max_tokens: 5, messages: hi });
    const err = await failure(c.messages.create({ model: 'gpt-x', max_tokens: 5, messages: hi }));
    check(err, Anthropic.RateLimitError, 429, 'rate_limit_error');
    assert.ok(err.headers?.get('retry-after') !== null);
  });
  test('503 ServiceUnavailableError', async () => {
    up.setBehavior({ kind: 'status', status: 429 });
    check(await failure(client.messages.create({ model: 'gpt-x', max_tokens: 5, messages: hi })), Anthropic.ServiceUnavailableError, 503, 'overloaded_error');
  });
  test('outside the pipeline: unknown path, wrong method, unreadable body, in Anthropic shape', async () => {
    const notFound = await gw.http('POST', '/v1/messages/nope', { key, body: {} });
    assert.equal(notFound.status, 404);
    assert.equal(notFound.json.error.type, 'not_found_error');
    assert.equal(notFound.headers['request-id'], notFound.headers['x-request-id']);
    const wrong = await gw.http('GET', '/v1/messages', { key });
    assert.equal(wrong.status, 405);
    assert.equal(wrong.json.type, 'error');
    assert.equal(wrong.json.error.type, 'invalid_request_error');
    const broken = await gw.http('POST', '/v1/messages', { key, body: '{"model":' });
    assert.equal(broken.status, 400);
    assert.equal(broken.json.error.type, 'invalid_request_error');
    // The OpenAI routes keep their own shape.
    assert.equal((await gw.http('POST', '/v1/nope', { key, body: {} })).json.error.code, '404');
  });
});

describe('money: one usage record, the balance moved by exactly its cost', () => {
  for (const stream of [false, true]) {
    test(stream ? 'streamed' : 'not streamed', async () => {
      const k = await gw.createKey();
      const before = await balance(k.accountId);
      const c = sdk(k.key);
      if (stream) await c.messages.stream({ model: 'gpt-x', max_tokens: 100, messages: [{ role: 'user', content: 'Hi' }] }).finalMessage();
      else await c.messages.create({ model: 'gpt-x', max_tokens: 100, messages: [{ role: 'user', content: 'Hi' }] });
      const rows = await usageRows(k.id);
      assert.equal(rows.length, 1);
      // 10 prompt tokens at 1 USD/M and 7 completion tokens at 2 USD/M, in nano-USD.
      const cost = 10n * 1000n + 7n * 2000n;
      assert.equal(parseUsd(rows[0]!['cost'] as string), cost);
      assert.equal(rows[0]!['stream'], stream);
      assert.equal(rows[0]!['status'], 200);
      assert.equal(before - (await balance(k.accountId)), cost);
    });
  }

  test('passthrough with cache reads and writes: each kind at its price', async () => {
    ant.next({ kind: 'message', content: [{ type: 'text', text: 'ok' }], usage: { input_tokens: 10, output_tokens: 4, cache_read_input_tokens: 100, cache_creation_input_tokens: 20 } });
    const k = await gw.createKey();
    const before = await balance(k.accountId);
    await sdk(k.key).messages.create({ model: 'claude', max_tokens: 100, messages: [{ role: 'user', content: 'Hi' }] });
    const cost = 10n * 3000n + 100n * 300n + 20n * 3750n + 4n * 15000n;
    const rows = await usageRows(k.id);
    assert.equal(rows.length, 1);
    assert.equal(parseUsd(rows[0]!['cost'] as string), cost);
    assert.equal(before - (await balance(k.accountId)), cost);
  });
});

describe('GET /v1/models for Anthropic clients', () => {
  test("Anthropic's list shape when anthropic-version is sent; OpenAI's otherwise", async () => {
    const page = await client.models.list();
    const ids = page.data.map((m) => m.id).sort();
    assert.deepEqual(ids, ['claude', 'demo', 'gpt-x']);
    for (const m of page.data) {
      assert.equal(m.type, 'model');
      assert.equal(m.display_name, m.id);
      assert.ok(!Number.isNaN(Date.parse(m.created_at)));
    }
    const one = await client.models.retrieve('claude');
    assert.equal(one.id, 'claude');
    assert.equal((await gw.http('GET', '/v1/models', { key })).json.object, 'list');
  });
});

describe('fuzz: documented errors only, never a 500', () => {
  /** 404: a random model name. */
  const DOCUMENTED = new Set([200, 400, 402, 404]);
  const any = fc.oneof(fc.string(), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(fc.string(), { maxLength: 3 }), fc.dictionary(fc.string({ maxLength: 5 }), fc.string(), { maxKeys: 3 }));
  const block = fc.oneof(
    fc.record({ type: fc.constant('text'), text: fc.oneof(fc.string(), any) }),
    fc.record({ type: fc.constant('image'), source: fc.oneof(any, fc.record({ type: fc.constantFrom('base64', 'url', 'file', 'x'), media_type: any, data: any, url: any })) }),
    fc.record({ type: fc.constant('tool_use'), id: any, name: any, input: fc.oneof(any, fc.constant({})) }),
    fc.record({ type: fc.constant('tool_result'), tool_use_id: any, content: fc.oneof(any, fc.constant([{ type: 'text', text: 'r' }])), is_error: any }),
    fc.record({ type: fc.constantFrom('thinking', 'redacted_thinking', 'document', 'weird'), thinking: any, signature: any, data: any }),
    any,
  );
  const message = fc.record({ role: fc.oneof(fc.constantFrom('user', 'assistant'), any), content: fc.oneof(fc.string(), fc.array(block, { maxLength: 4 }), any) }, { requiredKeys: [] });
  const body = fc.record(
    {
      model: fc.oneof(fc.constant('gpt-x'), any),
      max_tokens: fc.oneof(fc.integer({ min: -5, max: 2_000_000_000 }), any),
      messages: fc.oneof(fc.array(message, { maxLength: 4 }), any),
      system: fc.oneof(fc.string(), fc.array(fc.record({ type: fc.constantFrom('text', 'x'), text: any })), any),
      stream: fc.oneof(fc.boolean(), any),
      temperature: any,
      top_p: any,
      top_k: any,
      stop_sequences: any,
      metadata: fc.oneof(fc.record({ user_id: any }), any),
      tools: fc.oneof(fc.array(fc.record({ name: any, input_schema: any, type: any }, { requiredKeys: [] }), { maxLength: 2 }), any),
      tool_choice: fc.oneof(fc.record({ type: fc.constantFrom('auto', 'any', 'tool', 'none', 'x'), name: any }, { requiredKeys: [] }), any),
      thinking: fc.oneof(fc.record({ type: fc.constantFrom('enabled', 'disabled', 'adaptive'), budget_tokens: any }), any),
    },
    { requiredKeys: [] },
  );

  test('random bodies', async () => {
    await fc.assert(
      fc.asyncProperty(body, async (b) => {
        const res = await gw.http('POST', '/v1/messages', { headers: { 'x-api-key': key }, body: b });
        assert.ok(DOCUMENTED.has(res.status), `status ${res.status} for ${JSON.stringify(b)}: ${res.text.slice(0, 300)}`);
        if (res.status === 200) return;
        assert.equal(res.json?.type, 'error', res.text);
        assert.equal(typeof res.json.error.type, 'string');
        assert.equal(typeof res.json.error.message, 'string');
        assert.equal(res.json.request_id, res.headers['x-request-id']);
      }),
      { numRuns: 200 },
    );
  });

  test('random count_tokens bodies: 200, 400 or 404 in Anthropic shape, never a 500, nothing billed or recorded', async () => {
    const k = await gw.createKey();
    const before = await balance(k.accountId);
    // 404: a random model name; 400: everything else that is wrong with a body.
    const counted = new Set([200, 400, 404]);
    const anyModel = fc.oneof(fc.constantFrom('gpt-x', 'claude'), any);
    await fc.assert(
      fc.asyncProperty(body, anyModel, fc.boolean(), async (b, model, bearer) => {
        const res = await gw.http('POST', '/v1/messages/count_tokens', {
          headers: bearer ? { authorization: `Bearer ${k.key}` } : { 'x-api-key': k.key, 'anthropic-version': '2023-06-01' },
          body: { ...b, model },
        });
        assert.ok(counted.has(res.status), `status ${res.status} for ${JSON.stringify({ ...b, model })}: ${res.text.slice(0, 300)}`);
        assert.equal(res.headers['request-id'], res.headers['x-request-id']);
        if (res.status === 200) {
          assert.ok(Number.isInteger(res.json.input_tokens) && res.json.input_tokens > 0, res.text);
          return;
        }
        assert.equal(res.json?.type, 'error', res.text);
        assert.equal(res.json.error.type, res.status === 404 ? 'not_found_error' : 'invalid_request_error');
        assert.equal(typeof res.json.error.message, 'string');
        assert.equal(res.json.request_id, res.headers['x-request-id']);
      }),
      { numRuns: 200 },
    );
    // Unreadable JSON and bodies that are not objects are 400s too.
    for (const raw of ['{"model":', '[]', '"x"', 'null', '']) {
      const res = await gw.http('POST', '/v1/messages/count_tokens', { headers: { 'x-api-key': k.key }, body: raw });
      assert.equal(res.status, 400, `${JSON.stringify(raw)}: ${res.status} ${res.text}`);
      assert.equal(res.json.error.type, 'invalid_request_error');
    }
    await backgroundDone(gw);
    assert.deepEqual(await usageRows(k.id), [], 'count_tokens leaves no usage record');
    assert.equal(await balance(k.accountId), before);
  });
});
