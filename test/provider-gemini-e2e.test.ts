// The gemini provider end to end: the real `openai` SDK as the client → the gateway on a random
// port → the fake Gemini upstream (a real HTTP server speaking Google's v1beta wire format). What
// the client sees, what Google received, and what the account was charged.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { countTokens } from 'gpt-tokenizer';
import OpenAI from 'openai';
import type { ChatCompletionChunk, ChatCompletionMessageFunctionToolCall } from 'openai/resources/chat/completions';
import { parseUsd } from '../src/billing/money.js';
import { decodeCallId } from '../src/providers/gemini/tool-ids.js';
import { startTestGateway, type HttpResult, type TestGateway, type TestKey } from './helpers/gateway.js';
import { fakeVector, GEMINI_KEY, quotaBody, startGemini, textAnswer, type GeminiUpstream } from './helpers/gemini-upstream.js';

const fixture = (name: string): string => readFileSync(new URL(`./fixtures/gemini/${name}`, import.meta.url), 'utf8');
const units = (usd: string): bigint => parseUsd(usd)!;
const WRONG_KEY = 'AIzaSy-wrong-gemini-key-0123456789';
const SIG = 'CiIBVKhc7oDPpCaXyJKKssjqr2ga0t2vZA6qM3hWfZ+Nc5Ht';
/** USD per 1M tokens, chosen so that every expected cost is a whole number of nano-USD. */
const PRICE = { input: '1.25', output: '10', cached_input: '0.3125' };
const EMBED_PRICE = { input: '0.15', output: '0' };

/** What `tokens` cost at a per-1M-token USD price, in nano-USD, rounded up once as the gateway does. */
function costOf(parts: Array<[tokens: number, perMillionUsd: string]>): bigint {
  const raw = parts.reduce((sum, [n, p]) => sum + BigInt(n) * units(p), 0n);
  return (raw + 999_999n) / 1_000_000n;
}

interface UsageRecord {
  provider: string;
  upstream_model: string;
  prompt_tokens: number;
  completion_tokens: number;
  cached_tokens: number;
  reasoning_tokens: number;
  cost: string;
  status: number;
  error_type: string | null;
  stream: boolean;
}

/** The reasoning the gateway adds to OpenAI's message and delta (SPEC §1). */
type WithReasoning = { reasoning_content?: string };

async function collect(stream: AsyncIterable<ChatCompletionChunk>): Promise<ChatCompletionChunk[]> {
  const out: ChatCompletionChunk[] = [];
  for await (const c of stream) out.push(c);
  return out;
}

const textOf = (chunks: ChatCompletionChunk[]): string => chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
const finishOf = (chunks: ChatCompletionChunk[]): string | null | undefined => chunks.find((c) => c.choices[0]?.finish_reason)?.choices[0]?.finish_reason;

describe('gemini end to end: openai SDK → gateway → fake Gemini', () => {
  let fake: GeminiUpstream;
  let fake2: GeminiUpstream;
  let gw: TestGateway;

  before(async () => {
    fake = await startGemini();
    fake2 = await startGemini();
    gw = await startTestGateway({
      providers: {
        google: { type: 'gemini', base_url: fake.url, api_key: GEMINI_KEY },
        'google-b': { type: 'gemini', base_url: fake2.url, api_key: GEMINI_KEY },
        'google-badkey': { type: 'gemini', base_url: fake.url, api_key: WRONG_KEY },
      },
      models: {
        gem: { pricing: PRICE, deployments: [{ provider: 'google', model: 'gemini-2.5-flash' }] },
        'gem-failover': {
          pricing: PRICE,
          deployments: [
            { provider: 'google', model: 'gemini-2.5-flash', priority: 0 },
            { provider: 'google-b', model: 'gemini-2.5-pro', priority: 1 },
          ],
        },
        'gem-badkey': { pricing: PRICE, deployments: [{ provider: 'google-badkey', model: 'gemini-2.5-flash' }] },
        'gem-embed': { pricing: EMBED_PRICE, deployments: [{ provider: 'google', model: 'gemini-embedding-001' }] },
        'gem-embed-badkey': { pricing: EMBED_PRICE, deployments: [{ provider: 'google-badkey', model: 'gemini-embedding-001' }] },
      },
    });
  });
  after(async () => {
    await gw.close();
    await fake.close();
    await fake2.close();
  });

  async function records(k: TestKey): Promise<UsageRecord[]> {
    const res = await gw.admin('GET', `/usage?key_id=${k.id}&limit=100`);
    assert.equal(res.status, 200, res.text);
    return res.json.data as UsageRecord[];
  }

  /** A failed request is recorded after its answer has gone: poll, with a deadline. */
  async function recordsOnceThere(k: TestKey, n: number): Promise<UsageRecord[]> {
    const deadline = Date.now() + 5000;
    for (;;) {
      const r = await records(k);
      if (r.length >= n || Date.now() > deadline) return r;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  async function balance(k: TestKey): Promise<bigint> {
    const res = await gw.admin('GET', `/accounts/${k.accountId}`);
    assert.equal(res.status, 200, res.text);
    return units(res.json.balance as string);
  }

  /** A fresh key with 100 USD, its SDK client. */
  async function fresh(): Promise<{ k: TestKey; client: OpenAI }> {
    const k = await gw.createKey({ credit: '100' });
    return { k, client: gw.client(k.key) };
  }

  it('text, not streamed: the answer as a chat.completion; generateContent got the key and the translated body', async () => {
    const { k, client } = await fresh();
    const res = await client.chat.completions.create({
      model: 'gem',
      max_tokens: 100,
      temperature: 0.2,
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hello?' },
      ],
    });
    assert.equal(res.object, 'chat.completion');
    assert.equal(res.model, 'gem');
    assert.equal(res.id, 'resp-fake-1');
    assert.deepEqual(res.choices.map((c) => [c.message.role, c.message.content, c.finish_reason]), [['assistant', 'Hello from the fake Gemini.', 'stop']]);
    assert.equal(res.usage?.prompt_tokens, 7);
    assert.equal(res.usage?.completion_tokens, 5);

    const got = fake.last;
    assert.equal(got.path, '/v1beta/models/gemini-2.5-flash:generateContent');
    assert.equal(got.headers['x-goog-api-key'], GEMINI_KEY);
    assert.equal(got.headers['authorization'], undefined, "the client's gateway key does not travel upstream");
    assert.ok(!JSON.stringify(got.headers).includes(k.key));
    assert.deepEqual(got.body, {
      contents: [{ role: 'user', parts: [{ text: 'Hello?' }] }],
      systemInstruction: { parts: [{ text: 'Be brief.' }] },
      generationConfig: { maxOutputTokens: 100, temperature: 0.2 },
    });
    const [r] = await records(k);
    assert.deepEqual([r?.provider, r?.upstream_model, r?.status, r?.stream], ['google', 'gemini-2.5-flash', 200, false]);
  });

  it('text, streamed: chunks with the text, finish_reason stop, the usage chunk last', async () => {
    const { client } = await fresh();
    fake.next({ kind: 'stream', events: [fixture('text.sse')] });
    const chunks = await collect(
      await client.chat.completions.create({ model: 'gem', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'Capital of France?' }] }),
    );
    assert.equal(fake.last.path, '/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse');
    assert.equal(textOf(chunks), 'The capital of France is Paris.');
    assert.equal(chunks[0]?.choices[0]?.delta.role, 'assistant');
    assert.ok(chunks.every((c) => c.id === 'Xk1aaPqPLdGnz7IPqYWm8Ac' && c.model === 'gem'));
    assert.equal(finishOf(chunks), 'stop');
    const usage = chunks.at(-1)?.usage;
    assert.deepEqual([usage?.prompt_tokens, usage?.completion_tokens, usage?.prompt_tokens_details?.cached_tokens], [9, 8, 4]);
  });

  it('two parallel tool calls in one stream (indices 0 and 1, ids carrying the signature), then the tool results go back', async () => {
    const { client } = await fresh();
    fake.next({
      kind: 'stream',
      events: [
        { candidates: [{ content: { role: 'model', parts: [{ functionCall: { name: 'get_weather', args: { city: 'Paris' } }, thoughtSignature: SIG }] }, index: 0 }], responseId: 'tc-1' },
        {
          candidates: [{ content: { role: 'model', parts: [{ functionCall: { id: 'fc-2', name: 'get_time', args: { tz: 'Europe/London' } } }] }, finishReason: 'STOP', index: 0 }],
          usageMetadata: { promptTokenCount: 52, candidatesTokenCount: 30, thoughtsTokenCount: 71, totalTokenCount: 153 },
          responseId: 'tc-1',
        },
      ],
    });
    const tools: OpenAI.Chat.Completions.ChatCompletionTool[] = [
      { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false } } },
      { type: 'function', function: { name: 'get_time', description: 'Local time', parameters: { type: 'object', properties: { tz: { type: 'string' } }, required: ['tz'] } } },
    ];
    const question: OpenAI.Chat.Completions.ChatCompletionMessageParam = { role: 'user', content: 'Weather in Paris and the time in London?' };
    const chunks = await collect(await client.chat.completions.create({ model: 'gem', stream: true, tools, tool_choice: 'required', messages: [question] }));
    assert.deepEqual(fake.last.body['toolConfig'], { functionCallingConfig: { mode: 'ANY' } });
    assert.deepEqual(fake.last.body['tools'], [
      {
        functionDeclarations: [
          { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } },
          { name: 'get_time', description: 'Local time', parameters: { type: 'object', properties: { tz: { type: 'string' } }, required: ['tz'] } },
        ],
      },
    ]);

    // Put the calls together as an OpenAI client does: by index.
    const calls: ChatCompletionMessageFunctionToolCall[] = [];
    for (const c of chunks) {
      for (const d of c.choices[0]?.delta.tool_calls ?? []) {
        const call = (calls[d.index] ??= { id: '', type: 'function', function: { name: '', arguments: '' } });
        if (d.id !== undefined) call.id = d.id;
        call.function.name += d.function?.name ?? '';
        call.function.arguments += d.function?.arguments ?? '';
      }
    }
    const indices = chunks.flatMap((c) => (c.choices[0]?.delta.tool_calls ?? []).map((d) => d.index));
    assert.deepEqual([...new Set(indices)], [0, 1]);
    assert.deepEqual(calls.map((c) => [c.function.name, JSON.parse(c.function.arguments)]), [['get_weather', { city: 'Paris' }], ['get_time', { tz: 'Europe/London' }]]);
    assert.equal(finishOf(chunks), 'tool_calls');
    const [weather, time] = calls.map((c) => c.id);
    for (const id of [weather!, time!]) assert.match(id, /^[A-Za-z0-9_-]{1,200}$/, 'an id any OpenAI client keeps as it is');
    assert.deepEqual(decodeCallId(weather!), { thoughtSignature: SIG }, 'the first call carries its thought signature');
    assert.deepEqual(decodeCallId(time!), { geminiId: 'fc-2' });

    // The client sends the calls back as the SDK returned them, with the results (in another order).
    fake.next({ kind: 'answer', body: textAnswer('Paris: 21°C. London: 14:05.') });
    const res = await client.chat.completions.create({
      model: 'gem',
      tools,
      messages: [
        question,
        { role: 'assistant', content: null, tool_calls: calls },
        { role: 'tool', tool_call_id: time!, content: '{"time":"14:05"}' },
        { role: 'tool', tool_call_id: weather!, content: 'sunny, 21C' },
      ],
    });
    assert.equal(res.choices[0]?.message.content, 'Paris: 21°C. London: 14:05.');
    assert.deepEqual(fake.last.body['contents'], [
      { role: 'user', parts: [{ text: 'Weather in Paris and the time in London?' }] },
      {
        role: 'model',
        parts: [
          { functionCall: { name: 'get_weather', args: { city: 'Paris' } }, thoughtSignature: SIG },
          { functionCall: { id: 'fc-2', name: 'get_time', args: { tz: 'Europe/London' } } },
        ],
      },
      {
        role: 'user',
        parts: [
          { functionResponse: { id: 'fc-2', name: 'get_time', response: { time: '14:05' } } },
          { functionResponse: { name: 'get_weather', response: { result: 'sunny, 21C' } } },
        ],
      },
    ]);
  });

  it('tool calls, not streamed, with a signature of realistic size: the ids carry it whole and it comes back byte for byte', async () => {
    const { client } = await fresh();
    // Gemini's signatures run to kilobytes: the id the client holds grows with them.
    const longSig = randomBytes(3000).toString('base64');
    fake.next({ kind: 'answer', body: { candidates: [{ content: { role: 'model', parts: [{ functionCall: { name: 'get_weather', args: { city: 'Oslo' } }, thoughtSignature: longSig }, { functionCall: { name: 'get_weather', args: { city: 'Rome' } } }] }, finishReason: 'STOP' }] } });
    const tools: OpenAI.Chat.Completions.ChatCompletionTool[] = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
    const question: OpenAI.Chat.Completions.ChatCompletionMessageParam = { role: 'user', content: 'Oslo and Rome?' };
    const res = await client.chat.completions.create({ model: 'gem', tools, messages: [question] });
    const message = res.choices[0]!.message;
    const calls = (message.tool_calls ?? []) as ChatCompletionMessageFunctionToolCall[];
    assert.equal(res.choices[0]?.finish_reason, 'tool_calls');
    assert.equal(message.content, null);
    assert.deepEqual(calls.map((c) => [c.type, c.function.name, c.function.arguments]), [['function', 'get_weather', '{"city":"Oslo"}'], ['function', 'get_weather', '{"city":"Rome"}']]);
    assert.equal(decodeCallId(calls[0]!.id).thoughtSignature, longSig);
    assert.notEqual(calls[0]!.id, calls[1]!.id);

    // The assistant message goes back exactly as the SDK returned it.
    await client.chat.completions.create({
      model: 'gem',
      tools,
      messages: [question, message, { role: 'tool', tool_call_id: calls[0]!.id, content: '-3C' }, { role: 'tool', tool_call_id: calls[1]!.id, content: '18C' }],
    });
    const contents = fake.last.body['contents'] as Array<{ role: string; parts: Array<Record<string, unknown>> }>;
    assert.deepEqual(contents[1], { role: 'model', parts: [{ functionCall: { name: 'get_weather', args: { city: 'Oslo' } }, thoughtSignature: longSig }, { functionCall: { name: 'get_weather', args: { city: 'Rome' } } }] });
    assert.deepEqual(contents[2], { role: 'user', parts: [{ functionResponse: { name: 'get_weather', response: { result: '-3C' } } }, { functionResponse: { name: 'get_weather', response: { result: '18C' } } }] });
  });

  it("a transcript with OpenAI's tool-call ids (call_ + 24 characters): the first call of the step gets Google's stand-in signature", async () => {
    const { client } = await fresh();
    const id = 'call_Zq4n1yqvG8Ck0KuPJ8z3nYfS';
    await client.chat.completions.create({
      model: 'gem',
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }],
      messages: [
        { role: 'user', content: 'Weather in Oslo?' },
        { role: 'assistant', content: null, tool_calls: [{ id, type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } }] },
        { role: 'tool', tool_call_id: id, content: '-3C' },
      ],
    });
    const contents = fake.last.body['contents'] as unknown[];
    assert.deepEqual(contents[1], { role: 'model', parts: [{ functionCall: { name: 'get_weather', args: { city: 'Oslo' } }, thoughtSignature: 'skip_thought_signature_validator' }] });
  });

  it('images: a data URL arrives as inlineData, an http URL as fileData', async () => {
    const { client } = await fresh();
    await client.chat.completions.create({
      model: 'gem',
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'What is in these?' },
            { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgoAAAANSUhEUg==' } },
            { type: 'image_url', image_url: { url: 'https://img.example.com/photos/cat.jpg?size=large', detail: 'high' } },
          ],
        },
      ],
    });
    assert.deepEqual(fake.last.body['contents'], [
      {
        role: 'user',
        parts: [
          { text: 'What is in these?' },
          { inlineData: { mimeType: 'image/png', data: 'iVBORw0KGgoAAAANSUhEUg==' } },
          { fileData: { fileUri: 'https://img.example.com/photos/cat.jpg?size=large', mimeType: 'image/jpeg' } },
        ],
      },
    ]);
  });

  it('JSON mode: json_object → responseMimeType; json_schema → the schema translated, without additionalProperties or $schema', async () => {
    const { client } = await fresh();
    fake.next({ kind: 'answer', body: textAnswer('{"ok":true}') });
    const plain = await client.chat.completions.create({ model: 'gem', response_format: { type: 'json_object' }, messages: [{ role: 'user', content: 'JSON please' }] });
    assert.equal(plain.choices[0]?.message.content, '{"ok":true}');
    const gen = (): Record<string, unknown> => fake.last.body['generationConfig'] as Record<string, unknown>;
    assert.equal(gen()['responseMimeType'], 'application/json');
    assert.equal(gen()['responseSchema'], undefined);

    fake.next({ kind: 'answer', body: textAnswer('{"name":"Ada","tags":["x"],"age":36}') });
    const typed = await client.chat.completions.create({
      model: 'gem',
      response_format: {
        type: 'json_schema',
        json_schema: {
          name: 'person',
          strict: true,
          schema: {
            $schema: 'https://json-schema.org/draft/2020-12/schema',
            type: 'object',
            additionalProperties: false,
            properties: {
              name: { type: 'string', description: 'Full name' },
              age: { type: ['integer', 'null'] },
              tags: { type: 'array', items: { type: 'string' } },
              address: { type: 'object', additionalProperties: false, properties: { city: { type: 'string' } }, required: ['city'] },
            },
            required: ['name', 'age', 'tags'],
          },
        },
      },
      messages: [{ role: 'user', content: 'Who?' }],
    });
    assert.deepEqual(JSON.parse(typed.choices[0]!.message.content!), { name: 'Ada', tags: ['x'], age: 36 });
    assert.equal(gen()['responseMimeType'], 'application/json');
    assert.deepEqual(gen()['responseSchema'], {
      type: 'object',
      properties: {
        name: { type: 'string', description: 'Full name' },
        age: { type: 'integer', nullable: true },
        tags: { type: 'array', items: { type: 'string' } },
        address: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
      },
      required: ['name', 'age', 'tags'],
    });
    assert.doesNotMatch(JSON.stringify(gen()), /additionalProperties|\$schema/);
  });

  it('reasoning, streamed: reasoning_effort → thinkingConfig; thoughts as reasoning_content; reasoning_tokens = thoughtsTokenCount', async () => {
    const { k, client } = await fresh();
    fake.next({ kind: 'stream', events: [fixture('thinking.sse')] });
    const chunks = await collect(
      await client.chat.completions.create({ model: 'gem', stream: true, stream_options: { include_usage: true }, reasoning_effort: 'high', messages: [{ role: 'user', content: '17 + 25?' }] }),
    );
    // `high` is 24576 tokens, more than the model's default max_output_tokens (4096): Gemini counts
    // thinking in maxOutputTokens, so the budget is kept below it, leaving room for the answer.
    const sent = fake.last.body['generationConfig'] as { maxOutputTokens: number; thinkingConfig: { thinkingBudget: number } };
    assert.equal(sent.maxOutputTokens, 4096);
    assert.deepEqual(sent.thinkingConfig, { thinkingBudget: 4095, includeThoughts: true });
    assert.ok(sent.thinkingConfig.thinkingBudget < sent.maxOutputTokens);
    const reasoning = chunks.map((c) => (c.choices[0]?.delta as WithReasoning | undefined)?.reasoning_content ?? '').join('');
    assert.equal(reasoning, '**Adding the numbers**\n\nI need 17 + 25. That is 42.');
    assert.equal(textOf(chunks), '17 + 25 = 42.', 'thoughts do not leak into the content');
    const usage = chunks.at(-1)?.usage;
    // The last chunk's usageMetadata: candidates 7, thoughts 120.
    assert.deepEqual([usage?.prompt_tokens, usage?.completion_tokens, usage?.completion_tokens_details?.reasoning_tokens], [14, 127, 120]);
    const [r] = await records(k);
    assert.deepEqual([r?.completion_tokens, r?.reasoning_tokens], [127, 120]);
  });

  it('reasoning, not streamed: reasoning_content on the message, usage from thoughtsTokenCount', async () => {
    const { client } = await fresh();
    fake.next({
      kind: 'answer',
      body: {
        candidates: [{ content: { role: 'model', parts: [{ text: 'Counting the letters.', thought: true }, { text: 'Three.', thoughtSignature: 'c2lnbmF0dXJl' }] }, finishReason: 'STOP' }],
        usageMetadata: { promptTokenCount: 11, candidatesTokenCount: 2, thoughtsTokenCount: 45, totalTokenCount: 58 },
      },
    });
    const res = await client.chat.completions.create({ model: 'gem', reasoning_effort: 'low', messages: [{ role: 'user', content: "How many r's in strawberry?" }] });
    assert.deepEqual((fake.last.body['generationConfig'] as Record<string, unknown>)['thinkingConfig'], { thinkingBudget: 1024, includeThoughts: true });
    const message = res.choices[0]!.message as typeof res.choices[0]['message'] & WithReasoning;
    assert.equal(message.content, 'Three.');
    assert.equal(message.reasoning_content, 'Counting the letters.');
    assert.deepEqual([res.usage?.prompt_tokens, res.usage?.completion_tokens, res.usage?.completion_tokens_details?.reasoning_tokens], [11, 47, 45]);
  });

  describe('every stop reason, streamed and not', () => {
    const cases: Array<[gemini: string, withCalls: boolean, openai: string]> = [
      ['STOP', false, 'stop'],
      ['STOP', true, 'tool_calls'],
      ['MAX_TOKENS', false, 'length'],
      ['SAFETY', false, 'content_filter'],
      ['RECITATION', false, 'content_filter'],
      ['BLOCKLIST', false, 'content_filter'],
      ['PROHIBITED_CONTENT', false, 'content_filter'],
      ['SPII', false, 'content_filter'],
      ['IMAGE_SAFETY', false, 'content_filter'],
      ['OTHER', false, 'stop'],
      ['MALFORMED_FUNCTION_CALL', false, 'stop'],
    ];
    const parts = (withCalls: boolean): Record<string, unknown>[] => (withCalls ? [{ functionCall: { name: 'f', args: { a: 1 } } }] : [{ text: ' end' }]);
    const tools: OpenAI.Chat.Completions.ChatCompletionTool[] = [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { a: { type: 'integer' } } } } }];

    for (const [reason, withCalls, expected] of cases) {
      const label = `${reason}${withCalls ? ' after function calls' : ''} → ${expected}`;
      it(`${label}, not streamed`, async () => {
        const { client } = await fresh();
        fake.next({ kind: 'answer', body: { candidates: [{ content: { role: 'model', parts: parts(withCalls) }, finishReason: reason }], usageMetadata: { promptTokenCount: 3, candidatesTokenCount: 2, totalTokenCount: 5 } } });
        const res = await client.chat.completions.create({ model: 'gem', tools, messages: [{ role: 'user', content: 'go' }] });
        assert.equal(res.choices[0]?.finish_reason, expected);
      });

      it(`${label}, streamed`, async () => {
        const { client } = await fresh();
        fake.next({
          kind: 'stream',
          events: [
            { candidates: [{ content: { role: 'model', parts: [{ text: 'Start' }] }, index: 0 }] },
            { candidates: [{ content: { role: 'model', parts: parts(withCalls) }, finishReason: reason, index: 0 }], usageMetadata: { promptTokenCount: 3, candidatesTokenCount: 2, totalTokenCount: 5 } },
          ],
        });
        const chunks = await collect(await client.chat.completions.create({ model: 'gem', stream: true, tools, messages: [{ role: 'user', content: 'go' }] }));
        assert.equal(finishOf(chunks), expected);
        assert.equal(chunks.filter((c) => c.choices[0]?.finish_reason).length, 1, 'one finish_reason per choice');
      });
    }
  });

  it('a blocked prompt: 400 naming the reason, not streamed and streamed; nothing charged', async () => {
    const { k, client } = await fresh();
    const before = await balance(k);
    fake.next({ kind: 'answer', body: { promptFeedback: { blockReason: 'PROHIBITED_CONTENT' }, usageMetadata: { promptTokenCount: 8, totalTokenCount: 8 } } });
    await assert.rejects(client.chat.completions.create({ model: 'gem', messages: [{ role: 'user', content: 'something bad' }] }), (e: unknown) => {
      assert.ok(e instanceof OpenAI.BadRequestError, String(e));
      assert.equal(e.status, 400);
      assert.match(e.message, /The prompt was blocked by the provider: PROHIBITED_CONTENT/);
      return true;
    });
    fake.next({ kind: 'stream', events: [fixture('safety-block.sse')] });
    await assert.rejects(
      (async () => collect(await client.chat.completions.create({ model: 'gem', stream: true, messages: [{ role: 'user', content: 'something bad' }] })))(),
      (e: unknown) => {
        assert.ok(e instanceof OpenAI.BadRequestError, String(e));
        assert.match(e.message, /The prompt was blocked by the provider: SAFETY/);
        return true;
      },
    );
    const rs = await recordsOnceThere(k, 2);
    assert.deepEqual(rs.map((r) => [r.status, units(r.cost)]), [[400, 0n], [400, 0n]]);
    assert.equal(await balance(k), before);
  });

  it('usage and cached tokens, not streamed: billed exactly at the input, cached-input and output prices', async () => {
    const { k, client } = await fresh();
    const before = await balance(k);
    fake.next({
      kind: 'answer',
      body: textAnswer('Cached answer.', { usageMetadata: { promptTokenCount: 1000, cachedContentTokenCount: 400, candidatesTokenCount: 200, thoughtsTokenCount: 100, totalTokenCount: 1300 } }),
    });
    const res = await client.chat.completions.create({ model: 'gem', max_tokens: 1000, messages: [{ role: 'user', content: 'Use the cache.' }] });
    // 600 uncached × 1.25 + 400 cached × 0.3125 + (200 + 100) output × 10, per 1M tokens.
    const expected = costOf([[600, PRICE.input], [400, PRICE.cached_input], [300, PRICE.output]]);
    assert.equal(expected, 3_875_000n);
    const [r] = await records(k);
    assert.deepEqual([r?.prompt_tokens, r?.cached_tokens, r?.completion_tokens, r?.reasoning_tokens], [1000, 400, 300, 100]);
    assert.equal(units(r!.cost), expected);
    assert.equal(before - (await balance(k)), expected);
    assert.equal(res.usage?.prompt_tokens_details?.cached_tokens, 400);
    assert.equal(res.usage?.completion_tokens_details?.reasoning_tokens, 100);
    assert.equal((res.usage as unknown as { cost: number }).cost, 0.003875);
  });

  it('usage and cached tokens, streamed: the last cumulative usageMetadata billed exactly, tool-use prompt tokens as input', async () => {
    const { k, client } = await fresh();
    const before = await balance(k);
    fake.next({
      kind: 'stream',
      events: [
        { candidates: [{ content: { role: 'model', parts: [{ text: 'Part one' }] }, index: 0 }], usageMetadata: { promptTokenCount: 2000, cachedContentTokenCount: 1500, totalTokenCount: 2000 } },
        {
          candidates: [{ content: { role: 'model', parts: [{ text: ', part two.' }] }, finishReason: 'STOP', index: 0 }],
          usageMetadata: { promptTokenCount: 2000, cachedContentTokenCount: 1500, toolUsePromptTokenCount: 100, candidatesTokenCount: 50, totalTokenCount: 2150 },
        },
      ],
    });
    const chunks = await collect(
      await client.chat.completions.create({ model: 'gem', stream: true, stream_options: { include_usage: true }, max_tokens: 1000, messages: [{ role: 'user', content: 'Use the cache.' }] }),
    );
    assert.equal(textOf(chunks), 'Part one, part two.');
    // (2000 + 100 − 1500) uncached × 1.25 + 1500 cached × 0.3125 + 50 output × 10, per 1M tokens.
    const expected = costOf([[600, PRICE.input], [1500, PRICE.cached_input], [50, PRICE.output]]);
    assert.equal(expected, 1_718_750n);
    const [r] = await records(k);
    assert.deepEqual([r?.prompt_tokens, r?.cached_tokens, r?.completion_tokens, r?.stream], [2100, 1500, 50, true]);
    assert.equal(units(r!.cost), expected);
    assert.equal(before - (await balance(k)), expected);
    const usage = chunks.at(-1)?.usage as (OpenAI.CompletionUsage & { cost: number }) | undefined;
    assert.deepEqual([usage?.prompt_tokens, usage?.prompt_tokens_details?.cached_tokens, usage?.completion_tokens, usage?.cost], [2100, 1500, 50, 0.00171875]);
  });

  describe('a failure mid-stream: the SDK raises it while iterating; the delivered output is billed', () => {
    const first = { candidates: [{ content: { role: 'model', parts: [{ text: 'Partial answer' }] }, index: 0 }], usageMetadata: { promptTokenCount: 5, totalTokenCount: 5 }, responseId: 'mid-1' };
    const cases: Array<[string, Parameters<GeminiUpstream['next']>[0], RegExp]> = [
      ['the connection cut after the first event', { kind: 'stream', events: [first, { candidates: [{ content: { role: 'model', parts: [{ text: ' never' }] }, finishReason: 'STOP', index: 0 }] }], cutAfter: 1 }, /closed the connection|broke off/],
      ['the stream ended without a finish reason', { kind: 'stream', events: [fixture('cut-off.sse')] }, /closed the connection|broke off/],
      ['an error event after the first event', { kind: 'stream', events: [first, { error: { code: 500, message: 'An internal error has occurred.', status: 'INTERNAL' } }] }, /returned an error/],
    ];
    for (const [name, behavior, message] of cases) {
      it(name, async () => {
        const { k, client } = await fresh();
        const before = await balance(k);
        // A cut comes once the client has the first text, so that the cut cannot take it along unread.
        let firstSeen!: () => void;
        const cutWhen = new Promise<void>((resolve) => (firstSeen = resolve));
        fake.next(behavior.kind === 'stream' && behavior.cutAfter !== undefined ? { ...behavior, cutWhen } : behavior);
        const stream = await client.chat.completions.create({ model: 'gem', stream: true, messages: [{ role: 'user', content: 'Tell me.' }] });
        const seen: ChatCompletionChunk[] = [];
        await assert.rejects(
          (async () => {
            for await (const c of stream) {
              seen.push(c);
              if (textOf(seen) !== '') firstSeen();
            }
          })(),
          (e: unknown) => {
            assert.ok(e instanceof OpenAI.APIError, String(e));
            assert.match(e.message, message);
            assert.deepEqual([(e.error as { type?: string }).type, (e.error as { code?: string }).code], ['api_error', '502']);
            return true;
          },
        );
        const delivered = textOf(seen);
        assert.ok(delivered === 'Partial answer' || delivered === 'Partial', `the text before the failure reached the client: ${delivered}`);
        assert.equal(finishOf(seen), undefined);
        const [r] = await records(k);
        assert.equal(r?.status, 502);
        assert.equal(r?.error_type, 'api_error');
        assert.equal(r?.completion_tokens, countTokens(delivered), 'no usage came whole: the delivered text is counted');
        const expected = costOf([[r!.prompt_tokens, PRICE.input], [r!.completion_tokens, PRICE.output]]);
        assert.ok(expected > 0n);
        assert.equal(units(r!.cost), expected);
        assert.equal(before - (await balance(k)), expected);
      });
    }
  });

  it('RESOURCE_EXHAUSTED on the only deployment: 503 with retry-after from RetryInfo, not streamed, streamed, and as a stream\'s first event', async () => {
    const { k, client } = await fresh();
    fake.next({ kind: 'error', status: 429, body: quotaBody('30s') });
    const plain = await gw.http('POST', '/v1/chat/completions', { key: k.key, body: { model: 'gem', messages: [{ role: 'user', content: 'hi' }] } });
    assert.equal(plain.status, 503, plain.text);
    assert.equal(plain.headers['retry-after'], '30');
    assert.equal(plain.headers['retry-after-ms'], '30000');
    assert.equal(plain.json.error.type, 'api_error');
    assert.equal(plain.json.error.message, 'The model service is busy. Please retry shortly');

    fake.next({ kind: 'error', status: 429, body: quotaBody('7s') });
    await assert.rejects(
      (async () => collect(await client.chat.completions.create({ model: 'gem', stream: true, messages: [{ role: 'user', content: 'hi' }] })))(),
      (e: unknown) => {
        assert.ok(e instanceof OpenAI.APIError && e.status === 503, String(e));
        assert.equal(e.headers?.get('retry-after'), '7');
        return true;
      },
    );
    // A stream that opened (200) with the quota error as its first event: still a 503 before any byte of the answer.
    fake.next({ kind: 'stream', events: [quotaBody('5s')] });
    const opened = await gw.http('POST', '/v1/chat/completions', { key: k.key, body: { model: 'gem', stream: true, messages: [{ role: 'user', content: 'hi' }] } });
    assert.equal(opened.status, 503, opened.text);
    assert.equal(opened.headers['retry-after'], '5');
    const rs = await recordsOnceThere(k, 3);
    assert.deepEqual(rs.map((r) => [r.status, r.error_type, units(r.cost)]), [[503, 'api_error', 0n], [503, 'api_error', 0n], [503, 'api_error', 0n]]);
  });

  it('RESOURCE_EXHAUSTED with a second deployment: it fails over, not streamed and streamed', async () => {
    const { k, client } = await fresh();
    const [seen1, seen2] = [fake.received.length, fake2.received.length];
    fake.next(
      { kind: 'error', status: 429, body: quotaBody('30s') },
      { kind: 'error', status: 429, body: quotaBody('30s') },
      // The stream opened (200) but its first event is the quota error: still before anything reached the client.
      { kind: 'stream', events: [quotaBody('5s')] },
    );
    fake2.next({ kind: 'answer', body: textAnswer('From the second deployment.') }, { kind: 'stream', events: [fixture('text.sse')] }, { kind: 'stream', events: [fixture('text.sse')] });
    const res = await client.chat.completions.create({ model: 'gem-failover', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(res.choices[0]?.message.content, 'From the second deployment.');
    for (let i = 0; i < 2; i++) {
      const chunks = await collect(await client.chat.completions.create({ model: 'gem-failover', stream: true, messages: [{ role: 'user', content: 'hi' }] }));
      assert.equal(textOf(chunks), 'The capital of France is Paris.');
    }
    assert.equal(fake.received.length - seen1, 3, 'the first deployment was tried each time');
    assert.deepEqual(fake2.received.slice(seen2).map((r) => r.path), [
      '/v1beta/models/gemini-2.5-pro:generateContent',
      '/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse',
      '/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse',
    ]);
    const rs = await records(k);
    assert.equal(rs.length, 3);
    assert.ok(rs.every((r) => r.status === 200 && r.provider === 'google-b' && r.upstream_model === 'gemini-2.5-pro'), JSON.stringify(rs));
  });

  it('a bad provider key (API_KEY_INVALID): 502, and nothing of the key nor the upstream address in the body or the headers', async () => {
    const { k } = await fresh();
    const hostPort = new URL(fake.url).host;
    const port = new URL(fake.url).port;
    const check = (res: HttpResult, what: string): void => {
      assert.equal(res.status, 502, `${what}: ${res.text}`);
      assert.deepEqual([res.json.error.type, res.json.error.code], ['api_error', '502']);
      // The whole HTTP answer, headers included, as a client without the SDK gets it.
      const whole = res.text + JSON.stringify(res.headers);
      for (const secret of [WRONG_KEY, 'wrong-gemini-key', GEMINI_KEY, hostPort, '127.0.0.1', `:${port}`, 'x-goog-api-key', 'API key not valid', 'googleapis']) {
        assert.ok(!whole.includes(secret), `${what}: the answer shows ${secret}: ${whole}`);
      }
    };
    const before = fake.received.length;
    check(await gw.http('POST', '/v1/chat/completions', { key: k.key, body: { model: 'gem-badkey', messages: [{ role: 'user', content: 'hi' }] } }), 'chat');
    check(await gw.http('POST', '/v1/chat/completions', { key: k.key, body: { model: 'gem-badkey', stream: true, messages: [{ role: 'user', content: 'hi' }] } }), 'stream');
    check(await gw.http('POST', '/v1/embeddings', { key: k.key, body: { model: 'gem-embed-badkey', input: 'hi' } }), 'embeddings');
    assert.equal(fake.received.length - before, 3);
    assert.ok(fake.received.slice(before).every((r) => r.headers['x-goog-api-key'] === WRONG_KEY), 'the fake really saw the wrong key');
    // And the SDK sees a 502 it may retry.
    await assert.rejects(gw.client(k.key).chat.completions.create({ model: 'gem-badkey', messages: [{ role: 'user', content: 'hi' }] }), (e: unknown) => e instanceof OpenAI.InternalServerError && e.status === 502);
  });

  it('embeddings with encoding_format float: embedContent, billed on the counted input', async () => {
    const { k, client } = await fresh();
    const before = await balance(k);
    const input = 'The quick brown fox jumps over the lazy dog.';
    const res = await client.embeddings.create({ model: 'gem-embed', input, encoding_format: 'float', dimensions: 4 });
    assert.equal(fake.last.path, '/v1beta/models/gemini-embedding-001:embedContent');
    assert.deepEqual(fake.last.body, { content: { parts: [{ text: input }] }, outputDimensionality: 4 });
    assert.equal(res.model, 'gem-embed');
    assert.deepEqual(res.data, [{ object: 'embedding', index: 0, embedding: fakeVector(input, 4) }]);
    const tokens = countTokens(input);
    const expected = costOf([[tokens, EMBED_PRICE.input]]);
    assert.ok(expected > 0n);
    assert.equal(res.usage.prompt_tokens, tokens);
    const [r] = await records(k);
    assert.deepEqual([r?.prompt_tokens, r?.completion_tokens, r?.upstream_model], [tokens, 0, 'gemini-embedding-001']);
    assert.equal(units(r!.cost), expected);
    assert.equal(before - (await balance(k)), expected);
  });

  it("embeddings with the SDK's default (base64): batchEmbedContents, decoded to the same vectors, billed on the counted input", async () => {
    const { k, client } = await fresh();
    const before = await balance(k);
    const inputs = ['first text', 'the second, longer text to embed'];
    const res = await client.embeddings.create({ model: 'gem-embed', input: inputs });
    const got = fake.last;
    assert.equal(got.action, 'batchEmbedContents');
    assert.deepEqual(got.body, { requests: inputs.map((text) => ({ model: 'models/gemini-embedding-001', content: { parts: [{ text }] } })) });
    assert.deepEqual(res.data.map((d) => d.index), [0, 1]);
    // base64 carries float32: the SDK decodes exactly the float32 values of the vectors.
    assert.deepEqual(res.data.map((d) => d.embedding), inputs.map((t) => fakeVector(t).map((x) => Math.fround(x))));
    const tokens = inputs.reduce((n, t) => n + countTokens(t), 0);
    const expected = costOf([[tokens, EMBED_PRICE.input]]);
    const [r] = await records(k);
    assert.equal(r?.prompt_tokens, tokens);
    assert.equal(units(r!.cost), expected);
    assert.equal(before - (await balance(k)), expected);
  });

  it('embeddings of token arrays: 400 (Gemini embeds text only), nothing sent upstream, nothing charged', async () => {
    const { k, client } = await fresh();
    const before = await balance(k);
    const sent = fake.received.length;
    await assert.rejects(client.embeddings.create({ model: 'gem-embed', input: [[1, 2, 3]] }), (e: unknown) => {
      assert.ok(e instanceof OpenAI.BadRequestError, String(e));
      assert.match(e.message, /Token-array input is not supported/);
      return true;
    });
    assert.equal(fake.received.length, sent);
    assert.deepEqual((await recordsOnceThere(k, 1)).map((r) => [r.status, units(r.cost)]), [[400, 0n]]);
    assert.equal(await balance(k), before);
  });
});
