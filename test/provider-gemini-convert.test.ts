// Unit tests of the Gemini converters and mappers: no server. Recorded-style streams in
// test/fixtures/gemini/*.sse are replayed through the stream converter.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { GatewayError } from '../src/errors.js';
import type { ChatCall } from '../src/providers/contract.js';
import { fromEmbedResponse, toEmbedRequest, float32Base64 } from '../src/providers/gemini/embeddings.js';
import { blockedPrompt, fromResponse, fromUsage, GeminiStreamConverter, mapError, mapFinishReason, parseDuration } from '../src/providers/gemini/from-provider.js';
import { toGeminiParameters, toGeminiSchema } from '../src/providers/gemini/schema.js';
import { decodeCallId, encodeCallId, isGeminiCallId } from '../src/providers/gemini/tool-ids.js';
import { imagePart, MIN_THINKING_BUDGET, toGeminiRequest, toToolConfig } from '../src/providers/gemini/to-provider.js';
import type { GeminiResponse } from '../src/providers/gemini/wire.js';
import { SseDecoder } from '../src/providers/sse.js';
import { toGatewayError, UpstreamError } from '../src/providers/upstream-error.js';
import type { ChatRequest, Message, StreamEvent } from '../src/types/chat.js';

const SIG = 'CiIBVKhc7oDPpCaXyJKKssjqr2ga0t2vZA6qM3hWfZ+Nc5Ht';

function call(req: Partial<ChatRequest>, maxTokens: number | null = null): ChatCall {
  return {
    request: { model: 'g', messages: [{ role: 'user', content: 'hi' }], n: 1, stream: false, includeUsage: false, extra: {}, ...req },
    upstreamModel: 'gemini-2.5-flash',
    maxTokens,
    signal: new AbortController().signal, trace: {},
  };
}

/** Deterministic ids: call_0000…1, call_0000…2, … */
function counter(): () => string {
  let i = 0;
  return () => `call_${String(++i).padStart(20, '0')}`;
}

function replay(name: string): StreamEvent[] {
  const bytes = readFileSync(new URL(`./fixtures/gemini/${name}`, import.meta.url));
  const data: string[] = [];
  new SseDecoder(1 << 20).feed(bytes, data);
  const conv = new GeminiStreamConverter(counter(), () => 1700000000);
  const out: StreamEvent[] = [];
  for (const d of data) out.push(...conv.push(JSON.parse(d) as GeminiResponse, d));
  out.push(...conv.end());
  return out;
}

describe('gemini tool-call ids', () => {
  it('round-trip a thought signature and Gemini ids in characters OpenAI and Anthropic clients keep', () => {
    const made = encodeCallId({ thoughtSignature: SIG }, () => 'call_abcdefghij0123456789');
    assert.match(made, /^[A-Za-z0-9_-]+$/);
    assert.deepEqual(decodeCallId(made), { thoughtSignature: SIG });
    const theirs = encodeCallId({ geminiId: 'fc:7/x', thoughtSignature: 'not base64 ~!' });
    assert.match(theirs, /^gid_[0-9a-f]+_u[A-Za-z0-9_-]+$/);
    assert.deepEqual(decodeCallId(theirs), { geminiId: 'fc:7/x', thoughtSignature: 'not base64 ~!' });
    assert.equal(encodeCallId({}, () => 'call_plain0123456789abcde'), 'call_plain0123456789abcde');
    assert.deepEqual(decodeCallId('call_plain0123456789abcde'), {});
    assert.ok(isGeminiCallId('call_plain0123456789abcde'));
    assert.match(encodeCallId({}), /^call_[A-Za-z0-9]{20}$/);
  });
  it('ids of other shapes carry nothing', () => {
    assert.deepEqual(decodeCallId('toolu_01A09q90qw90lq917835lq9'), {});
    assert.deepEqual(decodeCallId('call_abc!'), {});
    assert.deepEqual(decodeCallId('gid_zz'), {});
  });
  it("other providers' call_ ids are not taken for ours: OpenAI's (24 characters), DeepSeek's (call_0_<uuid>)", () => {
    for (const id of ['call_Zq4n1yqvG8Ck0KuPJ8z3nYfS', 'call_abc', 'call_0_b1f3c2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d', 'call_0_u9a8b7c6']) {
      assert.equal(isGeminiCallId(id), false, id);
      assert.deepEqual(decodeCallId(id), {}, id);
    }
  });
});

describe('gemini request', () => {
  it('roles, merged turns, system and developer as systemInstruction', () => {
    const body = toGeminiRequest(
      call({
        messages: [
          { role: 'system', content: 'Be brief.' },
          { role: 'developer', content: [{ type: 'text', text: 'No emojis.' }] },
          { role: 'user', content: 'one' },
          { role: 'user', content: [{ type: 'text', text: 'two' }] },
          { role: 'assistant', content: 'ok' },
          { role: 'user', content: 'three' },
        ],
      }),
    );
    assert.deepEqual(body.systemInstruction, { parts: [{ text: 'Be brief.' }, { text: 'No emojis.' }] });
    assert.deepEqual(body.contents, [
      { role: 'user', parts: [{ text: 'one' }, { text: 'two' }] },
      { role: 'model', parts: [{ text: 'ok' }] },
      { role: 'user', parts: [{ text: 'three' }] },
    ]);
    assert.equal(body.generationConfig, undefined);
  });

  it('images: data URLs inline, http URLs as fileData with a guessed type', () => {
    assert.deepEqual(imagePart('data:image/png;base64,iVBORw0K'), { inlineData: { mimeType: 'image/png', data: 'iVBORw0K' } });
    assert.deepEqual(imagePart('https://example.com/a/cat.JPG?x=1'), { fileData: { fileUri: 'https://example.com/a/cat.JPG?x=1', mimeType: 'image/jpeg' } });
    assert.deepEqual(imagePart('https://example.com/image'), { fileData: { fileUri: 'https://example.com/image', mimeType: 'image/*' } });
    assert.throws(() => imagePart('ftp://x/y.png'), GatewayError);
  });

  it('a tool conversation: function calls with signatures and Gemini ids, responses named from the history', () => {
    const withSig = encodeCallId({ thoughtSignature: SIG }, () => 'call_A1000000000000000000');
    const withId = encodeCallId({ geminiId: 'g-2' });
    const messages: Message[] = [
      { role: 'user', content: 'weather?' },
      { role: 'assistant', content: null, toolCalls: [
        { id: withSig, name: 'get_weather', arguments: '{"city":"Paris"}' },
        { id: withId, name: 'get_time', arguments: '' },
      ] },
      { role: 'tool', toolCallId: withSig, content: '{"temp":21}' },
      { role: 'tool', toolCallId: withId, content: [{ type: 'text', text: '12:00' }] },
    ];
    const body = toGeminiRequest(call({ messages }));
    assert.deepEqual(body.contents, [
      { role: 'user', parts: [{ text: 'weather?' }] },
      { role: 'model', parts: [
        { functionCall: { name: 'get_weather', args: { city: 'Paris' } }, thoughtSignature: SIG },
        { functionCall: { name: 'get_time', args: {}, id: 'g-2' } },
      ] },
      { role: 'user', parts: [
        { functionResponse: { name: 'get_weather', response: { temp: 21 } } },
        { functionResponse: { name: 'get_time', response: { result: '12:00' }, id: 'g-2' } },
      ] },
    ]);
  });

  it('empty texts are left out (Gemini refuses empty text parts)', () => {
    const body = toGeminiRequest(call({ messages: [{ role: 'user', content: 'q' }, { role: 'assistant', content: '', toolCalls: [{ id: 'call_00000000000000000009', name: 'f', arguments: '{}' }] }, { role: 'tool', toolCallId: 'call_00000000000000000009', content: '' }] }));
    assert.deepEqual(body.contents, [
      { role: 'user', parts: [{ text: 'q' }] },
      { role: 'model', parts: [{ functionCall: { name: 'f', args: {} } }] },
      { role: 'user', parts: [{ functionResponse: { name: 'f', response: { result: '' } } }] },
    ]);
  });

  it('function calls Gemini did not make get the documented stand-in signature on the first call of their step', () => {
    const body = toGeminiRequest(
      call({
        messages: [
          { role: 'user', content: 'q' },
          { role: 'assistant', content: null, toolCalls: [{ id: 'toolu_01', name: 'f', arguments: '{"a":1}' }, { id: 'toolu_02', name: 'g', arguments: '{}' }] },
          { role: 'tool', toolCallId: 'toolu_01', content: 'x' },
          { role: 'tool', toolCallId: 'toolu_02', content: 'y' },
        ],
      }),
    );
    assert.deepEqual(body.contents[1], {
      role: 'model',
      parts: [{ functionCall: { name: 'f', args: { a: 1 } }, thoughtSignature: 'skip_thought_signature_validator' }, { functionCall: { name: 'g', args: {} } }],
    });
    // OpenAI's ids start with call_ too (after a failover from an OpenAI deployment, or a client's transcript).
    const openai = toGeminiRequest(
      call({
        messages: [
          { role: 'user', content: 'q' },
          { role: 'assistant', content: null, toolCalls: [{ id: 'call_Zq4n1yqvG8Ck0KuPJ8z3nYfS', name: 'f', arguments: '{}' }] },
          { role: 'tool', toolCallId: 'call_Zq4n1yqvG8Ck0KuPJ8z3nYfS', content: 'x' },
        ],
      }),
    );
    assert.deepEqual(openai.contents[1], { role: 'model', parts: [{ functionCall: { name: 'f', args: {} }, thoughtSignature: 'skip_thought_signature_validator' }] });
  });

  it('a tool result for an unknown call id is a 400 naming the field', () => {
    assert.throws(
      () => toGeminiRequest(call({ messages: [{ role: 'user', content: 'x' }, { role: 'tool', toolCallId: 'nope', content: 'r' }] })),
      (e: unknown) => e instanceof GatewayError && e.status === 400 && e.param === 'messages[1].tool_call_id',
    );
  });

  it('tools, tool choice and generation parameters', () => {
    const body = toGeminiRequest(
      call(
        {
          tools: [
            { name: 'noop', description: 'Does nothing' },
            { name: 'empty', parameters: { type: 'object', properties: {}, additionalProperties: false } },
            { name: 'find', parameters: { type: 'object', properties: { q: { type: 'string' } }, required: ['q'], additionalProperties: false, $schema: 'http://json-schema.org/draft-07/schema#' } },
          ],
          toolChoice: { name: 'find' },
          temperature: 0.2,
          topP: 0.9,
          stop: ['END'],
          seed: 7,
          n: 2,
          reasoningEffort: 'medium',
        },
        256,
      ),
    );
    assert.deepEqual(body.tools, [
      { functionDeclarations: [
        { name: 'noop', description: 'Does nothing' },
        { name: 'empty' },
        { name: 'find', parameters: { type: 'object', properties: { q: { type: 'string' } }, required: ['q'] } },
      ] },
    ]);
    assert.deepEqual(body.toolConfig, { functionCallingConfig: { mode: 'ANY', allowedFunctionNames: ['find'] } });
    assert.deepEqual(body.generationConfig, {
      maxOutputTokens: 256,
      temperature: 0.2,
      topP: 0.9,
      stopSequences: ['END'],
      seed: 7,
      candidateCount: 2,
      thinkingConfig: { thinkingBudget: MIN_THINKING_BUDGET, includeThoughts: true },
    });
    assert.deepEqual(toToolConfig('auto'), { functionCallingConfig: { mode: 'AUTO' } });
    assert.deepEqual(toToolConfig('required'), { functionCallingConfig: { mode: 'ANY' } });
    assert.deepEqual(toToolConfig('none'), { functionCallingConfig: { mode: 'NONE' } });
  });

  it('reasoning efforts map to thinking budgets, kept below maxOutputTokens (Gemini counts thinking in it)', () => {
    const efforts = ['minimal', 'low', 'medium', 'high'] as const;
    const budgets = (max: number | null): unknown[] =>
      efforts.map((e) => {
        const g = toGeminiRequest(call({ reasoningEffort: e }, max)).generationConfig;
        if (max !== null) assert.equal(g?.maxOutputTokens, max, 'the cap is never raised');
        return g?.thinkingConfig?.thinkingBudget;
      });
    assert.deepEqual(budgets(null), [512, 1024, 8192, 24576]);
    assert.deepEqual(budgets(65_536), [512, 1024, 8192, 24576]);
    // The default max_output_tokens: high and medium would otherwise leave nothing for the answer.
    assert.deepEqual(budgets(4096), [512, 1024, 4095, 4095]);
    assert.deepEqual(budgets(1024), [512, 1023, 1023, 1023]);
    // Below the smallest budget every 2.5 model takes, that smallest one.
    assert.deepEqual(budgets(513), [512, 512, 512, 512]);
    assert.deepEqual(budgets(100), [512, 512, 512, 512]);
    for (let max = MIN_THINKING_BUDGET + 1; max < 30_000; max += 997) {
      for (const b of budgets(max)) assert.ok(typeof b === 'number' && b < max && b >= MIN_THINKING_BUDGET, `budget ${String(b)} for maxOutputTokens ${max}`);
    }
  });

  it('JSON modes: json_object sets the MIME type, json_schema adds the translated schema', () => {
    assert.deepEqual(toGeminiRequest(call({ responseFormat: { type: 'json_object' } })).generationConfig, { responseMimeType: 'application/json' });
    const g = toGeminiRequest(call({ responseFormat: { type: 'json_schema', name: 'x', strict: true, schema: { type: 'object', properties: { a: { type: ['integer', 'null'] } }, required: ['a'], additionalProperties: false } } })).generationConfig;
    assert.deepEqual(g, { responseMimeType: 'application/json', responseSchema: { type: 'object', properties: { a: { type: 'integer', nullable: true } }, required: ['a'] } });
  });
});

describe('gemini schema translation', () => {
  it('inlines $ref from $defs and definitions, cuts recursion to an object', () => {
    const s = toGeminiSchema({
      $defs: { Point: { type: 'object', properties: { x: { type: 'number' } } }, Node: { type: 'object', properties: { next: { $ref: '#/$defs/Node' } } } },
      definitions: { Color: { enum: ['red', 'green'] } },
      type: 'object',
      properties: { p: { $ref: '#/$defs/Point', description: 'where' }, c: { $ref: '#/definitions/Color' }, n: { $ref: '#/$defs/Node' } },
    });
    assert.deepEqual(s, {
      type: 'object',
      properties: {
        p: { description: 'where', type: 'object', properties: { x: { type: 'number' } } },
        c: { type: 'string', enum: ['red', 'green'] },
        n: { type: 'object', properties: { next: { type: 'object' } } },
      },
    });
  });

  it('type arrays, const, oneOf, allOf, formats, non-string enums, unknown keywords', () => {
    assert.deepEqual(toGeminiSchema({ type: ['string', 'number', 'null'], default: 'x', examples: ['y'] }), {
      nullable: true,
      anyOf: [{ type: 'string' }, { type: 'number' }],
    });
    assert.deepEqual(toGeminiSchema({ const: 'fixed' }), { type: 'string', enum: ['fixed'] });
    assert.deepEqual(toGeminiSchema({ oneOf: [{ type: 'string' }, { type: 'null' }] }), { nullable: true, type: 'string' });
    assert.deepEqual(toGeminiSchema({ oneOf: [{ type: 'string' }, { type: 'integer', format: 'int32' }] }), { anyOf: [{ type: 'string' }, { type: 'integer', format: 'int32' }] });
    assert.deepEqual(toGeminiSchema({ allOf: [{ type: 'object', properties: { a: { type: 'string' } }, required: ['a'] }, { properties: { b: { type: 'boolean' } }, required: ['b', 'zzz'] }] }), {
      type: 'object',
      properties: { a: { type: 'string' }, b: { type: 'boolean' } },
      required: ['a', 'b'],
    });
    assert.deepEqual(toGeminiSchema({ type: 'string', format: 'email', minLength: 3 }), { type: 'string', minLength: 3 });
    assert.deepEqual(toGeminiSchema({ type: 'string', format: 'date-time' }), { type: 'string', format: 'date-time' });
    assert.deepEqual(toGeminiSchema({ type: 'integer', enum: [1, 2], description: 'Level' }), { type: 'integer', description: 'Level (one of: 1, 2)' });
    assert.deepEqual(toGeminiSchema({ type: 'array', items: { type: 'string', pattern: '^a', patternProperties: {} }, minItems: 1 }), { type: 'array', items: { type: 'string', pattern: '^a' }, minItems: 1 });
    assert.deepEqual(toGeminiSchema({ type: 'object', properties: { m: { type: 'object', additionalProperties: { type: 'string' } } } }), { type: 'object', properties: { m: { type: 'object' } } });
  });

  it('a tool without properties sends no parameters', () => {
    assert.equal(toGeminiParameters(undefined), undefined);
    assert.equal(toGeminiParameters({ type: 'object' }), undefined);
    assert.deepEqual(toGeminiParameters({ type: 'object', properties: { a: { type: 'string' } } }), { type: 'object', properties: { a: { type: 'string' } } });
  });
});

describe('gemini answers', () => {
  it('finish reasons', () => {
    assert.equal(mapFinishReason('STOP', false), 'stop');
    assert.equal(mapFinishReason('STOP', true), 'tool_calls');
    assert.equal(mapFinishReason('MAX_TOKENS', true), 'length');
    for (const r of ['SAFETY', 'RECITATION', 'BLOCKLIST', 'PROHIBITED_CONTENT', 'SPII', 'IMAGE_SAFETY', 'IMAGE_PROHIBITED_CONTENT', 'IMAGE_RECITATION']) assert.equal(mapFinishReason(r, false), 'content_filter', r);
    for (const r of ['OTHER', 'LANGUAGE', 'MALFORMED_FUNCTION_CALL', 'FINISH_REASON_UNSPECIFIED']) assert.equal(mapFinishReason(r, false), 'stop', r);
  });

  it('usage: cached inside prompt, thoughts added to completion, raw kept; non-numbers are NaN', () => {
    const raw = { promptTokenCount: 100, cachedContentTokenCount: 60, candidatesTokenCount: 20, thoughtsTokenCount: 30, totalTokenCount: 150 };
    assert.deepEqual(fromUsage(raw), { promptTokens: 100, completionTokens: 50, cachedTokens: 60, cacheWriteTokens: 0, reasoningTokens: 30, raw });
    assert.equal(fromUsage({ promptTokenCount: 5, toolUsePromptTokenCount: 3 })?.promptTokens, 8);
    assert.ok(Number.isNaN(fromUsage({ promptTokenCount: '5' as unknown as number })?.promptTokens));
    assert.equal(fromUsage(undefined), null);
  });

  it('a whole answer: candidates, thoughts, function calls with signatures', () => {
    const res = fromResponse(
      {
        candidates: [
          { content: { role: 'model', parts: [{ text: 'Let me think', thought: true }, { text: 'Calling.' }, { functionCall: { name: 'f', args: { a: 1 } }, thoughtSignature: SIG }, { functionCall: { name: 'g' } }] }, finishReason: 'STOP' },
          { content: { role: 'model', parts: [{ text: 'B' }] }, finishReason: 'MAX_TOKENS', index: 1 },
        ],
        usageMetadata: { promptTokenCount: 3, candidatesTokenCount: 4 },
        responseId: 'r1',
      },
      counter(),
      () => 42,
    );
    assert.deepEqual(res, {
      id: 'r1',
      created: 42,
      choices: [
        {
          index: 0,
          content: 'Calling.',
          finishReason: 'tool_calls',
          reasoning: [{ text: 'Let me think' }],
          toolCalls: [
            { id: `call_00000000000000000001_b${Buffer.from(SIG, 'base64').toString('base64url')}`, name: 'f', arguments: '{"a":1}' },
            { id: 'call_00000000000000000002', name: 'g', arguments: '{}' },
          ],
        },
        { index: 1, content: 'B', finishReason: 'length' },
      ],
      usage: { promptTokens: 3, completionTokens: 4, cachedTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0, raw: { promptTokenCount: 3, candidatesTokenCount: 4 } },
    });
    assert.deepEqual(decodeCallId(res.choices[0]!.toolCalls![0]!.id), { thoughtSignature: SIG });
  });

  it('a blocked prompt is a 400 naming the reason', () => {
    const err = blockedPrompt({ promptFeedback: { blockReason: 'PROHIBITED_CONTENT' } });
    assert.ok(err !== null);
    const shown = toGatewayError(err);
    assert.equal(shown.status, 400);
    assert.equal(shown.message, 'The prompt was blocked by the provider: PROHIBITED_CONTENT');
    assert.throws(() => fromResponse({ promptFeedback: { blockReason: 'SAFETY' } }), (e: unknown) => e instanceof UpstreamError && e.status === 400);
  });
});

describe('gemini errors', () => {
  const status = (s: number, body: unknown, headers: Record<string, string> = {}): UpstreamError =>
    new UpstreamError('status', `upstream answered ${s}`, { status: s, headers, body: JSON.stringify(body) });

  it('a rejected API key is the gateway credential problem: 502, not 400', () => {
    const e = mapError(status(400, { error: { code: 400, message: 'API key not valid. Please pass a valid API key.', status: 'INVALID_ARGUMENT', details: [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'API_KEY_INVALID' }] } }));
    assert.equal(e.isClientFault, false);
    assert.equal(toGatewayError(e).status, 502);
    assert.equal(toGatewayError(mapError(status(403, { error: { code: 403, message: 'Permission denied', status: 'PERMISSION_DENIED' } }))).status, 502);
  });

  it('RESOURCE_EXHAUSTED: saturated, RetryInfo as retry-after', () => {
    const e = mapError(status(429, { error: { code: 429, status: 'RESOURCE_EXHAUSTED', details: [{ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: '12.5s' }] } }));
    assert.equal(e.headers['retry-after'], '13');
    const shown = toGatewayError(e);
    assert.equal(shown.status, 503);
    assert.equal(parseDuration('30s'), 30);
    assert.equal(parseDuration('soon'), null);
    // A header the upstream sent wins over the body.
    assert.equal(mapError(status(429, { error: { details: [{ retryDelay: '50s' }] } }, { 'retry-after': '2' })).headers['retry-after'], '2');
  });

  it('INVALID_ARGUMENT stays a client fault with Gemini message', () => {
    const e = mapError(status(400, { error: { code: 400, message: 'Unable to submit request because it has an empty text parameter.', status: 'INVALID_ARGUMENT' } }));
    assert.equal(e.isClientFault, true);
    assert.equal(toGatewayError(e).message, 'Unable to submit request because it has an empty text parameter.');
  });
});

describe('gemini streams (fixtures)', () => {
  const start = (id: string): StreamEvent => ({ type: 'start', id, created: 1700000000 });

  it('text.sse', () => {
    const usage = { promptTokenCount: 9, candidatesTokenCount: 8, cachedContentTokenCount: 4, totalTokenCount: 17, promptTokensDetails: [{ modality: 'TEXT', tokenCount: 9 }] };
    assert.deepEqual(replay('text.sse'), [
      start('Xk1aaPqPLdGnz7IPqYWm8Ac'),
      { type: 'text', choice: 0, text: 'The capital' },
      { type: 'text', choice: 0, text: ' of France is Paris.' },
      { type: 'finish', choice: 0, reason: 'stop' },
      { type: 'usage', usage: { promptTokens: 9, completionTokens: 8, cachedTokens: 4, cacheWriteTokens: 0, reasoningTokens: 0, raw: usage } },
    ]);
  });

  it('parallel-function-calls.sse: whole calls numbered from 0, signature in the first id', () => {
    const events = replay('parallel-function-calls.sse');
    const sigId = `call_00000000000000000001_b${Buffer.from(SIG, 'base64').toString('base64url')}`;
    assert.deepEqual(events.slice(0, 6), [
      start('cWBaaLmHA8Sk1e8Pj_Kd8QE'),
      { type: 'tool_call_start', choice: 0, index: 0, id: sigId, name: 'get_weather' },
      { type: 'tool_call_delta', choice: 0, index: 0, arguments: '{"city":"Paris"}' },
      { type: 'tool_call_start', choice: 0, index: 1, id: 'call_00000000000000000002', name: 'get_weather' },
      { type: 'tool_call_delta', choice: 0, index: 1, arguments: '{"city":"London","unit":"celsius"}' },
      { type: 'finish', choice: 0, reason: 'tool_calls' },
    ]);
    const u = events[6];
    assert.ok(u?.type === 'usage');
    assert.deepEqual({ ...u.usage, raw: undefined }, { promptTokens: 52, completionTokens: 101, cachedTokens: 0, cacheWriteTokens: 0, reasoningTokens: 71, raw: undefined });
    assert.equal(events.length, 7);
    assert.deepEqual(decodeCallId(sigId), { thoughtSignature: SIG });
  });

  it('thinking.sse: thought parts as reasoning, then text', () => {
    const events = replay('thinking.sse');
    assert.deepEqual(events.slice(0, 6), [
      start('th-1'),
      { type: 'reasoning', choice: 0, text: '**Adding the numbers**\n\nI need 17 + 25.' },
      { type: 'reasoning', choice: 0, text: ' That is 42.' },
      { type: 'text', choice: 0, text: '17 + 25 = 42' },
      { type: 'text', choice: 0, text: '.' },
      { type: 'finish', choice: 0, reason: 'stop' },
    ]);
    const u = events[6];
    assert.ok(u?.type === 'usage');
    assert.equal(u.usage.completionTokens, 127);
    assert.equal(u.usage.reasoningTokens, 120);
  });

  it('safety-block.sse: a 400 naming the reason, before any event', () => {
    assert.throws(() => replay('safety-block.sse'), (e: unknown) => {
      assert.ok(e instanceof UpstreamError);
      assert.equal(e.status, 400);
      assert.equal(toGatewayError(e).message, 'The prompt was blocked by the provider: SAFETY');
      return true;
    });
  });

  it('max-tokens.sse: length', () => {
    const events = replay('max-tokens.sse');
    assert.deepEqual(events.slice(1, 4), [
      { type: 'text', choice: 0, text: 'Once upon a time, in a' },
      { type: 'text', choice: 0, text: ' land far' },
      { type: 'finish', choice: 0, reason: 'length' },
    ]);
  });

  it('content-filter.sse: a finish on SAFETY is content_filter', () => {
    assert.deepEqual(replay('content-filter.sse').slice(1, 3), [
      { type: 'text', choice: 0, text: 'Here is how' },
      { type: 'finish', choice: 0, reason: 'content_filter' },
    ]);
  });

  it('two-candidates.sse: choices by index (0 omitted as protobuf does)', () => {
    assert.deepEqual(replay('two-candidates.sse').slice(1, 7), [
      { type: 'text', choice: 0, text: 'Red' },
      { type: 'text', choice: 1, text: 'Blue' },
      { type: 'text', choice: 0, text: '.' },
      { type: 'finish', choice: 0, reason: 'stop' },
      { type: 'text', choice: 1, text: '.' },
      { type: 'finish', choice: 1, reason: 'length' },
    ]);
  });

  it('cut-off.sse: a stream without a finish reason is a reset', () => {
    assert.throws(() => replay('cut-off.sse'), (e: unknown) => e instanceof UpstreamError && e.failure === 'reset');
  });

  it('an error event mid-stream is an UpstreamError with its status', () => {
    const conv = new GeminiStreamConverter();
    conv.push({ candidates: [{ content: { parts: [{ text: 'a' }] } }] });
    const body = { error: { code: 503, message: 'The model is overloaded.', status: 'UNAVAILABLE' } };
    assert.throws(() => conv.push(body as GeminiResponse), (e: unknown) => e instanceof UpstreamError && e.status === 503 && toGatewayError(e).status === 502);
  });
});

describe('gemini embeddings mapping', () => {
  it('one input → embedContent, several → batchEmbedContents with the model, dimensions passed', () => {
    assert.deepEqual(toEmbedRequest({ input: 'a', dimensions: 4 }, 'models/e'), { method: 'embedContent', body: { content: { parts: [{ text: 'a' }] }, outputDimensionality: 4 }, base64: false, count: 1 });
    assert.deepEqual(toEmbedRequest({ input: ['a', 'b'], encoding_format: 'base64' }, 'models/e'), {
      method: 'batchEmbedContents',
      body: { requests: [{ model: 'models/e', content: { parts: [{ text: 'a' }] } }, { model: 'models/e', content: { parts: [{ text: 'b' }] } }] },
      base64: true,
      count: 2,
    });
  });
  it('token arrays and malformed inputs are 400s on input', () => {
    for (const input of [[1, 2, 3], [[1, 2]], [], 5]) {
      assert.throws(() => toEmbedRequest({ input }, 'models/e'), (e: unknown) => e instanceof GatewayError && e.status === 400 && e.param === 'input');
    }
    assert.throws(() => toEmbedRequest({ input: 'a', dimensions: 0 }, 'models/e'), (e: unknown) => e instanceof GatewayError && e.param === 'dimensions');
  });
  it('OpenAI list out; base64 is little-endian float32', () => {
    const plan = toEmbedRequest({ input: ['a', 'b'], encoding_format: 'base64' }, 'models/e');
    const out = fromEmbedResponse({ embeddings: [{ values: [1, -2.5] }, { values: [0.5, 0] }] }, plan, 'e');
    assert.deepEqual(out, {
      object: 'list',
      data: [
        { object: 'embedding', index: 0, embedding: float32Base64([1, -2.5]) },
        { object: 'embedding', index: 1, embedding: float32Base64([0.5, 0]) },
      ],
      model: 'e',
      usage: null,
    });
    const b = Buffer.from(float32Base64([1, -2.5]), 'base64');
    assert.deepEqual([b.readFloatLE(0), b.readFloatLE(4)], [1, -2.5]);
    assert.throws(() => fromEmbedResponse({ embeddings: [{ values: [1] }] }, plan, 'e'), UpstreamError);
  });
});
