// The OpenAI provider's pure converters (src/providers/openai/from-provider.ts, to-provider.ts),
// no server. The stream cases are the translation bugs OpenAI-compatible servers make converters
// ship: tool calls without `index`, every call at index 0, usage in a chunk with no choices,
// counts that are not numbers.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ChatCall } from '../src/providers/contract.js';
import { ChunkReader, fromCompletion, fromFinishReason, fromUsage } from '../src/providers/openai/from-provider.js';
import { fromTyped, toChatBody } from '../src/providers/openai/to-provider.js';
import type { OpenAIChunk, OpenAIUsage } from '../src/providers/openai/wire.js';
import type { ChatRequest, JsonObject, StreamEvent } from '../src/types/chat.js';

const ID = 'chatcmpl-abc';
const CREATED = 1_700_000_000;
const START: StreamEvent = { type: 'start', id: ID, created: CREATED };

/** A chunk of stream ID with these choices (and whatever else is given). */
function chunk(choices: OpenAIChunk['choices'], more: Partial<OpenAIChunk> = {}): OpenAIChunk {
  return { id: ID, object: 'chat.completion.chunk', created: CREATED, model: 'gpt-4o', choices, ...more };
}

/** The events of one stream, fed chunk by chunk to one reader as the provider does. */
function read(chunks: OpenAIChunk[]): StreamEvent[] {
  const reader = new ChunkReader();
  const out: StreamEvent[] = [];
  for (const c of chunks) reader.read(c, out);
  return out;
}

function request(over: Partial<ChatRequest> = {}): ChatRequest {
  return { model: 'cat-model', messages: [{ role: 'user', content: 'hi' }], n: 1, stream: false, includeUsage: false, extra: {}, ...over };
}

function call(req: ChatRequest, maxTokens: number | null): ChatCall {
  return { request: req, upstreamModel: 'gpt-4o-2024-08-06', maxTokens, signal: new AbortController().signal, trace: {} };
}

describe('fromUsage', () => {
  test("OpenAI's usage, details included, with the object itself kept as raw", () => {
    const u: OpenAIUsage = {
      prompt_tokens: 120,
      completion_tokens: 45,
      total_tokens: 165,
      prompt_tokens_details: { cached_tokens: 100 },
      completion_tokens_details: { reasoning_tokens: 30 },
    };
    const got = fromUsage(u);
    assert.deepEqual(got, { promptTokens: 120, completionTokens: 45, cachedTokens: 100, cacheWriteTokens: 0, reasoningTokens: 30, raw: u });
    assert.equal(got?.raw, u);
  });

  test("DeepSeek's prompt_cache_hit_tokens count as cached tokens", () => {
    const u = { prompt_tokens: 50, completion_tokens: 7, total_tokens: 57, prompt_cache_hit_tokens: 32, prompt_cache_miss_tokens: 18 };
    assert.deepEqual(fromUsage(u), { promptTokens: 50, completionTokens: 7, cachedTokens: 32, cacheWriteTokens: 0, reasoningTokens: 0, raw: u });
  });

  test('prompt_tokens_details.cached_tokens wins over prompt_cache_hit_tokens; details without cached_tokens fall back to it', () => {
    assert.equal(fromUsage({ prompt_tokens: 50, completion_tokens: 1, prompt_tokens_details: { cached_tokens: 40 }, prompt_cache_hit_tokens: 32 })?.cachedTokens, 40);
    assert.equal(fromUsage({ prompt_tokens: 50, completion_tokens: 1, prompt_tokens_details: {}, prompt_cache_hit_tokens: 32 })?.cachedTokens, 32);
    assert.equal(fromUsage({ prompt_tokens: 50, completion_tokens: 1, prompt_tokens_details: null, prompt_cache_hit_tokens: 32 })?.cachedTokens, 32);
  });

  test('a count that is present but not a number is NaN (billing decides), not a silent 0', () => {
    const u = JSON.parse(
      '{"prompt_tokens":"12","completion_tokens":{"n":3},"prompt_tokens_details":{"cached_tokens":"4"},"completion_tokens_details":{"reasoning_tokens":true}}',
    ) as OpenAIUsage;
    assert.deepEqual(fromUsage(u), {
      promptTokens: Number.NaN,
      completionTokens: Number.NaN,
      cachedTokens: Number.NaN,
      cacheWriteTokens: 0,
      reasoningTokens: Number.NaN,
      raw: u,
    });
  });

  test('a missing detail or completion count is 0 (embeddings report none); a missing or null prompt count, or a null completion count, is NaN (billing counts instead of charging 0)', () => {
    const details = { prompt_tokens: 4, completion_tokens: 9 };
    assert.deepEqual(fromUsage(details), { promptTokens: 4, completionTokens: 9, cachedTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0, raw: details });
    const u = { completion_tokens: 9 };
    assert.deepEqual(fromUsage(u), { promptTokens: Number.NaN, completionTokens: 9, cachedTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0, raw: u });
    const embeddings = { prompt_tokens: 8, total_tokens: 8 };
    assert.deepEqual(fromUsage(embeddings), { promptTokens: 8, completionTokens: 0, cachedTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0, raw: embeddings });
    const n = { prompt_tokens: 5, completion_tokens: null };
    assert.deepEqual(fromUsage(n as unknown as OpenAIUsage), { promptTokens: 5, completionTokens: Number.NaN, cachedTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0, raw: n });
    assert.equal(fromUsage({ prompt_tokens: null, completion_tokens: null } as unknown as OpenAIUsage), null);
  });

  test('no usage is null: absent, null, not an object, or without either count', () => {
    const none: unknown[] = [undefined, null, 5, 'usage', [], {}, { total_tokens: 10 }];
    assert.deepEqual(
      none.map((u) => fromUsage(u as OpenAIUsage)),
      none.map(() => null),
    );
  });
});

describe('fromFinishReason', () => {
  test("OpenAI's reasons, the legacy function_call, and anything unknown as stop", () => {
    const reasons: unknown[] = ['stop', 'length', 'tool_calls', 'function_call', 'content_filter', 'eos', 'end_turn', null, undefined, 3];
    assert.deepEqual(reasons.map(fromFinishReason), ['stop', 'length', 'tool_calls', 'tool_calls', 'content_filter', 'stop', 'stop', 'stop', 'stop', 'stop']);
  });
});

describe('fromCompletion', () => {
  test('an OpenAI completion: unknown top-level fields in extra, unknown message fields in the choice extra, logprobs kept', () => {
    const logprobs = { content: [{ token: 'Hi', logprob: -0.01, bytes: [72, 105], top_logprobs: [] }], refusal: null };
    const usage = { prompt_tokens: 9, completion_tokens: 1, total_tokens: 10, prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 } };
    const body = {
      id: ID,
      object: 'chat.completion',
      created: CREATED,
      model: 'gpt-4o-2024-08-06',
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: 'Hi', refusal: null, annotations: [{ type: 'url_citation', url_citation: { url: 'https://x.test' } }] },
          logprobs,
          finish_reason: 'stop',
        },
      ],
      usage,
      system_fingerprint: 'fp_50cad350e4',
      service_tier: 'default',
    };
    assert.deepEqual(fromCompletion(body), {
      id: ID,
      created: CREATED,
      choices: [
        {
          index: 0,
          content: 'Hi',
          finishReason: 'stop',
          logprobs,
          extra: { annotations: [{ type: 'url_citation', url_citation: { url: 'https://x.test' } }] },
        },
      ],
      usage: { promptTokens: 9, completionTokens: 1, cachedTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0, raw: usage },
      extra: { system_fingerprint: 'fp_50cad350e4', service_tier: 'default' },
    });
  });

  test('tool calls, reasoning_content and a refusal; no usage is null and no extras means no extra key', () => {
    const body = {
      id: ID,
      created: CREATED,
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: null,
            reasoning_content: 'Need the weather.',
            tool_calls: [
              { id: 'call_1', type: 'function', function: { name: 'weather', arguments: '{"city":"Paris"}' } },
              { id: 'call_2', type: 'function', function: { name: 'time', arguments: '{}' } },
            ],
          },
          finish_reason: 'tool_calls',
        },
        { index: 1, message: { role: 'assistant', content: null, refusal: 'I cannot help with that.' }, finish_reason: 'stop' },
      ],
    };
    assert.deepEqual(fromCompletion(body), {
      id: ID,
      created: CREATED,
      choices: [
        {
          index: 0,
          content: null,
          finishReason: 'tool_calls',
          reasoning: [{ text: 'Need the weather.' }],
          toolCalls: [
            { id: 'call_1', name: 'weather', arguments: '{"city":"Paris"}' },
            { id: 'call_2', name: 'time', arguments: '{}' },
          ],
        },
        { index: 1, content: null, finishReason: 'stop', refusal: 'I cannot help with that.' },
      ],
      usage: null,
    });
  });

  test('reasoning under `reasoning` (vLLM, OpenRouter) is reasoning too; an empty one is none', () => {
    const withReasoning = fromCompletion({ id: ID, created: CREATED, choices: [{ message: { content: '4', reasoning: '2+2' }, finish_reason: 'stop' }] });
    assert.deepEqual(withReasoning.choices, [{ index: 0, content: '4', finishReason: 'stop', reasoning: [{ text: '2+2' }] }]);
    const empty = fromCompletion({ id: ID, created: CREATED, choices: [{ message: { content: '4', reasoning_content: '' }, finish_reason: 'stop' }] });
    assert.deepEqual(empty.choices, [{ index: 0, content: '4', finishReason: 'stop' }]);
  });

  test('the legacy function_call is a tool call with a made id, and finish_reason function_call is tool_calls', () => {
    const body = {
      id: ID,
      created: CREATED,
      choices: [{ index: 0, message: { role: 'assistant', content: null, function_call: { name: 'weather', arguments: '{"city":"Oslo"}' } }, finish_reason: 'function_call' }],
    };
    assert.deepEqual(fromCompletion(body).choices, [
      { index: 0, content: null, finishReason: 'tool_calls', toolCalls: [{ id: 'call_0', name: 'weather', arguments: '{"city":"Oslo"}' }] },
    ]);
  });

  test('arguments sent as an object (some servers) become JSON text; a choice without index takes its position', () => {
    const body = JSON.parse(
      '{"id":"x","created":1,"choices":[{"message":{"content":"a"},"finish_reason":"stop"},{"message":{"content":null,"tool_calls":[{"id":"c","function":{"name":"f","arguments":{"a":1}}}]},"finish_reason":"tool_calls"}]}',
    ) as Parameters<typeof fromCompletion>[0];
    assert.deepEqual(fromCompletion(body).choices, [
      { index: 0, content: 'a', finishReason: 'stop' },
      { index: 1, content: null, finishReason: 'tool_calls', toolCalls: [{ id: 'c', name: 'f', arguments: '{"a":1}' }] },
    ]);
  });
});

describe('ChunkReader', () => {
  test('a text stream: start first with system_fingerprint in extra, the empty role delta emits nothing, usage from the final chunk with no choices', () => {
    const usage = { prompt_tokens: 8, completion_tokens: 2, total_tokens: 10, prompt_tokens_details: { cached_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0 } };
    const fp = { system_fingerprint: 'fp_44709d6fcb' };
    const events = read([
      chunk([{ index: 0, delta: { role: 'assistant', content: '', refusal: null }, logprobs: null, finish_reason: null }], { ...fp, usage: null }),
      chunk([{ index: 0, delta: { content: 'Hel' }, logprobs: null, finish_reason: null }], { ...fp, usage: null }),
      chunk([{ index: 0, delta: { content: 'lo' }, logprobs: null, finish_reason: null }], { ...fp, usage: null }),
      chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }], { ...fp, usage: null }),
      chunk([], { ...fp, usage }),
    ]);
    assert.deepEqual(events, [
      { type: 'start', id: ID, created: CREATED, extra: { system_fingerprint: 'fp_44709d6fcb' } },
      { type: 'text', choice: 0, text: 'Hel' },
      { type: 'text', choice: 0, text: 'lo' },
      { type: 'finish', choice: 0, reason: 'stop' },
      { type: 'usage', usage: { promptTokens: 8, completionTokens: 2, cachedTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0, raw: usage } },
    ]);
  });

  test('start comes once, before anything else, even when the first chunk already carries text; a null fingerprint is no extra', () => {
    const events = read([
      chunk([{ index: 0, delta: { role: 'assistant', content: 'Hi' }, finish_reason: null }], { system_fingerprint: null }),
      chunk([{ index: 0, delta: { content: '!' }, finish_reason: 'stop' }], { system_fingerprint: null }),
    ]);
    assert.deepEqual(events, [START, { type: 'text', choice: 0, text: 'Hi' }, { type: 'text', choice: 0, text: '!' }, { type: 'finish', choice: 0, reason: 'stop' }]);
  });

  test('two parallel tool calls in the standard shape: index/id/name first, then argument pieces with index only', () => {
    const events = read([
      chunk([{ index: 0, delta: { role: 'assistant', content: null, tool_calls: [{ index: 0, id: 'call_a', type: 'function', function: { name: 'weather', arguments: '' } }] }, finish_reason: null }]),
      chunk([{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: '{"city":' } }] }, finish_reason: null }]),
      chunk([{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: '"Paris"}' } }] }, finish_reason: null }]),
      chunk([{ index: 0, delta: { tool_calls: [{ index: 1, id: 'call_b', type: 'function', function: { name: 'time', arguments: '' } }] }, finish_reason: null }]),
      chunk([{ index: 0, delta: { tool_calls: [{ index: 1, function: { arguments: '{"tz":"CET"}' } }] }, finish_reason: null }]),
      chunk([{ index: 0, delta: {}, finish_reason: 'tool_calls' }]),
    ]);
    assert.deepEqual(events, [
      START,
      { type: 'tool_call_start', choice: 0, index: 0, id: 'call_a', name: 'weather' },
      { type: 'tool_call_delta', choice: 0, index: 0, arguments: '{"city":' },
      { type: 'tool_call_delta', choice: 0, index: 0, arguments: '"Paris"}' },
      { type: 'tool_call_start', choice: 0, index: 1, id: 'call_b', name: 'time' },
      { type: 'tool_call_delta', choice: 0, index: 1, arguments: '{"tz":"CET"}' },
      { type: 'finish', choice: 0, reason: 'tool_calls' },
    ]);
  });

  test('argument pieces of two calls interleaved by index go to their own calls', () => {
    const events = read([
      chunk([
        {
          index: 0,
          delta: {
            tool_calls: [
              { index: 0, id: 'call_a', function: { name: 'f', arguments: '{"a":' } },
              { index: 1, id: 'call_b', function: { name: 'g', arguments: '{"b":' } },
            ],
          },
        },
      ]),
      chunk([{ index: 0, delta: { tool_calls: [{ index: 1, function: { arguments: '2}' } }] } }]),
      chunk([{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: '1}' } }] }, finish_reason: 'tool_calls' }]),
    ]);
    assert.deepEqual(events, [
      START,
      { type: 'tool_call_start', choice: 0, index: 0, id: 'call_a', name: 'f' },
      { type: 'tool_call_delta', choice: 0, index: 0, arguments: '{"a":' },
      { type: 'tool_call_start', choice: 0, index: 1, id: 'call_b', name: 'g' },
      { type: 'tool_call_delta', choice: 0, index: 1, arguments: '{"b":' },
      { type: 'tool_call_delta', choice: 0, index: 1, arguments: '2}' },
      { type: 'tool_call_delta', choice: 0, index: 0, arguments: '1}' },
      { type: 'finish', choice: 0, reason: 'tool_calls' },
    ]);
  });

  test('a server that omits index: each new id is a new call, pieces without id go to the last one', () => {
    const events = read([
      chunk([{ index: 0, delta: { tool_calls: [{ id: 'call_a', type: 'function', function: { name: 'weather', arguments: '{"city":' } }] } }]),
      chunk([{ index: 0, delta: { tool_calls: [{ function: { arguments: '"Rome"}' } }] } }]),
      chunk([{ index: 0, delta: { tool_calls: [{ id: 'call_b', type: 'function', function: { name: 'time', arguments: '{}' } }] } }]),
      chunk([{ index: 0, delta: {}, finish_reason: 'tool_calls' }]),
    ]);
    assert.deepEqual(events, [
      START,
      { type: 'tool_call_start', choice: 0, index: 0, id: 'call_a', name: 'weather' },
      { type: 'tool_call_delta', choice: 0, index: 0, arguments: '{"city":' },
      { type: 'tool_call_delta', choice: 0, index: 0, arguments: '"Rome"}' },
      { type: 'tool_call_start', choice: 0, index: 1, id: 'call_b', name: 'time' },
      { type: 'tool_call_delta', choice: 0, index: 1, arguments: '{}' },
      { type: 'finish', choice: 0, reason: 'tool_calls' },
    ]);
  });

  test('a server that sends every call at index 0 with a new id: the calls are renumbered 0, 1', () => {
    const events = read([
      chunk([{ index: 0, delta: { tool_calls: [{ index: 0, id: 'call_a', type: 'function', function: { name: 'weather', arguments: '' } }] } }]),
      chunk([{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: '{"city":"Paris"}' } }] } }]),
      chunk([{ index: 0, delta: { tool_calls: [{ index: 0, id: 'call_b', type: 'function', function: { name: 'weather', arguments: '' } }] } }]),
      chunk([{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: '{"city":"Oslo"}' } }] } }]),
      chunk([{ index: 0, delta: {}, finish_reason: 'tool_calls' }]),
    ]);
    assert.deepEqual(events, [
      START,
      { type: 'tool_call_start', choice: 0, index: 0, id: 'call_a', name: 'weather' },
      { type: 'tool_call_delta', choice: 0, index: 0, arguments: '{"city":"Paris"}' },
      { type: 'tool_call_start', choice: 0, index: 1, id: 'call_b', name: 'weather' },
      { type: 'tool_call_delta', choice: 0, index: 1, arguments: '{"city":"Oslo"}' },
      { type: 'finish', choice: 0, reason: 'tool_calls' },
    ]);
  });

  test('a continuation with neither id nor name (nor index) belongs to the last call started', () => {
    const events = read([
      chunk([{ index: 0, delta: { tool_calls: [{ index: 0, id: 'call_a', function: { name: 'f', arguments: '' } }] } }]),
      chunk([{ index: 0, delta: { tool_calls: [{ index: 1, id: 'call_b', function: { name: 'g', arguments: '' } }] } }]),
      chunk([{ index: 0, delta: { tool_calls: [{ function: { arguments: '{"x":1}' } }] } }]),
      JSON.parse(`{"id":"${ID}","created":${CREATED},"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":null,"type":null,"function":{"name":null,"arguments":"{}"}}]}}]}`) as OpenAIChunk,
    ]);
    assert.deepEqual(events, [
      START,
      { type: 'tool_call_start', choice: 0, index: 0, id: 'call_a', name: 'f' },
      { type: 'tool_call_start', choice: 0, index: 1, id: 'call_b', name: 'g' },
      { type: 'tool_call_delta', choice: 0, index: 1, arguments: '{"x":1}' },
      // Explicit nulls (some gateways send them) are no id and no name: a continuation of call 0.
      { type: 'tool_call_delta', choice: 0, index: 0, arguments: '{}' },
    ]);
  });

  test('a whole call in one piece, id repeated on a later piece: one call', () => {
    const events = read([
      chunk([{ index: 0, delta: { tool_calls: [{ index: 0, id: 'call_a', function: { name: 'f', arguments: '{"a":' } }] } }]),
      chunk([{ index: 0, delta: { tool_calls: [{ index: 0, id: 'call_a', function: { arguments: '1}' } }] } }]),
    ]);
    assert.deepEqual(events, [
      START,
      { type: 'tool_call_start', choice: 0, index: 0, id: 'call_a', name: 'f' },
      { type: 'tool_call_delta', choice: 0, index: 0, arguments: '{"a":' },
      { type: 'tool_call_delta', choice: 0, index: 0, arguments: '1}' },
    ]);
  });

  test('a call without an id gets call_<our index>', () => {
    const events = read([chunk([{ index: 0, delta: { tool_calls: [{ index: 0, function: { name: 'f', arguments: '{}' } }] }, finish_reason: 'tool_calls' }])]);
    assert.deepEqual(events, [
      START,
      { type: 'tool_call_start', choice: 0, index: 0, id: 'call_0', name: 'f' },
      { type: 'tool_call_delta', choice: 0, index: 0, arguments: '{}' },
      { type: 'finish', choice: 0, reason: 'tool_calls' },
    ]);
  });

  test('tool calls are numbered per choice: each choice starts at 0', () => {
    const events = read([
      chunk([
        { index: 0, delta: { tool_calls: [{ index: 0, id: 'a0', function: { name: 'f', arguments: '{}' } }] } },
        { index: 1, delta: { tool_calls: [{ index: 0, id: 'b0', function: { name: 'g', arguments: '{}' } }] } },
      ]),
      chunk([{ index: 1, delta: { tool_calls: [{ index: 1, id: 'b1', function: { name: 'h', arguments: '' } }] }, finish_reason: 'tool_calls' }]),
      chunk([{ index: 0, delta: {}, finish_reason: 'tool_calls' }]),
    ]);
    assert.deepEqual(events, [
      START,
      { type: 'tool_call_start', choice: 0, index: 0, id: 'a0', name: 'f' },
      { type: 'tool_call_delta', choice: 0, index: 0, arguments: '{}' },
      { type: 'tool_call_start', choice: 1, index: 0, id: 'b0', name: 'g' },
      { type: 'tool_call_delta', choice: 1, index: 0, arguments: '{}' },
      { type: 'tool_call_start', choice: 1, index: 1, id: 'b1', name: 'h' },
      { type: 'finish', choice: 1, reason: 'tool_calls' },
      { type: 'finish', choice: 0, reason: 'tool_calls' },
    ]);
  });

  test('the legacy function_call delta is tool call 0, and its finish reason is tool_calls', () => {
    const events = read([
      chunk([{ index: 0, delta: { role: 'assistant', content: null, function_call: { name: 'weather', arguments: '' } } }]),
      chunk([{ index: 0, delta: { function_call: { arguments: '{"city":"Oslo"}' } } }]),
      chunk([{ index: 0, delta: {}, finish_reason: 'function_call' }]),
    ]);
    assert.deepEqual(events, [
      START,
      { type: 'tool_call_start', choice: 0, index: 0, id: 'call_0', name: 'weather' },
      { type: 'tool_call_delta', choice: 0, index: 0, arguments: '{"city":"Oslo"}' },
      { type: 'finish', choice: 0, reason: 'tool_calls' },
    ]);
  });

  test('reasoning from reasoning_content (DeepSeek) and from reasoning (vLLM, OpenRouter), empty pieces dropped', () => {
    const events = read([
      chunk([{ index: 0, delta: { role: 'assistant', content: null, reasoning_content: '' } }]),
      chunk([{ index: 0, delta: { content: null, reasoning_content: 'First, ' } }]),
      chunk([{ index: 0, delta: { content: null, reasoning: 'add.' } }]),
      chunk([{ index: 0, delta: { content: '4', reasoning_content: null } }]),
      chunk([{ index: 0, delta: { content: '' }, finish_reason: 'stop' }]),
    ]);
    assert.deepEqual(events, [
      START,
      { type: 'reasoning', choice: 0, text: 'First, ' },
      { type: 'reasoning', choice: 0, text: 'add.' },
      { type: 'text', choice: 0, text: '4' },
      { type: 'finish', choice: 0, reason: 'stop' },
    ]);
  });

  test('refusal deltas are refusal events; a content filter stop is content_filter', () => {
    const events = read([
      chunk([{ index: 0, delta: { role: 'assistant', content: null, refusal: '' } }]),
      chunk([{ index: 0, delta: { refusal: "I'm sorry, " } }]),
      chunk([{ index: 0, delta: { refusal: 'I cannot help.' } }]),
      chunk([{ index: 0, delta: {}, finish_reason: 'content_filter' }]),
    ]);
    assert.deepEqual(events, [
      START,
      { type: 'refusal', choice: 0, text: "I'm sorry, " },
      { type: 'refusal', choice: 0, text: 'I cannot help.' },
      { type: 'finish', choice: 0, reason: 'content_filter' },
    ]);
  });

  test('logprobs ride on their text events', () => {
    const lp = { content: [{ token: 'Hi', logprob: -0.2, bytes: [72, 105], top_logprobs: [] }], refusal: null };
    const events = read([chunk([{ index: 0, delta: { content: 'Hi' }, logprobs: lp, finish_reason: null }]), chunk([{ index: 0, delta: { content: '!' }, logprobs: null, finish_reason: 'length' }])]);
    assert.deepEqual(events, [START, { type: 'text', choice: 0, text: 'Hi', logprobs: lp }, { type: 'text', choice: 0, text: '!' }, { type: 'finish', choice: 0, reason: 'length' }]);
  });

  test('finish reasons: function_call is tool_calls, an unknown one is stop; `finished` is set by the first', () => {
    const reader = new ChunkReader();
    const out: StreamEvent[] = [];
    reader.read(chunk([{ index: 0, delta: { content: 'a' } }, { index: 1, delta: { content: 'b' } }]), out);
    assert.equal(reader.finished, false);
    reader.read(chunk([{ index: 0, delta: {}, finish_reason: 'function_call' }]), out);
    assert.equal(reader.finished, true);
    reader.read(chunk([{ index: 1, delta: {}, finish_reason: 'eos_token' }]), out);
    assert.deepEqual(out, [
      START,
      { type: 'text', choice: 0, text: 'a' },
      { type: 'text', choice: 1, text: 'b' },
      { type: 'finish', choice: 0, reason: 'tool_calls' },
      { type: 'finish', choice: 1, reason: 'stop' },
    ]);
  });

  test('usage in the same chunk as the finish (vLLM, Groq) comes after the finish; DeepSeek cache hits counted; raw kept', () => {
    const usage = { prompt_tokens: 30, completion_tokens: 3, total_tokens: 33, prompt_cache_hit_tokens: 24, prompt_cache_miss_tokens: 6 };
    const events = read([chunk([{ index: 0, delta: { content: 'ok' }, finish_reason: 'stop' }], { usage })]);
    assert.deepEqual(events, [
      START,
      { type: 'text', choice: 0, text: 'ok' },
      { type: 'finish', choice: 0, reason: 'stop' },
      { type: 'usage', usage: { promptTokens: 30, completionTokens: 3, cachedTokens: 24, cacheWriteTokens: 0, reasoningTokens: 0, raw: usage } },
    ]);
  });

  test('a usage chunk with a non-numeric count gives NaN and a missing one 0, as reported', () => {
    const usage = JSON.parse('{"prompt_tokens":"many","completion_tokens":5}') as OpenAIUsage;
    const events = read([chunk([{ index: 0, delta: {}, finish_reason: 'stop' }]), chunk([], { usage })]);
    assert.deepEqual(events, [
      START,
      { type: 'finish', choice: 0, reason: 'stop' },
      { type: 'usage', usage: { promptTokens: Number.NaN, completionTokens: 5, cachedTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0, raw: usage } },
    ]);
  });

  test('a chunk without id or created still starts the stream, with the gateway id and the current time', () => {
    const before = Math.floor(Date.now() / 1000);
    const events = read([{ choices: [{ index: 0, delta: { content: 'x' } }] }]);
    const after = Math.floor(Date.now() / 1000);
    const start = events[0];
    assert.ok(start?.type === 'start');
    assert.equal(start.id, 'chatcmpl-token360');
    assert.ok(start.created >= before && start.created <= after, `created ${start.created} not in [${before}, ${after}]`);
    assert.deepEqual(events.slice(1), [{ type: 'text', choice: 0, text: 'x' }]);
  });
});

describe('toChatBody', () => {
  const client: JsonObject = {
    model: 'cat-model',
    messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: 'AAA=', format: 'wav' } }] }],
    max_tokens: 500,
    logit_bias: { '50256': -100 },
    modalities: ['text'],
    stream: true,
    stream_options: { include_usage: false, include_obfuscation: false },
  };

  test('an openai-chat client body passes through but for model, the cap in max_tokens, and include_usage forced on streams', () => {
    const original = structuredClone(client);
    const body = toChatBody(call(request({ source: { protocol: 'openai-chat', body: client } }), 300), true);
    assert.deepEqual(body, {
      model: 'gpt-4o-2024-08-06',
      messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: 'AAA=', format: 'wav' } }] }],
      max_tokens: 300,
      logit_bias: { '50256': -100 },
      modalities: ['text'],
      stream: true,
      stream_options: { include_usage: true, include_obfuscation: false },
    });
    assert.deepEqual(client, original, "the client's body is not changed");
  });

  test('max_completion_tokens stays that name when the client used it', () => {
    const src = { model: 'cat-model', messages: [{ role: 'user', content: 'hi' }], max_completion_tokens: 4000, reasoning_effort: 'low' };
    const body = toChatBody(call(request({ source: { protocol: 'openai-chat', body: src } }), 1200), false);
    assert.deepEqual(body, { model: 'gpt-4o-2024-08-06', messages: [{ role: 'user', content: 'hi' }], max_completion_tokens: 1200, reasoning_effort: 'low' });
  });

  test('not streamed: stream and stream_options removed; no gateway cap leaves the body without one', () => {
    const { max_tokens: _cap, ...uncapped } = client;
    const body = toChatBody(call(request({ source: { protocol: 'openai-chat', body: uncapped } }), null), false);
    assert.deepEqual(body, {
      model: 'gpt-4o-2024-08-06',
      messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: 'AAA=', format: 'wav' } }] }],
      logit_bias: { '50256': -100 },
      modalities: ['text'],
    });
  });

  test('a streamed body with no or a non-object stream_options gets { include_usage: true }', () => {
    const src = { model: 'm', messages: [], stream: true, stream_options: null };
    assert.deepEqual(toChatBody(call(request({ source: { protocol: 'openai-chat', body: src } }), null), true), {
      model: 'gpt-4o-2024-08-06',
      messages: [],
      stream: true,
      stream_options: { include_usage: true },
    });
    assert.deepEqual(toChatBody(call(request(), null), true), {
      model: 'gpt-4o-2024-08-06',
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
      stream_options: { include_usage: true },
    });
  });

  test("another protocol's source is not passed through: the body is written from the typed form", () => {
    const req = request({ temperature: 0.5, source: { protocol: 'anthropic-messages', body: { model: 'cat-model', max_tokens: 100, system: 'x', messages: [] } } });
    assert.deepEqual(toChatBody(call(req, 100), false), {
      model: 'gpt-4o-2024-08-06',
      messages: [{ role: 'user', content: 'hi' }],
      temperature: 0.5,
      max_tokens: 100,
    });
  });
});

describe('fromTyped', () => {
  test("every message role in OpenAI's shapes: images on user turns, tool calls and reasoning on assistant turns, tool results", () => {
    const req = request({
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'developer', content: [{ type: 'text', text: 'Use ' }, { type: 'text', text: 'metric.' }] },
        {
          role: 'user',
          name: 'ann',
          content: [
            { type: 'text', text: 'What is this?' },
            { type: 'image', url: 'https://img.test/a.png', detail: 'high' },
            { type: 'image', url: 'data:image/png;base64,iVBORw0KGgo=' },
          ],
        },
        {
          role: 'assistant',
          content: null,
          reasoning: [{ text: 'Look it up. ', signature: 'sig' }, { text: 'Then answer.' }],
          toolCalls: [
            { id: 'call_1', name: 'lookup', arguments: '{"q":"png"}' },
            { id: 'call_2', name: 'now', arguments: '{}' },
          ],
        },
        { role: 'tool', toolCallId: 'call_1', content: 'A PNG image.' },
        { role: 'tool', toolCallId: 'call_2', content: [{ type: 'text', text: '12:00' }] },
        { role: 'assistant', content: [{ type: 'text', text: 'A ' }, { type: 'text', text: 'logo.' }], refusal: 'no', name: 'bot' },
        { role: 'user', content: 'Thanks' },
      ],
    });
    assert.deepEqual(fromTyped(req), {
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'developer', content: 'Use metric.' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'What is this?' },
            { type: 'image_url', image_url: { url: 'https://img.test/a.png', detail: 'high' } },
            { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
          ],
          name: 'ann',
        },
        {
          role: 'assistant',
          content: null,
          tool_calls: [
            { id: 'call_1', type: 'function', function: { name: 'lookup', arguments: '{"q":"png"}' } },
            { id: 'call_2', type: 'function', function: { name: 'now', arguments: '{}' } },
          ],
          reasoning_content: 'Look it up. Then answer.',
        },
        { role: 'tool', tool_call_id: 'call_1', content: 'A PNG image.' },
        { role: 'tool', tool_call_id: 'call_2', content: '12:00' },
        { role: 'assistant', content: 'A logo.', refusal: 'no', name: 'bot' },
        { role: 'user', content: 'Thanks' },
      ],
    });
  });

  test('tools with and without parameters, a named tool_choice, parallel_tool_calls and a json_schema response format', () => {
    const params = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false };
    const req = request({
      tools: [{ name: 'weather', description: 'Weather by city', parameters: params, strict: true }, { name: 'now' }],
      toolChoice: { name: 'weather' },
      parallelToolCalls: false,
      responseFormat: { type: 'json_schema', name: 'answer', schema: { type: 'object' }, strict: true, description: 'The answer' },
    });
    assert.deepEqual(fromTyped(req), {
      messages: [{ role: 'user', content: 'hi' }],
      tools: [
        { type: 'function', function: { name: 'weather', description: 'Weather by city', parameters: params, strict: true } },
        { type: 'function', function: { name: 'now' } },
      ],
      tool_choice: { type: 'function', function: { name: 'weather' } },
      parallel_tool_calls: false,
      response_format: { type: 'json_schema', json_schema: { name: 'answer', schema: { type: 'object' }, strict: true, description: 'The answer' } },
    });
  });

  test('tool_choice auto, required and none are the strings', () => {
    assert.deepEqual(
      (['auto', 'required', 'none'] as const).map((c) => fromTyped(request({ toolChoice: c }))['tool_choice']),
      ['auto', 'required', 'none'],
    );
  });

  test('the sampling parameters, n, user and reasoning effort; json_object and text formats; extra passed through', () => {
    const req = request({
      n: 3,
      temperature: 0.2,
      topP: 0.9,
      stop: ['END', '###'],
      seed: 7,
      user: 'u-42',
      reasoningEffort: 'high',
      responseFormat: { type: 'json_object' },
      extra: { logit_bias: { '1': 5 }, store: true, metadata: { team: 'a' } },
    });
    assert.deepEqual(fromTyped(req), {
      logit_bias: { '1': 5 },
      store: true,
      metadata: { team: 'a' },
      messages: [{ role: 'user', content: 'hi' }],
      n: 3,
      temperature: 0.2,
      top_p: 0.9,
      stop: ['END', '###'],
      seed: 7,
      user: 'u-42',
      reasoning_effort: 'high',
      response_format: { type: 'json_object' },
    });
    assert.deepEqual(fromTyped(request({ responseFormat: { type: 'text' } }))['response_format'], { type: 'text' });
  });

  test('a json_schema format without strict or description has neither key', () => {
    assert.deepEqual(fromTyped(request({ responseFormat: { type: 'json_schema', name: 'r', schema: {} } }))['response_format'], {
      type: 'json_schema',
      json_schema: { name: 'r', schema: {} },
    });
  });

  test('system and tool turns take no images in OpenAI: their image parts are dropped, the text kept', () => {
    const req = request({
      messages: [
        { role: 'system', content: [{ type: 'text', text: 'See ' }, { type: 'image', url: 'https://img.test/s.png' }, { type: 'text', text: 'this.' }] },
        { role: 'tool', toolCallId: 'c', content: [{ type: 'image', url: 'https://img.test/t.png' }] },
      ],
    });
    assert.deepEqual(fromTyped(req)['messages'], [
      { role: 'system', content: 'See this.' },
      { role: 'tool', tool_call_id: 'c', content: '' },
    ]);
  });
});

describe('ChunkReader: what OpenAI-compatible servers send that OpenAI does not', () => {
  const read = (chunks: OpenAIChunk[]): StreamEvent[] => {
    const r = new ChunkReader();
    const out: StreamEvent[] = [];
    for (const c of chunks) r.read(c, out);
    return out.filter((e) => e.type !== 'start');
  };

  test('an empty id on continuation pieces (DashScope) continues the call', () => {
    const events = read([
      { choices: [{ index: 0, delta: { tool_calls: [{ id: 'call_a1', index: 0, function: { name: 'bash', arguments: '' } }] } }] },
      { choices: [{ index: 0, delta: { tool_calls: [{ id: '', index: 0, function: { arguments: '{"command": ' } }] } }] },
      { choices: [{ index: 0, delta: { tool_calls: [{ id: '', index: 0, function: { arguments: '"ls"}' } }] } }] },
    ]);
    assert.deepEqual(events, [
      { type: 'tool_call_start', choice: 0, index: 0, id: 'call_a1', name: 'bash' },
      { type: 'tool_call_delta', choice: 0, index: 0, arguments: '{"command": ' },
      { type: 'tool_call_delta', choice: 0, index: 0, arguments: '"ls"}' },
    ]);
  });

  test('a continuation that repeats the name without an id (vLLM forks) continues the call', () => {
    const events = read([
      { choices: [{ index: 0, delta: { tool_calls: [{ index: 0, id: 'call_a1', function: { name: 'bash', arguments: '' } }] } }] },
      { choices: [{ index: 0, delta: { tool_calls: [{ index: 0, function: { name: 'bash', arguments: '{}' } }] } }] },
    ]);
    assert.deepEqual(events, [
      { type: 'tool_call_start', choice: 0, index: 0, id: 'call_a1', name: 'bash' },
      { type: 'tool_call_delta', choice: 0, index: 0, arguments: '{}' },
    ]);
  });

  test('finish_reason "" on every piece (older Ollama, sglang) is no finish, and a stream cut after it is not whole', () => {
    const r = new ChunkReader();
    const out: StreamEvent[] = [];
    r.read({ choices: [{ index: 0, delta: { content: ' Hello' }, finish_reason: '' }] }, out);
    r.read({ choices: [{ index: 0, delta: { content: ' there' }, finish_reason: '' }] }, out);
    assert.equal(r.finished, false);
    r.read({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }, out);
    assert.deepEqual(
      out.filter((e) => e.type !== 'start'),
      [
        { type: 'text', choice: 0, text: ' Hello' },
        { type: 'text', choice: 0, text: ' there' },
        { type: 'finish', choice: 0, reason: 'stop' },
      ],
    );
    assert.equal(r.finished, true);
  });
});

test('toChatBody: a client that sent both max_tokens and max_completion_tokens gets the cap in both', () => {
  const body = { model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 10000, max_completion_tokens: 10000 };
  const request = { model: 'm', messages: [], n: 1, stream: false, includeUsage: false, extra: {}, source: { protocol: 'openai-chat' as const, body } };
  const out = toChatBody({ request, upstreamModel: 'up', maxTokens: 50, signal: new AbortController().signal, trace: {} }, false);
  assert.equal(out['max_tokens'], 50);
  assert.equal(out['max_completion_tokens'], 50);
});
