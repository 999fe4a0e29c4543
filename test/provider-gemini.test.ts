// The gemini provider, built through its descriptor from a parsed config, against the fake Gemini
// upstream (a real HTTP server): what it sends and what it makes of the answers.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { ChatCall, ChatStream, Provider } from '../src/providers/contract.js';
import { geminiProvider } from '../src/providers/gemini/index.js';
import { decodeCallId } from '../src/providers/gemini/tool-ids.js';
import { toGatewayError, UpstreamError } from '../src/providers/upstream-error.js';
import { ByteBudget } from '../src/providers/whole-body.js';
import type { ChatRequest, StreamEvent } from '../src/types/chat.js';
import { fakeVector, GEMINI_KEY, invalidArgumentBody, quotaBody, startGemini, textAnswer, type GeminiUpstream } from './helpers/gemini-upstream.js';

const limits = { maxResponseBytes: 1 << 24, maxEventBytes: 1 << 20, budget: new ByteBudget(1 << 26) };
const fixture = (name: string): string => readFileSync(new URL(`./fixtures/gemini/${name}`, import.meta.url), 'utf8');
const SIG = 'CiIBVKhc7oDPpCaXyJKKssjqr2ga0t2vZA6qM3hWfZ+Nc5Ht';

function make(fake: GeminiUpstream, extra: Record<string, unknown> = {}): Provider {
  const cfg = geminiProvider.schema.parse({ type: 'gemini', base_url: fake.url, api_key: GEMINI_KEY, ...extra });
  return geminiProvider.create('google', cfg, { limits });
}

function chatCall(req: Partial<ChatRequest>, opts: { model?: string; maxTokens?: number | null } = {}): ChatCall {
  return {
    request: { model: 'gem', messages: [{ role: 'user', content: 'Hello?' }], n: 1, stream: false, includeUsage: false, extra: {}, ...req },
    upstreamModel: opts.model ?? 'gemini-2.5-flash',
    maxTokens: opts.maxTokens === undefined ? 100 : opts.maxTokens,
    signal: new AbortController().signal, trace: {},
  };
}

async function collect(stream: ChatStream): Promise<StreamEvent[]> {
  const out: StreamEvent[] = [];
  for await (const e of stream) out.push(e);
  return out;
}

describe('gemini provider against the fake upstream', () => {
  let fake: GeminiUpstream;
  let p: Provider;
  before(async () => {
    fake = await startGemini();
    p = make(fake);
  });
  after(async () => {
    await p.close();
    await fake.close();
  });

  it('config: strict, api_version defaults to v1beta, the key is a secret', () => {
    assert.throws(() => geminiProvider.schema.parse({ type: 'gemini', base_url: fake.url, region: 'x' }));
    assert.equal(geminiProvider.schema.parse({ type: 'gemini', base_url: fake.url }).api_version, 'v1beta');
    assert.ok(p.secrets.includes(GEMINI_KEY));
    assert.equal(p.type, 'gemini');
  });

  it('a text answer: generateContent with the key in x-goog-api-key, the body translated', async () => {
    const res = await p.chat(chatCall({ messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello?' }], temperature: 0.3 }));
    assert.equal(res.id, 'resp-fake-1');
    assert.deepEqual(res.choices, [{ index: 0, content: 'Hello from the fake Gemini.', finishReason: 'stop' }]);
    assert.deepEqual({ ...res.usage, raw: undefined }, { promptTokens: 7, completionTokens: 5, cachedTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0, raw: undefined });
    const got = fake.last;
    assert.equal(got.path, '/v1beta/models/gemini-2.5-flash:generateContent');
    assert.equal(got.headers['x-goog-api-key'], GEMINI_KEY);
    assert.equal(got.headers['authorization'], undefined);
    assert.deepEqual(got.body, {
      contents: [{ role: 'user', parts: [{ text: 'Hello?' }] }],
      systemInstruction: { parts: [{ text: 'Be brief.' }] },
      generationConfig: { maxOutputTokens: 100, temperature: 0.3 },
    });
  });

  it('model names are encoded in the path; a models/ prefix is allowed', async () => {
    await p.chat(chatCall({}, { model: 'models/tuned model#1', maxTokens: null }));
    assert.equal(fake.last.path, '/v1beta/models/tuned%20model%231:generateContent');
    assert.equal(fake.last.model, 'tuned model#1');
    assert.equal(fake.last.body['generationConfig'], undefined);
  });

  it('the base URL query string and another key header go on every request', async () => {
    const other = make(fake, { base_url: `${fake.url}?tenant=t1`, api_key_header: 'x-other-key' });
    try {
      await assert.rejects(other.chatStream(chatCall({ stream: true })), UpstreamError);
      assert.equal(fake.last.path, '/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&tenant=t1');
      assert.equal(fake.last.headers['x-other-key'], GEMINI_KEY);
      assert.equal(fake.last.headers['x-goog-api-key'], undefined);
    } finally {
      await other.close();
    }
  });

  it('a text stream: start, text, finish, usage', async () => {
    fake.next({ kind: 'stream', events: [fixture('text.sse')] });
    const events = await collect(await p.chatStream(chatCall({ stream: true })));
    assert.equal(fake.last.path, '/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse');
    assert.deepEqual(
      events.map((e) => (e.type === 'text' ? e.text : e.type)),
      ['start', 'The capital', ' of France is Paris.', 'finish', 'usage'],
    );
    const u = events.at(-1);
    assert.ok(u?.type === 'usage');
    assert.equal(u.usage.cachedTokens, 4);
    assert.equal(u.usage.promptTokens, 9);
  });

  it('parallel tool calls in a stream, then the tool results go back with names and the signature', async () => {
    fake.next({ kind: 'stream', events: [fixture('parallel-function-calls.sse')] });
    const tools = [{ name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { type: ['string', 'null'], enum: ['celsius', 'fahrenheit', null] } }, required: ['city'], additionalProperties: false } }];
    const events = await collect(await p.chatStream(chatCall({ stream: true, tools, toolChoice: 'required' })));
    assert.deepEqual(fake.last.body['tools'], [
      { functionDeclarations: [{ name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string', nullable: true, enum: ['celsius', 'fahrenheit'] } }, required: ['city'] } }] },
    ]);
    assert.deepEqual(fake.last.body['toolConfig'], { functionCallingConfig: { mode: 'ANY' } });
    const starts = events.filter((e) => e.type === 'tool_call_start');
    const deltas = events.filter((e) => e.type === 'tool_call_delta');
    assert.deepEqual(starts.map((s) => [s.index, s.name]), [[0, 'get_weather'], [1, 'get_weather']]);
    assert.deepEqual(deltas.map((d) => d.arguments), ['{"city":"Paris"}', '{"city":"London","unit":"celsius"}']);
    assert.deepEqual(events.find((e) => e.type === 'finish'), { type: 'finish', choice: 0, reason: 'tool_calls' });
    const [a, b] = starts.map((s) => s.id);
    assert.deepEqual(decodeCallId(a!), { thoughtSignature: SIG });
    assert.notEqual(a, b);

    // The client sends the ids back as it got them.
    const res = await p.chat(
      chatCall({
        tools,
        messages: [
          { role: 'user', content: 'Weather in Paris and London?' },
          { role: 'assistant', content: null, toolCalls: [{ id: a!, name: 'get_weather', arguments: deltas[0]!.arguments }, { id: b!, name: 'get_weather', arguments: deltas[1]!.arguments }] },
          { role: 'tool', toolCallId: a!, content: '{"temp_c":21}' },
          { role: 'tool', toolCallId: b!, content: 'rainy, 14C' },
        ],
      }),
    );
    assert.equal(res.choices[0]?.content, 'Hello from the fake Gemini.');
    assert.deepEqual(fake.last.body['contents'], [
      { role: 'user', parts: [{ text: 'Weather in Paris and London?' }] },
      { role: 'model', parts: [{ functionCall: { name: 'get_weather', args: { city: 'Paris' } }, thoughtSignature: SIG }, { functionCall: { name: 'get_weather', args: { city: 'London', unit: 'celsius' } } }] },
      { role: 'user', parts: [{ functionResponse: { name: 'get_weather', response: { temp_c: 21 } } }, { functionResponse: { name: 'get_weather', response: { result: 'rainy, 14C' } } }] },
    ]);
  });

  it('images: a data URL inline, an http URL as fileData', async () => {
    await p.chat(
      chatCall({ messages: [{ role: 'user', content: [{ type: 'text', text: 'What is this?' }, { type: 'image', url: 'data:image/jpeg;base64,/9j/4AAQ' }, { type: 'image', url: 'https://img.example.com/cat.webp' }] }] }),
    );
    assert.deepEqual(fake.last.body['contents'], [
      { role: 'user', parts: [{ text: 'What is this?' }, { inlineData: { mimeType: 'image/jpeg', data: '/9j/4AAQ' } }, { fileData: { fileUri: 'https://img.example.com/cat.webp', mimeType: 'image/webp' } }] },
    ]);
  });

  it('JSON mode with a schema', async () => {
    fake.next({ kind: 'answer', body: textAnswer('{"answer":42}') });
    const res = await p.chat(chatCall({ responseFormat: { type: 'json_schema', name: 'a', schema: { $schema: 'https://json-schema.org/draft/2020-12/schema', type: 'object', properties: { answer: { type: 'integer', default: 0 } }, required: ['answer'] } } }));
    assert.equal(res.choices[0]?.content, '{"answer":42}');
    assert.deepEqual(fake.last.body['generationConfig'], {
      maxOutputTokens: 100,
      responseMimeType: 'application/json',
      responseSchema: { type: 'object', properties: { answer: { type: 'integer' } }, required: ['answer'] },
    });
  });

  it('reasoning: thinkingConfig sent, thoughts streamed as reasoning, thought tokens in usage', async () => {
    fake.next({ kind: 'stream', events: [fixture('thinking.sse')] });
    // A cap with room for the whole `high` budget (a smaller cap lowers it: provider-gemini-convert).
    const events = await collect(await p.chatStream(chatCall({ stream: true, reasoningEffort: 'high' }, { maxTokens: 30_000 })));
    assert.deepEqual((fake.last.body['generationConfig'] as Record<string, unknown>)['thinkingConfig'], { thinkingBudget: 24576, includeThoughts: true });
    assert.equal(events.filter((e) => e.type === 'reasoning').map((e) => (e.type === 'reasoning' ? e.text : '')).join(''), '**Adding the numbers**\n\nI need 17 + 25. That is 42.');
    const u = events.at(-1);
    assert.ok(u?.type === 'usage');
    assert.deepEqual([u.usage.promptTokens, u.usage.completionTokens, u.usage.reasoningTokens], [14, 127, 120]);
  });

  it('every stop reason, whole answers and streams', async () => {
    const answer = (finishReason: string): Record<string, unknown> => ({ candidates: [{ content: { role: 'model', parts: [{ text: 'x' }] }, finishReason }] });
    const got: string[] = [];
    for (const r of ['STOP', 'MAX_TOKENS', 'SAFETY', 'RECITATION', 'PROHIBITED_CONTENT', 'OTHER']) {
      fake.next({ kind: 'answer', body: answer(r) });
      got.push((await p.chat(chatCall({}))).choices[0]!.finishReason);
    }
    assert.deepEqual(got, ['stop', 'length', 'content_filter', 'content_filter', 'content_filter', 'stop']);
    fake.next({ kind: 'stream', events: [fixture('max-tokens.sse')] }, { kind: 'stream', events: [fixture('content-filter.sse')] });
    const finish = async (): Promise<unknown> => (await collect(await p.chatStream(chatCall({ stream: true })))).find((e) => e.type === 'finish');
    assert.deepEqual(await finish(), { type: 'finish', choice: 0, reason: 'length' });
    assert.deepEqual(await finish(), { type: 'finish', choice: 0, reason: 'content_filter' });
  });

  it('n choices: candidateCount, one choice per candidate', async () => {
    fake.next({ kind: 'stream', events: [fixture('two-candidates.sse')] });
    const events = await collect(await p.chatStream(chatCall({ stream: true, n: 2 })));
    assert.equal((fake.last.body['generationConfig'] as Record<string, unknown>)['candidateCount'], 2);
    assert.deepEqual(events.filter((e) => e.type === 'finish'), [{ type: 'finish', choice: 0, reason: 'stop' }, { type: 'finish', choice: 1, reason: 'length' }]);
  });

  it('a blocked prompt: 400 naming the reason, before the stream opens and without one', async () => {
    fake.next({ kind: 'stream', events: [fixture('safety-block.sse')] });
    await assert.rejects(p.chatStream(chatCall({ stream: true })), (e: unknown) => {
      assert.ok(e instanceof UpstreamError);
      const shown = toGatewayError(e, p.secrets);
      assert.equal(shown.status, 400);
      assert.equal(shown.message, 'The prompt was blocked by the provider: SAFETY');
      return true;
    });
    fake.next({ kind: 'answer', body: { promptFeedback: { blockReason: 'BLOCKLIST' }, usageMetadata: { promptTokenCount: 3 } } });
    await assert.rejects(p.chat(chatCall({})), (e: unknown) => e instanceof UpstreamError && toGatewayError(e).message === 'The prompt was blocked by the provider: BLOCKLIST');
  });

  it('a stream cut before its finish reason throws a reset from the iterator', async () => {
    fake.next({ kind: 'stream', events: [fixture('text.sse')], cutAfter: 0 }, { kind: 'stream', events: [fixture('cut-off.sse')] });
    // Cut before any event: an ordinary error from chatStream.
    await assert.rejects(p.chatStream(chatCall({ stream: true })), (e: unknown) => e instanceof UpstreamError && e.retryable);
    // One event, then the end without a finish reason: the first event came, the iterator throws.
    const stream = await p.chatStream(chatCall({ stream: true }));
    const seen: StreamEvent[] = [];
    await assert.rejects(
      (async () => {
        for await (const e of stream) seen.push(e);
      })(),
      (e: unknown) => e instanceof UpstreamError && e.failure === 'reset',
    );
    assert.deepEqual(seen.map((e) => e.type), ['start', 'text']);
  });

  it('a consumer that stops early, or a client that goes away, closes the upstream response', async () => {
    const chunk = { candidates: [{ content: { role: 'model', parts: [{ text: 'Hi' }] }, index: 0 }] };
    let release = (): void => {};
    const holdOpen = new Promise<void>((r) => (release = r));
    const before = fake.earlyCloses;
    try {
      fake.next({ kind: 'stream', events: [chunk, chunk], holdOpen });
      let closed = fake.nextEarlyClose();
      const stream = await p.chatStream(chatCall({ stream: true }));
      for await (const e of stream) if (e.type === 'text') break;
      await closed;

      fake.next({ kind: 'stream', events: [chunk], holdOpen });
      closed = fake.nextEarlyClose();
      const ac = new AbortController();
      const aborted = await p.chatStream({ ...chatCall({ stream: true }), signal: ac.signal });
      const it = aborted[Symbol.asyncIterator]();
      assert.equal((await it.next()).value?.type, 'start');
      assert.equal((await it.next()).value?.type, 'text');
      const pending = it.next();
      ac.abort();
      await assert.rejects(pending, (e: unknown) => e instanceof UpstreamError && e.failure === 'aborted');
      await closed;
      assert.equal(fake.earlyCloses, before + 2);
    } finally {
      release();
    }
  });

  it('an error event mid-stream throws from the iterator', async () => {
    const chunk = { candidates: [{ content: { role: 'model', parts: [{ text: 'Hi' }] }, index: 0 }] };
    fake.next({ kind: 'stream', events: [chunk, { error: { code: 500, message: 'An internal error has occurred.', status: 'INTERNAL' } }] });
    const stream = await p.chatStream(chatCall({ stream: true }));
    await assert.rejects(collect(stream), (e: unknown) => e instanceof UpstreamError && e.status === 500 && toGatewayError(e).status === 502);
  });

  it('rate limited (RESOURCE_EXHAUSTED): saturated with the RetryInfo delay as retry-after', async () => {
    fake.next({ kind: 'error', status: 429, body: quotaBody('30s') }, { kind: 'error', status: 429, body: quotaBody('7s') });
    await assert.rejects(p.chat(chatCall({})), (e: unknown) => {
      assert.ok(e instanceof UpstreamError && e.isSaturated);
      assert.equal(e.headers['retry-after'], '30');
      const shown = toGatewayError(e);
      assert.equal(shown.status, 503);
      assert.equal(shown.retryAfterMs, 30_000);
      return true;
    });
    await assert.rejects(p.chatStream(chatCall({ stream: true })), (e: unknown) => e instanceof UpstreamError && e.headers['retry-after'] === '7');
  });

  it('a bad key is the gateway credential fault: 502, the key never in the message', async () => {
    const bad = make(fake, { api_key: 'wrong-key-xyz' });
    try {
      for (const attempt of [() => bad.chat(chatCall({})), () => bad.chatStream(chatCall({ stream: true })), () => bad.embeddings({ body: { input: 'a' }, upstreamModel: 'gemini-embedding-001', signal: new AbortController().signal, trace: {} })]) {
        await assert.rejects(attempt(), (e: unknown) => {
          assert.ok(e instanceof UpstreamError);
          assert.equal(e.isClientFault, false);
          const shown = toGatewayError(e, bad.secrets);
          assert.equal(shown.status, 502);
          assert.doesNotMatch(shown.message, /wrong-key-xyz/);
          return true;
        });
      }
    } finally {
      await bad.close();
    }
  });

  it('an invalid request stays a 400 with Gemini message', async () => {
    fake.next({ kind: 'error', status: 400, body: invalidArgumentBody('* GenerateContentRequest.contents: contents is not specified') });
    await assert.rejects(p.chat(chatCall({})), (e: unknown) => {
      assert.ok(e instanceof UpstreamError);
      const shown = toGatewayError(e, p.secrets);
      assert.equal(shown.status, 400);
      assert.equal(shown.message, '* GenerateContentRequest.contents: contents is not specified');
      return true;
    });
  });

  it('embeddings: one input by embedContent, several by batchEmbedContents, dimensions and base64', async () => {
    const signal = new AbortController().signal;
    const one = await p.embeddings({ body: { model: 'emb', input: 'hello', dimensions: 3 }, upstreamModel: 'gemini-embedding-001', signal, trace: {} });
    assert.ok('body' in one);
    assert.deepEqual(one, { body: { object: 'list', data: [{ object: 'embedding', index: 0, embedding: fakeVector('hello', 3) }], model: 'gemini-embedding-001', usage: null }, usage: null });
    assert.equal(fake.last.path, '/v1beta/models/gemini-embedding-001:embedContent');
    assert.deepEqual(fake.last.body, { content: { parts: [{ text: 'hello' }] }, outputDimensionality: 3 });

    const many = await p.embeddings({ body: { input: ['a', 'bb'], encoding_format: 'base64' }, upstreamModel: 'gemini-embedding-001', signal, trace: {} });
    assert.ok('body' in many);
    assert.equal(fake.last.action, 'batchEmbedContents');
    const data = many.body['data'] as Array<{ index: number; embedding: string }>;
    const decoded = data.map((d) => {
      const b = Buffer.from(d.embedding, 'base64');
      return Array.from({ length: b.length / 4 }, (_, i) => b.readFloatLE(i * 4));
    });
    assert.deepEqual(decoded, [fakeVector('a'), fakeVector('bb')].map((v) => v.map((x) => Math.fround(x))));
    assert.deepEqual(data.map((d) => d.index), [0, 1]);
  });
});
