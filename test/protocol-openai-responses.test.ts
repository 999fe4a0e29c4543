// POST /v1/responses end to end, as users meet it: the `openai` SDK's responses.create (and the
// Vercel AI SDK's default openai(model)) → the gateway → a chat-completions upstream (translated)
// or two fake Responses upstreams (native). What the client sees, what the upstream received,
// and what was billed.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createOpenAI } from '@ai-sdk/openai';
import { generateText, streamText } from 'ai';
import OpenAI from 'openai';
import { parseUsd } from '../src/billing/money.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';
import { ResponsesUpstream } from './helpers/responses-upstream.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/upstream.js';

type Json = Record<string, unknown>;
type Event = OpenAI.Responses.ResponseStreamEvent;

/** USD per 1M tokens; in nano-USD per token: input 2000, output 8000. */
const PRICING = { input: 2, output: 8 };
const cost = (input: number, output: number): bigint => BigInt(input) * 2000n + BigInt(output) * 8000n;

let gw: TestGateway;
let chat: FakeUpstream;
let natA: ResponsesUpstream;
let natB: ResponsesUpstream;

before(async () => {
  chat = await startFakeUpstream();
  natA = await ResponsesUpstream.start('sk-upstream-native-a-0123456789');
  natB = await ResponsesUpstream.start('sk-upstream-native-b-0123456789');
  gw = await startTestGateway({
    providers: {
      chat: { type: 'openai', base_url: chat.url, api_key: 'sk-chat-upstream' },
      nat_a: { type: 'openai', base_url: natA.url, api_key: natA.apiKey, responses: 'native' },
      nat_b: { type: 'openai', base_url: natB.url, api_key: natB.apiKey, responses: 'native' },
    },
    models: {
      tr: { pricing: PRICING, max_output_tokens: 1000, deployments: [{ provider: 'chat', model: 'chat-upstream' }] },
      nat: {
        pricing: PRICING,
        max_output_tokens: 1000,
        deployments: [
          { provider: 'nat_a', model: 'gpt-a' },
          { provider: 'nat_b', model: 'gpt-b' },
        ],
      },
    },
  });
});

after(async () => {
  await gw.close();
  await chat.close();
  await natA.close();
  await natB.close();
});

async function account(): Promise<{ sdk: OpenAI; key: string; keyId: string; accountId: string }> {
  const k = await gw.createKey({ credit: '10' });
  return { sdk: gw.client(k.key), key: k.key, keyId: k.id, accountId: k.accountId };
}

async function balance(accountId: string): Promise<bigint> {
  const a = (await gw.admin('GET', `/accounts/${accountId}`)).json as { balance: string; held: string };
  assert.equal(a.held, '0.000000000');
  return parseUsd(a.balance)!;
}

async function records(keyId: string): Promise<Json[]> {
  return ((await gw.admin('GET', `/usage?key_id=${keyId}`)).json as { data: Json[] }).data;
}

/** Exactly one usage record with this cost, and the balance moved by exactly it. */
async function assertBilled(a: { keyId: string; accountId: string }, expected: bigint): Promise<void> {
  const recs = await records(a.keyId);
  assert.equal(recs.length, 1);
  assert.equal(parseUsd(recs[0]!['cost'] as string), expected);
  assert.equal(await balance(a.accountId), 10_000_000_000n - expected);
}

async function collect(stream: AsyncIterable<Event>): Promise<Event[]> {
  const out: Event[] = [];
  for await (const ev of stream) out.push(ev);
  return out;
}

function assertGrammar(events: Event[], terminal: string): void {
  assert.equal(events[0]!.type, 'response.created');
  assert.equal(events[1]!.type, 'response.in_progress');
  assert.equal(events.at(-1)!.type, terminal);
  for (let i = 1; i < events.length; i++) assert.ok(events[i]!.sequence_number > events[i - 1]!.sequence_number, 'sequence numbers increase');
  const added = events.filter((e) => e.type === 'response.output_item.added').length;
  assert.equal(events.filter((e) => e.type === 'response.output_item.done').length, added, 'every item added is done');
}

describe('translated (chat-completions deployment)', () => {
  test('text, not streamed: a Response object with usage and cost; billed exactly once', async () => {
    const a = await account();
    chat.setBehavior({ kind: 'ok', text: 'Hi there, friend.', usage: { prompt_tokens: 20, completion_tokens: 6 } });
    const r = await a.sdk.responses.create({ model: 'tr', input: 'Hello', instructions: 'Be brief.', max_output_tokens: 50 });
    assert.equal(r.object, 'response');
    assert.match(r.id, /^resp_/);
    assert.equal(r.status, 'completed');
    assert.equal(r.model, 'tr');
    assert.equal(r.output_text, 'Hi there, friend.');
    assert.deepEqual(r.usage && { i: r.usage.input_tokens, o: r.usage.output_tokens, t: r.usage.total_tokens }, { i: 20, o: 6, t: 26 });
    assert.equal((r.usage as unknown as Json)['cost'], Number(cost(20, 6)) / 1e9);
    const sent = chat.requests.at(-1)!.body as Json;
    assert.deepEqual(sent['messages'], [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hello' },
    ]);
    assert.equal(sent['max_tokens'], 50);
    await assertBilled(a, cost(20, 6));
  });

  test('text, streamed: typed events in order, ending in response.completed with what was billed', async () => {
    const a = await account();
    chat.setBehavior({ kind: 'stream', chunks: ['One', ' two', ' three.'], usage: { prompt_tokens: 9, completion_tokens: 3 } });
    const events = await collect(await a.sdk.responses.create({ model: 'tr', input: 'Count', stream: true }));
    assertGrammar(events, 'response.completed');
    const text = events.flatMap((e) => (e.type === 'response.output_text.delta' ? [e.delta] : [])).join('');
    assert.equal(text, 'One two three.');
    const done = events.find((e) => e.type === 'response.output_text.done');
    assert.equal(done?.type === 'response.output_text.done' && done.text, 'One two three.');
    const last = events.at(-1)!;
    assert.ok(last.type === 'response.completed');
    assert.deepEqual(last.response.usage && [last.response.usage.input_tokens, last.response.usage.output_tokens], [9, 3]);
    await assertBilled(a, cost(9, 3));
  });

  test('function tools, streamed: function_call items; the round trip with function_call_output reaches the upstream as tool messages', async () => {
    const a = await account();
    chat.setBehavior({
      kind: 'stream',
      usage: { prompt_tokens: 30, completion_tokens: 12 },
      deltas: [
        { role: 'assistant', tool_calls: [{ index: 0, id: 'call_w1', type: 'function', function: { name: 'weather', arguments: '' } }] },
        { tool_calls: [{ index: 0, function: { arguments: '{"city":' } }] },
        { tool_calls: [{ index: 0, function: { arguments: '"Paris"}' } }] },
      ],
    });
    const tools: OpenAI.Responses.Tool[] = [{ type: 'function', name: 'weather', description: 'Weather now', parameters: { type: 'object', properties: { city: { type: 'string' } } }, strict: false }];
    const events = await collect(await a.sdk.responses.create({ model: 'tr', input: 'Weather in Paris?', tools, stream: true }));
    assertGrammar(events, 'response.completed');
    const argsDone = events.find((e) => e.type === 'response.function_call_arguments.done');
    assert.ok(argsDone?.type === 'response.function_call_arguments.done');
    assert.equal(argsDone.arguments, '{"city":"Paris"}');
    const last = events.at(-1)!;
    assert.ok(last.type === 'response.completed');
    const call = last.response.output.find((o) => o.type === 'function_call');
    assert.ok(call?.type === 'function_call');
    assert.deepEqual([call.call_id, call.name, call.arguments], ['call_w1', 'weather', '{"city":"Paris"}']);
    const sentTools = (chat.requests.at(-1)!.body as Json)['tools'];
    assert.deepEqual(sentTools, [{ type: 'function', function: { name: 'weather', description: 'Weather now', parameters: { type: 'object', properties: { city: { type: 'string' } } }, strict: false } }]);

    chat.setBehavior({ kind: 'ok', text: 'Sunny, 21°C.', usage: { prompt_tokens: 40, completion_tokens: 5 } });
    const r = await a.sdk.responses.create({
      model: 'tr',
      tools,
      input: [
        { role: 'user', content: 'Weather in Paris?' },
        { type: 'function_call', call_id: call.call_id, name: call.name, arguments: call.arguments },
        { type: 'function_call_output', call_id: call.call_id, output: '{"sky":"sunny","c":21}' },
      ],
    });
    assert.equal(r.output_text, 'Sunny, 21°C.');
    const sent = chat.requests.at(-1)!.body as { messages: Json[] };
    assert.deepEqual(sent.messages.slice(1), [
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_w1', type: 'function', function: { name: 'weather', arguments: '{"city":"Paris"}' } }] },
      { role: 'tool', tool_call_id: 'call_w1', content: '{"sky":"sunny","c":21}' },
    ]);
    const recs = await records(a.keyId);
    assert.equal(recs.length, 2);
  });

  test('previous_response_id and item_reference get 400 naming the field; nothing is billed', async () => {
    const a = await account();
    const before = chat.requests.length;
    await assert.rejects(a.sdk.responses.create({ model: 'tr', input: 'Go on', previous_response_id: 'resp_abc' }), (e: unknown) => {
      assert.ok(e instanceof OpenAI.BadRequestError);
      assert.equal((e.error as Json)['param'], 'previous_response_id');
      return true;
    });
    await assert.rejects(a.sdk.responses.create({ model: 'tr', input: [{ type: 'item_reference', id: 'msg_1' }] }), (e: unknown) => {
      assert.ok(e instanceof OpenAI.BadRequestError);
      assert.equal((e.error as Json)['param'], 'input[0].id');
      return true;
    });
    assert.equal(chat.requests.length, before);
    const recs = await records(a.keyId);
    assert.deepEqual(recs.map((r) => [r['status'], r['cost']]), [[400, '0.000000000'], [400, '0.000000000']]);
  });

  test('a wrong-typed field is a 400 in SPEC §3 shape naming it', async () => {
    const a = await account();
    const res = await gw.http('POST', '/v1/responses', { key: a.key, body: { model: 'tr', input: [{ role: 'user', content: [{ type: 'input_text', text: 5 }] }] } });
    assert.equal(res.status, 400);
    assert.deepEqual(Object.keys(res.json.error).sort(), ['code', 'message', 'param', 'traceId', 'type']);
    assert.equal(res.json.error.param, 'input[0].content[0].text');
    assert.equal(res.json.error.code, '400');
    assert.equal(res.json.error.traceId, res.headers['x-request-id']);
  });
});

describe('native (responses: native deployments)', () => {
  test('text, not streamed: passed through but for the model and the cap; the upstream id; billed from its usage', async () => {
    const a = await account();
    natA.script = natB.script = () => ({ kind: 'answer', text: 'Native hello.', reasoning: 'Thinking briefly.', usage: { input: 15, output: 9, reasoning: 4, cached: 5 } });
    const r = await a.sdk.responses.create({ model: 'nat', input: [{ role: 'user', content: [{ type: 'input_text', text: 'Hi' }] }], include: ['reasoning.encrypted_content'], store: true });
    // The SDK's own output_text, from the message item.
    assert.equal(r.output_text, 'Native hello.');
    assert.deepEqual(r.output.map((o) => o.type), ['reasoning', 'message']);
    const msg = r.output.find((o) => o.type === 'message');
    assert.ok(msg?.type === 'message');
    assert.deepEqual(msg.content.map((c) => (c.type === 'output_text' ? c.text : '')), ['Native hello.']);
    assert.equal(r.model, 'nat');
    const up = [natA, natB].find((u) => u.stored.has(r.id));
    assert.ok(up !== undefined, 'the id is the upstream one');
    const sent = up.received.at(-1)!.body;
    assert.ok(sent['model'] === 'gpt-a' || sent['model'] === 'gpt-b');
    assert.deepEqual(sent['input'], [{ role: 'user', content: [{ type: 'input_text', text: 'Hi' }] }]);
    assert.deepEqual(sent['include'], ['reasoning.encrypted_content']);
    assert.equal(typeof sent['max_output_tokens'], 'number', 'the hold sets the cap the client did not');
    assert.equal(r.usage?.input_tokens_details.cached_tokens, 5);
    assert.equal(r.usage?.output_tokens_details.reasoning_tokens, 4);
    assert.equal((r.usage as unknown as Json)['cost'], Number(cost(15, 9)) / 1e9);
    await assertBilled(a, cost(15, 9));
  });

  test('streamed: the upstream events as they came, the terminal one carrying what was billed', async () => {
    const a = await account();
    natA.script = natB.script = () => ({ kind: 'answer', text: 'Streamed natively.', usage: { input: 11, output: 3 } });
    const events = await collect(await a.sdk.responses.create({ model: 'nat', input: 'Hi', stream: true, max_output_tokens: 100 }));
    assertGrammar(events, 'response.completed');
    assert.deepEqual(events.map((e) => e.sequence_number), events.map((_, i) => i), 'the upstream numbering, untouched');
    const last = events.at(-1)!;
    assert.ok(last.type === 'response.completed');
    assert.equal(last.response.model, 'nat');
    assert.equal((last.response.usage as unknown as Json)['cost'], Number(cost(11, 3)) / 1e9);
    assert.equal(events.flatMap((e) => (e.type === 'response.output_text.delta' ? [e.delta] : [])).join(''), 'Streamed natively.');
    await assertBilled(a, cost(11, 3));
  });

  test('function tools round trip passes through', async () => {
    const a = await account();
    natA.script = natB.script = (body) =>
      Array.isArray(body['input']) && (body['input'] as Json[]).some((i) => i['type'] === 'function_call_output')
        ? { kind: 'answer', text: 'It is sunny.' }
        : { kind: 'answer', calls: [{ name: 'weather', arguments: '{"city":"Oslo"}' }] };
    const tools: OpenAI.Responses.Tool[] = [{ type: 'function', name: 'weather', parameters: { type: 'object' }, strict: false }];
    const first = await a.sdk.responses.create({ model: 'nat', input: 'Weather?', tools, store: false });
    const call = first.output.find((o) => o.type === 'function_call');
    assert.ok(call?.type === 'function_call');
    assert.equal(call.arguments, '{"city":"Oslo"}');
    const second = await a.sdk.responses.create({
      model: 'nat',
      tools,
      store: false,
      input: [{ role: 'user', content: 'Weather?' }, call, { type: 'function_call_output', call_id: call.call_id, output: 'sunny' }],
    });
    assert.equal(second.output_text, 'It is sunny.');
  });

  for (const stream of [false, true]) {
    test(`previous_response_id reaches the deployment that made the response (two deployments, ${stream ? 'streamed' : 'not streamed'})`, async () => {
      const a = await account();
      natA.script = natB.script = () => ({ kind: 'answer', text: 'Noted.', usage: { input: 7, output: 2 } });
      const seen = new Set<string>();
      // Until both deployments have made a first response (random choice between equals: the
      // chance that 40 all land on one is 2^-39), and at least eight continuations in all.
      for (let i = 0; i < 40 && (i < 8 || seen.size < 2); i++) {
        const first = await a.sdk.responses.create({ model: 'nat', input: `Remember ${i}` });
        const origin = natA.stored.has(first.id) ? 'a' : 'b';
        seen.add(origin);
        let id: string;
        if (stream) {
          const events = await collect(await a.sdk.responses.create({ model: 'nat', input: 'And?', previous_response_id: first.id, stream: true }));
          const last = events.at(-1)!;
          assert.ok(last.type === 'response.completed', `got ${last.type}`);
          id = last.response.id;
        } else {
          id = (await a.sdk.responses.create({ model: 'nat', input: 'And?', previous_response_id: first.id })).id;
        }
        assert.equal(natA.stored.has(id) ? 'a' : 'b', origin);
      }
      assert.equal(seen.size, 2);
    });
  }

  test('a continuation is held for the conversation the gateway cannot see: a large stored prompt is billed as reported', async () => {
    const a = await account();
    natA.script = natB.script = () => ({ kind: 'answer', text: 'Noted.', usage: { input: 5, output: 2 } });
    const first = await a.sdk.responses.create({ model: 'nat', input: 'Remember this.' });
    // The upstream replays a long stored conversation: far more input than the body shows.
    natA.script = natB.script = () => ({ kind: 'answer', text: 'Still here.', usage: { input: 90_000, output: 3 } });
    await a.sdk.responses.create({ model: 'nat', input: 'And?', previous_response_id: first.id });
    const recs = await records(a.keyId);
    assert.equal(recs.length, 2);
    const costs = recs.map((r) => parseUsd(r['cost'] as string)!).sort((x, y) => (x < y ? -1 : 1));
    assert.deepEqual(costs, [cost(5, 2), cost(90_000, 3)]);
    assert.equal(await balance(a.accountId), 10_000_000_000n - cost(5, 2) - cost(90_000, 3));
  });

  test('a mid-stream response.failed reaches the client (the SDK raises) and is billed from its usage', async () => {
    const a = await account();
    natA.script = natB.script = () => ({ kind: 'failed', usage: { input: 13, output: 4 } });
    const stream = await a.sdk.responses.create({ model: 'nat', input: 'Hi', stream: true });
    await assert.rejects(collect(stream), (e: unknown) => e instanceof OpenAI.APIError);
    await assertBilled(a, cost(13, 4));
  });
});

describe('Vercel AI SDK (default openai(model) is the Responses API)', () => {
  for (const model of ['tr', 'nat']) {
    test(`generateText and streamText on ${model}`, async () => {
      const a = await account();
      chat.setBehavior({ kind: 'stream', chunks: ['Hello', ' AI', ' SDK.'], usage: { prompt_tokens: 8, completion_tokens: 3 } });
      natA.script = natB.script = () => ({ kind: 'answer', text: 'Hello AI SDK.', usage: { input: 8, output: 3 } });
      const openai = createOpenAI({ baseURL: gw.baseURL, apiKey: a.key });
      if (model === 'tr') chat.setBehavior({ kind: 'ok', text: 'Hello AI SDK.', usage: { prompt_tokens: 8, completion_tokens: 3 } });
      const g = await generateText({ model: openai(model), prompt: 'Say hello' });
      assert.equal(g.text, 'Hello AI SDK.');
      assert.equal(g.usage.inputTokens, 8);
      assert.equal(g.usage.outputTokens, 3);
      if (model === 'tr') chat.setBehavior({ kind: 'stream', chunks: ['Hello', ' AI', ' SDK.'], usage: { prompt_tokens: 8, completion_tokens: 3 } });
      const s = streamText({ model: openai(model), prompt: 'Say hello' });
      let text = '';
      for await (const t of s.textStream) text += t;
      assert.equal(text, 'Hello AI SDK.');
      assert.equal((await s.usage).outputTokens, 3);
      const recs = await records(a.keyId);
      assert.equal(recs.length, 2);
      assert.equal(await balance(a.accountId), 10_000_000_000n - 2n * cost(8, 3));
    });
  }
});
