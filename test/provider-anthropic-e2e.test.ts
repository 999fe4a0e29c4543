// The anthropic provider end to end, as a user meets it: the real `openai` SDK → the gateway on a
// random port → the fake Anthropic upstream (a real HTTP server speaking the Messages API). What
// the client sees, what Anthropic received, and what was billed.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { countTokens } from 'gpt-tokenizer';
import OpenAI from 'openai';
import { parseUsd } from '../src/billing/money.js';
import { AnthropicUpstream, errorEvent, type Received, type Script } from './helpers/anthropic-upstream.js';
import { startTestGateway, type HttpResult, type TestGateway } from './helpers/gateway.js';

type Json = Record<string, unknown>;
type Chunk = OpenAI.ChatCompletionChunk;

const UPSTREAM_MODEL = 'claude-sonnet-4-5';
const WRONG_KEY = 'sk-ant-api03-WRONGwrongWRONGwrong0123456789';
/** Claude Sonnet's prices, USD per 1M tokens: cache reads a tenth of input, 5-minute cache writes 1.25×. */
const PRICING = { input: 3, output: 15, cached_input: 0.3, cache_write: 3.75 };
/** Nano-USD (the gateway's unit) per token at those prices: USD per 1M × 10^9 / 10^6. */
const NANO_PER_TOKEN = { input: 3000n, output: 15000n, cachedInput: 300n, cacheWrite: 3750n };
const MAX_OUTPUT = 3000;
const hi: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'Hi' }];
const fixture = (name: string): Script => ({ kind: 'sse', text: readFileSync(new URL(`./fixtures/anthropic/${name}.sse`, import.meta.url), 'utf8') });

let gw: TestGateway;
let upA: AnthropicUpstream;
let upB: AnthropicUpstream;
let sdk: OpenAI;

before(async () => {
  upA = await AnthropicUpstream.start('sk-ant-api03-upstreamA-0123456789abcdef');
  upB = await AnthropicUpstream.start('sk-ant-api03-upstreamB-0123456789abcdef');
  gw = await startTestGateway({
    providers: {
      ant: { type: 'anthropic', base_url: upA.url, api_key: upA.apiKey },
      ant_b: { type: 'anthropic', base_url: upB.url, api_key: upB.apiKey },
      ant_bad: { type: 'anthropic', base_url: upA.url, api_key: WRONG_KEY },
    },
    models: {
      claude: { pricing: PRICING, max_output_tokens: MAX_OUTPUT, deployments: [{ provider: 'ant', model: UPSTREAM_MODEL }] },
      'claude-ha': {
        pricing: PRICING,
        deployments: [
          { provider: 'ant', model: UPSTREAM_MODEL, priority: 0 },
          { provider: 'ant_b', model: 'claude-sonnet-4-5-b', priority: 1 },
        ],
      },
      'claude-bad': { pricing: PRICING, deployments: [{ provider: 'ant_bad', model: UPSTREAM_MODEL }] },
    },
  });
  sdk = gw.client((await gw.createKey()).key);
});

after(async () => {
  await gw.close();
  await upA.close();
  await upB.close();
});

// ---------------------------------------------------------------------------------------------
// Helpers

/** Runs `fn` and returns its result with the one request `up` received meanwhile. */
async function via<T>(up: AnthropicUpstream, fn: () => Promise<T>): Promise<{ result: T; got: Received }> {
  const from = up.received.length;
  const result = await fn();
  const seen = up.received.slice(from);
  assert.equal(seen.length, 1, 'expected exactly one upstream request');
  return { result, got: seen[0]! };
}

/** Drains an SDK stream: its chunks and, if iterating threw, the error. */
async function drain(stream: AsyncIterable<Chunk>): Promise<{ chunks: Chunk[]; error: unknown }> {
  const chunks: Chunk[] = [];
  let error: unknown = null;
  try {
    for await (const c of stream) chunks.push(c);
  } catch (e) {
    error = e;
  }
  return { chunks, error };
}

const textOf = (chunks: Chunk[]): string => chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
/** `reasoning_content` is the gateway's (and DeepSeek's) field; the SDK's types do not know it. */
const reasoningOf = (chunks: Chunk[]): string => chunks.map((c) => (c.choices[0]?.delta as { reasoning_content?: string } | undefined)?.reasoning_content ?? '').join('');
const finishes = (chunks: Chunk[]): string[] => chunks.flatMap((c) => c.choices.map((x) => x.finish_reason).filter((f): f is NonNullable<typeof f> => f !== null));

function lastIndex<T>(xs: readonly T[], p: (x: T) => boolean): number {
  for (let i = xs.length - 1; i >= 0; i--) if (p(xs[i]!)) return i;
  return -1;
}

const units = (usd: string): bigint => parseUsd(usd)!;

interface UsageRow {
  provider: string;
  upstream_model: string;
  prompt_tokens: number;
  completion_tokens: number;
  cached_tokens: number;
  cache_write_tokens: number;
  cost: string;
  status: number;
  error_type: string | null;
  stream: boolean;
}

async function usageRows(keyId: string): Promise<UsageRow[]> {
  const res = await gw.admin('GET', `/usage?key_id=${keyId}`);
  assert.equal(res.status, 200, res.text);
  return (res.json as { data: UsageRow[] }).data;
}

async function balance(accountId: string): Promise<bigint> {
  const res = await gw.admin('GET', `/accounts/${accountId}`);
  assert.equal(res.status, 200, res.text);
  return units((res.json as { balance: string }).balance);
}

/** What tokens cost at PRICING, in nano-USD, computed here rather than by the gateway's code. */
function priced(t: { input: number; cacheRead?: number; cacheWrite?: number; output: number }): bigint {
  return (
    BigInt(t.input) * NANO_PER_TOKEN.input +
    BigInt(t.cacheRead ?? 0) * NANO_PER_TOKEN.cachedInput +
    BigInt(t.cacheWrite ?? 0) * NANO_PER_TOKEN.cacheWrite +
    BigInt(t.output) * NANO_PER_TOKEN.output
  );
}

type APIError = InstanceType<typeof OpenAI.APIError>;

async function sdkFailure(p: Promise<unknown>): Promise<APIError> {
  const err = await p.then(
    () => assert.fail('expected the request to fail'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof OpenAI.APIError, `expected an APIError, got ${String(err)}`);
  return err;
}

// ---------------------------------------------------------------------------------------------

describe('text', () => {
  test('non-streamed: the answer, its id and usage; Anthropic got /v1/messages with its headers and a Messages body', async () => {
    upA.next({ kind: 'message', id: 'msg_01Text', content: [{ type: 'text', text: 'Bonjour !' }], usage: { input_tokens: 9, output_tokens: 3 } });
    const { result: res, got } = await via(upA, () =>
      sdk.chat.completions.create({ model: 'claude', max_tokens: 200, stop: ['\n\n'], user: 'end-user-1', messages: [{ role: 'system', content: 'Be kind.' }, { role: 'user', content: 'Salut' }] }),
    );
    assert.equal(res.id, 'msg_01Text');
    assert.equal(res.model, 'claude');
    assert.equal(res.choices.length, 1);
    assert.equal(res.choices[0]!.message.role, 'assistant');
    assert.equal(res.choices[0]!.message.content, 'Bonjour !');
    assert.equal(res.choices[0]!.finish_reason, 'stop');
    assert.equal(res.usage?.prompt_tokens, 9);
    assert.equal(res.usage?.completion_tokens, 3);
    assert.equal(res.usage?.total_tokens, 12);

    assert.equal(got.path, '/v1/messages');
    assert.equal(got.headers['x-api-key'], upA.apiKey);
    assert.equal(got.headers['anthropic-version'], '2023-06-01');
    assert.equal(got.headers['authorization'], undefined, 'neither the client key nor a Bearer token goes to Anthropic');
    assert.deepEqual(got.body, {
      model: UPSTREAM_MODEL,
      max_tokens: 200,
      messages: [{ role: 'user', content: [{ type: 'text', text: 'Salut' }] }],
      system: [{ type: 'text', text: 'Be kind.' }],
      stop_sequences: ['\n\n'],
      metadata: { user_id: 'end-user-1' },
    });
  });

  test('streamed: the text in pieces, one finish, the usage chunk last, then the end; Anthropic got stream: true', async () => {
    upA.next({ kind: 'message', id: 'msg_01Stream', content: [{ type: 'text', text: 'Hello there, streamed.' }], usage: { input_tokens: 4, output_tokens: 5 } });
    const { result, got } = await via(upA, async () =>
      drain(await sdk.chat.completions.create({ model: 'claude', max_tokens: 200, messages: hi, stream: true, stream_options: { include_usage: true } })),
    );
    assert.equal(result.error, null);
    const { chunks } = result;
    assert.equal(got.body['stream'], true);
    assert.equal(textOf(chunks), 'Hello there, streamed.');
    assert.ok(chunks.filter((c) => (c.choices[0]?.delta?.content ?? '') !== '').length >= 2, 'the text came in pieces');
    assert.ok(chunks.every((c) => c.id === 'msg_01Stream' && c.model === 'claude' && c.object === 'chat.completion.chunk'));
    assert.equal(chunks[0]!.choices[0]!.delta.role, 'assistant');
    assert.deepEqual(finishes(chunks), ['stop']);
    const last = chunks.at(-1)!;
    assert.deepEqual(last.choices, []);
    assert.equal(last.usage?.prompt_tokens, 4);
    assert.equal(last.usage?.completion_tokens, 5);
  });
});

describe('tools', () => {
  const parameters = { type: 'object', properties: { location: { type: 'string' } }, required: ['location'] };
  const tools: OpenAI.ChatCompletionTool[] = [{ type: 'function', function: { name: 'get_weather', description: 'Weather now', parameters } }];
  const question: OpenAI.ChatCompletionMessageParam = { role: 'user', content: 'Weather in Paris and Lyon?' };

  test('two parallel tool calls in one stream: OpenAI indices 0 and 1, Anthropic\'s ids, arguments streamed in pieces', async () => {
    // A recorded stream: a text block (Anthropic's index 0), then tool_use blocks at indices 1 and 2.
    upA.next(fixture('tool-use-parallel'));
    const { result, got } = await via(upA, async () => drain(await sdk.chat.completions.create({ model: 'claude', max_tokens: 500, messages: [question], tools, stream: true })));
    assert.equal(result.error, null);
    const { chunks } = result;
    assert.deepEqual(got.body['tools'], [{ name: 'get_weather', description: 'Weather now', input_schema: parameters }]);
    assert.equal(textOf(chunks), 'I will check both cities.');

    const calls = chunks.flatMap((c) => c.choices[0]?.delta?.tool_calls ?? []);
    const starts = calls.filter((c) => c.id !== undefined);
    assert.deepEqual(
      starts.map((c) => ({ index: c.index, id: c.id, type: c.type, name: c.function?.name })),
      [
        { index: 0, id: 'toolu_01T1x1fJ34qAmk2tNTrN7Up6', type: 'function', name: 'get_weather' },
        { index: 1, id: 'toolu_01B7nEqWzXqf8Vd2bHjGQm4c', type: 'function', name: 'get_weather' },
      ],
    );
    for (const [index, whole] of [[0, '{"location": "Paris, FR"}'], [1, '{"location": "Lyon, FR"}']] as const) {
      const pieces = calls.filter((c) => c.index === index && c.id === undefined).map((c) => c.function?.arguments ?? '');
      assert.ok(pieces.length >= 2, `the arguments of call ${index} came in pieces`);
      assert.equal(calls.filter((c) => c.index === index).map((c) => c.function?.arguments ?? '').join(''), whole);
    }
    // Every piece of call 0 comes before call 1 starts: the calls are not interleaved.
    assert.ok(lastIndex(calls, (c) => c.index === 0) < calls.findIndex((c) => c.index === 1));
    assert.deepEqual(finishes(chunks), ['tool_calls']);
  });

  test('the tool-result round trip: the SDK\'s own accumulated message goes back; Anthropic receives tool_use and tool_result blocks', async () => {
    upA.next(fixture('tool-use-parallel'));
    const runner = sdk.chat.completions.stream({ model: 'claude', max_tokens: 500, messages: [question], tools });
    const first = await runner.finalChatCompletion();
    const message = first.choices[0]!.message;
    assert.equal(first.choices[0]!.finish_reason, 'tool_calls');
    assert.deepEqual(
      message.tool_calls?.map((c) => (c.type === 'function' ? [c.id, c.function.name, JSON.parse(c.function.arguments) as unknown] : null)),
      [
        ['toolu_01T1x1fJ34qAmk2tNTrN7Up6', 'get_weather', { location: 'Paris, FR' }],
        ['toolu_01B7nEqWzXqf8Vd2bHjGQm4c', 'get_weather', { location: 'Lyon, FR' }],
      ],
    );

    upA.next({ kind: 'message', content: [{ type: 'text', text: 'Paris 18°C, Lyon 20°C.' }] });
    const { result: res, got } = await via(upA, () =>
      sdk.chat.completions.create({
        model: 'claude',
        max_tokens: 500,
        tools,
        messages: [
          question,
          { role: 'assistant', content: message.content, tool_calls: message.tool_calls },
          { role: 'tool', tool_call_id: 'toolu_01T1x1fJ34qAmk2tNTrN7Up6', content: '18°C' },
          { role: 'tool', tool_call_id: 'toolu_01B7nEqWzXqf8Vd2bHjGQm4c', content: '20°C' },
        ],
      }),
    );
    assert.equal(res.choices[0]!.message.content, 'Paris 18°C, Lyon 20°C.');
    assert.equal(res.choices[0]!.finish_reason, 'stop');
    assert.deepEqual(got.body['messages'], [
      { role: 'user', content: [{ type: 'text', text: 'Weather in Paris and Lyon?' }] },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'I will check both cities.' },
          { type: 'tool_use', id: 'toolu_01T1x1fJ34qAmk2tNTrN7Up6', name: 'get_weather', input: { location: 'Paris, FR' } },
          { type: 'tool_use', id: 'toolu_01B7nEqWzXqf8Vd2bHjGQm4c', name: 'get_weather', input: { location: 'Lyon, FR' } },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'toolu_01T1x1fJ34qAmk2tNTrN7Up6', content: '18°C' },
          { type: 'tool_result', tool_use_id: 'toolu_01B7nEqWzXqf8Vd2bHjGQm4c', content: '20°C' },
        ],
      },
    ]);
  });

  test('non-streamed tool call with a forced tool and parallel_tool_calls: false', async () => {
    upA.next({ kind: 'message', content: [{ type: 'tool_use', id: 'toolu_01Forced', name: 'get_weather', input: { location: 'Nice' } }] });
    const { result: res, got } = await via(upA, () =>
      sdk.chat.completions.create({ model: 'claude', max_tokens: 500, messages: [question], tools, tool_choice: { type: 'function', function: { name: 'get_weather' } }, parallel_tool_calls: false }),
    );
    assert.deepEqual(got.body['tool_choice'], { type: 'tool', name: 'get_weather', disable_parallel_tool_use: true });
    assert.equal(res.choices[0]!.finish_reason, 'tool_calls');
    assert.equal(res.choices[0]!.message.content, null);
    assert.deepEqual(res.choices[0]!.message.tool_calls, [{ id: 'toolu_01Forced', type: 'function', function: { name: 'get_weather', arguments: '{"location":"Nice"}' } }]);
  });
});

test('images: a data URL arrives as a base64 source, an http URL as a url source', async () => {
  const png = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';
  const { got } = await via(upA, () =>
    sdk.chat.completions.create({
      model: 'claude',
      max_tokens: 100,
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Compare these.' },
            { type: 'image_url', image_url: { url: `data:image/png;base64,${png}`, detail: 'low' } },
            { type: 'image_url', image_url: { url: 'https://images.example/cat.jpg' } },
          ],
        },
      ],
    }),
  );
  assert.deepEqual(got.body['messages'], [
    {
      role: 'user',
      content: [
        { type: 'text', text: 'Compare these.' },
        { type: 'image', source: { type: 'base64', media_type: 'image/png', data: png } },
        { type: 'image', source: { type: 'url', url: 'https://images.example/cat.jpg' } },
      ],
    },
  ]);
});

describe('JSON mode', () => {
  test('json_object: asked for in the system prompt, after the client\'s system message; no OpenAI-only field reaches Anthropic', async () => {
    upA.next({ kind: 'message', content: [{ type: 'text', text: '{"answer":42}' }] });
    const { result: res, got } = await via(upA, () =>
      sdk.chat.completions.create({
        model: 'claude',
        max_tokens: 100,
        response_format: { type: 'json_object' },
        frequency_penalty: 0.5,
        seed: 7,
        messages: [{ role: 'system', content: 'You answer questions.' }, { role: 'user', content: 'The answer, as JSON?' }],
      }),
    );
    assert.deepEqual(JSON.parse(res.choices[0]!.message.content ?? ''), { answer: 42 });
    const system = got.body['system'] as { type: string; text: string }[];
    assert.equal(system.length, 2);
    assert.deepEqual(system[0], { type: 'text', text: 'You answer questions.' });
    assert.match(system[1]!.text, /single valid JSON object/);
    // The fake refuses unknown fields as Anthropic does; these are named so that a failure says which.
    for (const k of ['response_format', 'frequency_penalty', 'seed']) assert.equal(got.body[k], undefined, k);
  });

  test('json_schema: the schema goes in the system prompt', async () => {
    upA.next({ kind: 'message', content: [{ type: 'text', text: '{"city":"Paris"}' }] });
    const schema = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false };
    const { result: res, got } = await via(upA, () =>
      sdk.chat.completions.create({ model: 'claude', max_tokens: 100, messages: hi, response_format: { type: 'json_schema', json_schema: { name: 'place', schema, strict: true } } }),
    );
    assert.deepEqual(JSON.parse(res.choices[0]!.message.content ?? ''), { city: 'Paris' });
    const [instruction] = got.body['system'] as { text: string }[];
    assert.match(instruction!.text, /JSON Schema "place"/);
    assert.ok(instruction!.text.includes(JSON.stringify(schema)));
  });
});

describe('reasoning', () => {
  test('non-streamed: reasoning_effort → thinking budget (temperature dropped); the thinking comes back as message.reasoning_content', async () => {
    upA.next({ kind: 'message', content: [{ type: 'thinking', thinking: 'Two and two make four.', signature: 'sig-e2e' }, { type: 'text', text: '4' }] });
    const { result: res, got } = await via(upA, () =>
      sdk.chat.completions.create({ model: 'claude', max_tokens: 10_000, reasoning_effort: 'medium', temperature: 0.7, messages: [{ role: 'user', content: '2+2?' }] }),
    );
    assert.deepEqual(got.body['thinking'], { type: 'enabled', budget_tokens: 4096 });
    assert.equal(got.body['max_tokens'], 10_000);
    // Anthropic refuses temperature with thinking on.
    assert.equal(got.body['temperature'], undefined);
    const message = res.choices[0]!.message as OpenAI.ChatCompletionMessage & { reasoning_content?: string };
    assert.equal(message.reasoning_content, 'Two and two make four.');
    assert.equal(message.content, '4');
  });

  test('streamed: thinking as reasoning_content deltas before the text; without max_tokens the budget stays below the gateway\'s cap', async () => {
    upA.next(fixture('thinking'));
    const { result, got } = await via(upA, async () =>
      drain(await sdk.chat.completions.create({ model: 'claude', reasoning_effort: 'high', messages: [{ role: 'user', content: '27 * 453?' }], stream: true })),
    );
    assert.equal(result.error, null);
    // high is 16384, but thinking counts toward max_tokens, which is the model's cap here.
    assert.equal(got.body['max_tokens'], MAX_OUTPUT);
    assert.deepEqual(got.body['thinking'], { type: 'enabled', budget_tokens: MAX_OUTPUT - 1 });
    const { chunks } = result;
    assert.equal(reasoningOf(chunks), '27 * 453 = 27 * 400 + 27 * 53 = 10800 + 1431 = 12231');
    assert.ok(chunks.filter((c) => reasoningOf([c]) !== '').length >= 2, 'the reasoning came in pieces');
    assert.equal(textOf(chunks), '27 * 453 = 12,231');
    const lastReasoning = lastIndex(chunks, (c) => reasoningOf([c]) !== '');
    const firstText = chunks.findIndex((c) => textOf([c]) !== '');
    assert.ok(lastReasoning < firstText, 'reasoning before the answer');
    assert.deepEqual(finishes(chunks), ['stop']);
  });
});

describe('every stop reason, streamed and not', () => {
  const cases: [string, OpenAI.ChatCompletion.Choice['finish_reason']][] = [
    ['end_turn', 'stop'],
    ['stop_sequence', 'stop'],
    ['pause_turn', 'stop'],
    ['max_tokens', 'length'],
    ['tool_use', 'tool_calls'],
    ['refusal', 'content_filter'],
  ];
  for (const [stopReason, want] of cases) {
    test(`${stopReason} → ${want}`, async () => {
      const script: Script = { kind: 'message', content: [{ type: 'text', text: 'Some words.' }], stopReason, ...(stopReason === 'stop_sequence' ? { stopSequence: 'END' } : {}) };
      upA.next(script);
      const res = await sdk.chat.completions.create({ model: 'claude', max_tokens: 100, messages: hi });
      assert.equal(res.choices[0]!.finish_reason, want);
      assert.equal(res.choices[0]!.message.content, 'Some words.');
      upA.next(script);
      const { chunks, error } = await drain(await sdk.chat.completions.create({ model: 'claude', max_tokens: 100, messages: hi, stream: true }));
      assert.equal(error, null);
      assert.deepEqual(finishes(chunks), [want]);
      assert.equal(textOf(chunks), 'Some words.');
    });
  }
});

describe('usage and billing with prompt caching', () => {
  // Anthropic's input_tokens leaves out cache reads and writes; OpenAI's prompt_tokens has them all.
  const usage = { input_tokens: 31, output_tokens: 53, cache_creation_input_tokens: 1007, cache_read_input_tokens: 2003 };
  // 31 × 3000 + 2003 × 300 + 1007 × 3750 + 53 × 15000 nano-USD: 93000 + 600900 + 3776250 + 795000.
  const EXPECTED_COST = 5_265_150n;

  function checkShown(u: OpenAI.CompletionUsage | undefined | null): void {
    assert.ok(u !== undefined && u !== null, 'usage shown');
    assert.equal(u.prompt_tokens, 31 + 1007 + 2003);
    assert.equal(u.completion_tokens, 53);
    assert.equal(u.total_tokens, 31 + 1007 + 2003 + 53);
    assert.equal(u.prompt_tokens_details?.cached_tokens, 2003);
    assert.equal((u as unknown as Json)['cache_creation_input_tokens'], 1007);
    assert.equal((u as unknown as Json)['cost'], Number(EXPECTED_COST) / 1e9);
  }

  async function checkBilled(k: { id: string; accountId: string }, credit: bigint, stream: boolean): Promise<void> {
    assert.equal(priced({ input: 31, cacheRead: 2003, cacheWrite: 1007, output: 53 }), EXPECTED_COST);
    const rows = await usageRows(k.id);
    assert.equal(rows.length, 1);
    const r = rows[0]!;
    assert.deepEqual(
      { prompt: r.prompt_tokens, completion: r.completion_tokens, cached: r.cached_tokens, written: r.cache_write_tokens, status: r.status, stream: r.stream, provider: r.provider, model: r.upstream_model },
      { prompt: 3041, completion: 53, cached: 2003, written: 1007, status: 200, stream, provider: 'ant', model: UPSTREAM_MODEL },
    );
    assert.equal(units(r.cost), EXPECTED_COST, `cost ${r.cost}`);
    assert.equal(credit - (await balance(k.accountId)), EXPECTED_COST, 'the balance went down by exactly the cost');
  }

  test('non-streamed: the client sees all prompt tokens, cached_tokens and cache_creation_input_tokens; cache reads and writes billed at their prices', async () => {
    const k = await gw.createKey({ credit: '1' });
    upA.next({ kind: 'message', content: [{ type: 'text', text: 'Cached answer.' }], usage });
    const res = await gw.client(k.key).chat.completions.create({ model: 'claude', max_tokens: 1000, messages: hi });
    checkShown(res.usage);
    await checkBilled(k, units('1'), false);
  });

  test('streamed: the same, from message_start\'s input counts and message_delta\'s output count', async () => {
    const k = await gw.createKey({ credit: '1' });
    upA.next({ kind: 'message', content: [{ type: 'text', text: 'Cached answer.' }], usage });
    const { chunks, error } = await drain(
      await gw.client(k.key).chat.completions.create({ model: 'claude', max_tokens: 1000, messages: hi, stream: true, stream_options: { include_usage: true } }),
    );
    assert.equal(error, null);
    assert.equal(chunks.filter((c) => c.usage !== null && c.usage !== undefined).length, 1);
    checkShown(chunks.at(-1)!.usage);
    await checkBilled(k, units('1'), true);
  });
  test('a prompt billed entirely as cache writes, dearer than input, stays within the hold: billed at cache_write, not distrusted', async () => {
    // 2000 words of prompt, each reported back as written to the cache, and the whole max_tokens used.
    const k = await gw.createKey({ credit: '1' });
    const words = Array.from({ length: 2000 }, () => 'cache').join(' ');
    const written = { input_tokens: 0, cache_creation_input_tokens: 2000, output_tokens: 100 };
    upA.next({ kind: 'message', content: [{ type: 'text', text: 'x' }], usage: written });
    const res = await gw.client(k.key).chat.completions.create({ model: 'claude', max_tokens: 100, messages: [{ role: 'user', content: words }] });
    const expected = priced({ input: 0, cacheWrite: 2000, output: 100 });
    assert.equal((res.usage as unknown as Json)['cache_creation_input_tokens'], 2000);
    const [r] = await usageRows(k.id);
    assert.equal(r!.cache_write_tokens, 2000);
    assert.equal(units(r!.cost), expected);
    assert.equal(units('1') - (await balance(k.accountId)), expected);
  });
});

test('an error event mid-stream: the SDK raises it while iterating, after the text; the record bills what was delivered', async () => {
  const k = await gw.createKey({ credit: '1' });
  // Recorded: message_start, "Once upon", then Anthropic's overloaded error event.
  upA.next(fixture('error-mid-stream'));
  const { chunks, error } = await drain(await gw.client(k.key).chat.completions.create({ model: 'claude', max_tokens: 100, messages: hi, stream: true }));
  assert.equal(textOf(chunks), 'Once upon');
  assert.ok(error instanceof OpenAI.APIError, `expected the SDK to raise, got ${String(error)}`);
  const body = error.error as Json;
  assert.equal(body['type'], 'api_error');
  assert.equal(body['code'], '502');
  assert.deepEqual(finishes(chunks), [], 'no finish: the answer is not whole');

  const [r, ...more] = await usageRows(k.id);
  assert.equal(more.length, 0);
  assert.equal(r!.status, 502);
  assert.equal(r!.error_type, 'api_error');
  assert.equal(r!.stream, true);
  // No usage came with the stream: the delivered text is counted, the prompt estimated.
  assert.equal(r!.completion_tokens, countTokens('Once upon'));
  const cost = priced({ input: r!.prompt_tokens, output: r!.completion_tokens });
  assert.ok(cost > 0n);
  assert.equal(units(r!.cost), cost);
  assert.equal(units('1') - (await balance(k.accountId)), cost);
});

describe('overloaded (529) and rate limited (429)', () => {
  // The last field: upstream requests the only deployment gets. Without a retry-after it is retried
  // (3 attempts, the default); a retry-after beyond max_retry_wait_ms (2 s) ends the request at once.
  const upstreamErrors: [string, Script, string, number][] = [
    ['529 overloaded_error', { kind: 'error', status: 529, type: 'overloaded_error', message: 'Overloaded' }, '1', 3],
    ['429 rate_limit_error with retry-after: 7', { kind: 'error', status: 429, type: 'rate_limit_error', message: 'Number of request tokens has exceeded your per-minute rate limit', headers: { 'retry-after': '7' } }, '7', 1],
  ];

  for (const [what, script, retryAfter, attempts] of upstreamErrors) {
    test(`${what}, the only deployment: 503 with retry-after ${retryAfter} after ${attempts} upstream request(s), streamed and not`, async () => {
      for (const stream of [false, true]) {
        upA.next(...Array.from({ length: attempts }, () => script));
        const before = upA.received.length;
        const err = await sdkFailure(sdk.chat.completions.create({ model: 'claude', max_tokens: 100, messages: hi, stream }));
        assert.ok(err instanceof OpenAI.InternalServerError, String(err));
        assert.equal(err.status, 503);
        assert.equal((err.error as Json)['type'], 'api_error');
        assert.equal(err.headers?.get('retry-after'), retryAfter);
        assert.equal(err.headers?.get('retry-after-ms'), String(Number(retryAfter) * 1000));
        assert.equal(upA.received.length - before, attempts);
        assert.equal(err.headers?.get('x-token360-attempts'), String(attempts));
      }
    });

    test(`${what} on the first deployment: the second one answers, streamed and not`, async () => {
      const k = await gw.createKey();
      for (const stream of [false, true]) {
        upA.next(script);
        upB.next({ kind: 'message', content: [{ type: 'text', text: 'From the second deployment.' }] });
        const [a, b] = [upA.received.length, upB.received.length];
        const c = gw.client(k.key);
        const text = stream
          ? textOf((await drain(await c.chat.completions.create({ model: 'claude-ha', max_tokens: 100, messages: hi, stream: true }))).chunks)
          : (await c.chat.completions.create({ model: 'claude-ha', max_tokens: 100, messages: hi })).choices[0]!.message.content;
        assert.equal(text, 'From the second deployment.');
        assert.equal(upA.received.length - a, 1);
        assert.equal(upB.received.length - b, 1);
        assert.equal(upB.last.body['model'], 'claude-sonnet-4-5-b');
      }
      const rows = await usageRows(k.id);
      assert.deepEqual(rows.map((r) => [r.provider, r.status]), [['ant_b', 200], ['ant_b', 200]]);
    });
  }
});

test('an overloaded error event right after message_start, before any output: 503 for the only deployment, else the second one answers', async () => {
  const overloadedAtOnce = (): Script => ({
    kind: 'events',
    events: [
      { type: 'message_start', message: { id: 'msg_01Busy', type: 'message', role: 'assistant', model: UPSTREAM_MODEL, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 8, output_tokens: 1 } } },
      { type: 'ping' },
      errorEvent('overloaded_error', 'Overloaded'),
    ],
  });
  upA.next(overloadedAtOnce(), overloadedAtOnce(), overloadedAtOnce());
  const err = await sdkFailure(sdk.chat.completions.create({ model: 'claude', max_tokens: 100, messages: hi, stream: true }));
  assert.equal(err.status, 503, 'an HTTP status the SDK can retry on, not an error inside a 200 stream');
  assert.ok(err.headers?.get('retry-after') !== null);

  upA.next(overloadedAtOnce());
  upB.next({ kind: 'message', content: [{ type: 'text', text: 'From the second deployment.' }] });
  const { chunks, error } = await drain(await sdk.chat.completions.create({ model: 'claude-ha', max_tokens: 100, messages: hi, stream: true }));
  assert.equal(error, null);
  assert.equal(textOf(chunks), 'From the second deployment.');
});

describe('a bad provider key', () => {
  const leaks = (): string[] => [WRONG_KEY, upA.apiKey, upA.url, new URL(upA.url).host, '127.0.0.1', 'x-api-key'];

  test('502, and nothing of the key nor the upstream\'s address in what the client gets, streamed and not', async () => {
    const k = await gw.createKey();
    for (const stream of [false, true]) {
      const { result: err, got } = await via(upA, () => sdkFailure(gw.client(k.key).chat.completions.create({ model: 'claude-bad', max_tokens: 100, messages: hi, stream })));
      assert.equal(got.headers['x-api-key'], WRONG_KEY, 'the configured key was sent');
      assert.ok(err instanceof OpenAI.InternalServerError);
      assert.equal(err.status, 502);
      const seen = err.message + JSON.stringify(err.error);
      for (const s of leaks()) assert.ok(!seen.includes(s), `the error leaks ${s}: ${seen}`);
    }
    // The whole HTTP answer, headers included, as a client without the SDK gets it.
    const raw: HttpResult = await gw.http('POST', '/v1/chat/completions', { key: k.key, body: { model: 'claude-bad', max_tokens: 100, messages: hi } });
    assert.equal(raw.status, 502);
    const whole = raw.text + JSON.stringify(raw.headers);
    for (const s of leaks()) assert.ok(!whole.includes(s), `the answer leaks ${s}: ${whole}`);
  });
});

describe('max_tokens is always sent', () => {
  test('the client\'s max_tokens, or max_completion_tokens, as given', async () => {
    const a = await via(upA, () => sdk.chat.completions.create({ model: 'claude', max_tokens: 77, messages: hi }));
    assert.equal(a.got.body['max_tokens'], 77);
    const b = await via(upA, () => sdk.chat.completions.create({ model: 'claude', max_completion_tokens: 66, messages: hi }));
    assert.equal(b.got.body['max_tokens'], 66);
  });

  test('none from the client: the model\'s max_output_tokens, streamed and not', async () => {
    const a = await via(upA, () => sdk.chat.completions.create({ model: 'claude', messages: hi }));
    assert.equal(a.got.body['max_tokens'], MAX_OUTPUT);
    const b = await via(upA, async () => drain(await sdk.chat.completions.create({ model: 'claude', messages: hi, stream: true })));
    assert.equal(b.result.error, null);
    assert.equal(b.got.body['max_tokens'], MAX_OUTPUT);
  });

  test('none from the client and a small balance: what the balance affords', async () => {
    // 0.003 USD buys 200 output tokens at 15 USD per 1M; the prompt's share leaves a few less.
    const k = await gw.createKey({ credit: '0.003' });
    const { got } = await via(upA, () => gw.client(k.key).chat.completions.create({ model: 'claude', messages: hi }));
    const sent = got.body['max_tokens'] as number;
    assert.ok(Number.isInteger(sent) && sent >= 190 && sent < 200, `max_tokens ${sent}`);
  });
});
