// The OpenAI chat-completions client protocol's pure parts, no server: the body parser
// (src/protocols/openai-chat/parse.ts) and the answer and chunk encoders (encode.ts). The round
// trip property checks the thin-mapping promise of the typed form: an OpenAI body parsed and
// written back by the OpenAI provider says the same thing.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { ChunkEncoder, encodeChatResponse, openAIUsage } from '../src/protocols/openai-chat/encode.js';
import { parseChatRequest } from '../src/protocols/openai-chat/parse.js';
import { fromTyped } from '../src/providers/openai/to-provider.js';
import type { ChatRequest, ChatResponse, JsonObject, StreamEvent, Usage } from '../src/types/chat.js';

/** The body fields the typed form models (the output cap is the gateway's: validate-chat reads it). */
const TRANSLATED_KEYS = new Set([
  'model', 'messages', 'tools', 'tool_choice', 'parallel_tool_calls', 'n', 'temperature', 'top_p', 'stop', 'seed', 'user',
  'reasoning_effort', 'response_format', 'stream', 'stream_options', 'max_tokens', 'max_completion_tokens', 'functions', 'function_call',
]);
const BASE: ChatRequest = { model: 'gpt-x', messages: [], n: 1, stream: false, includeUsage: false, extra: {} };

describe('parseChatRequest', () => {
  test('every translated field, and the untranslated ones in extra', () => {
    const schema = { type: 'object', properties: { answer: { type: 'string' } } };
    const params = { type: 'object', properties: { city: { type: 'string' } } };
    const body: JsonObject = {
      model: 'gpt-x',
      messages: [{ role: 'user', content: 'hi' }],
      tools: [{ type: 'function', function: { name: 'weather', description: 'By city', parameters: params, strict: true } }],
      tool_choice: 'required',
      parallel_tool_calls: false,
      n: 2,
      temperature: 0.7,
      top_p: 0.5,
      stop: ['END', 7, 'STOP'],
      seed: 42,
      user: 'user-1',
      reasoning_effort: 'minimal',
      response_format: { type: 'json_schema', json_schema: { name: 'out', schema, strict: true, description: 'The output' } },
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: 100,
      max_completion_tokens: 200,
      logit_bias: { '50256': -100 },
      metadata: { team: 'a' },
      store: false,
      service_tier: 'flex',
      prediction: { type: 'content', content: 'x' },
      frequency_penalty: 0.1,
    };
    assert.deepEqual(parseChatRequest(body), {
      model: 'gpt-x',
      messages: [{ role: 'user', content: 'hi' }],
      n: 2,
      stream: true,
      includeUsage: true,
      tools: [{ name: 'weather', description: 'By city', parameters: params, strict: true }],
      toolChoice: 'required',
      parallelToolCalls: false,
      temperature: 0.7,
      topP: 0.5,
      stop: ['END', 'STOP'],
      seed: 42,
      user: 'user-1',
      reasoningEffort: 'minimal',
      responseFormat: { type: 'json_schema', name: 'out', schema, strict: true, description: 'The output' },
      extra: { logit_bias: { '50256': -100 }, metadata: { team: 'a' }, store: false, service_tier: 'flex', prediction: { type: 'content', content: 'x' }, frequency_penalty: 0.1 },
    });
  });

  test('the smallest body: defaults n 1, no stream, no usage, nothing optional', () => {
    assert.deepEqual(parseChatRequest({ model: 'gpt-x', messages: [{ role: 'user', content: 'hi' }] }), { ...BASE, messages: [{ role: 'user', content: 'hi' }] });
  });

  test('a stop string is a one-element list; include_usage needs stream_options to be an object with true', () => {
    assert.deepEqual(parseChatRequest({ model: 'm', messages: [], stop: '\n' }).stop, ['\n']);
    assert.equal(parseChatRequest({ model: 'm', messages: [], stream: true, stream_options: { include_usage: 'yes' } }).includeUsage, false);
    assert.equal(parseChatRequest({ model: 'm', messages: [], stream: 'true' }).stream, false);
  });

  test('tool_choice: the three strings and a named function; anything else none', () => {
    const choices: unknown[] = ['auto', 'none', 'required', { type: 'function', function: { name: 'f' } }, { type: 'function', name: 'g' }, 'any', { type: 'function' }, 3];
    assert.deepEqual(
      choices.map((c) => parseChatRequest({ model: 'm', messages: [], tool_choice: c }).toolChoice),
      ['auto', 'none', 'required', { name: 'f' }, { name: 'g' }, undefined, undefined, undefined],
    );
  });

  test('response formats: text, json_object, json_schema without name or schema; an unknown one is none', () => {
    const formats: unknown[] = [{ type: 'text' }, { type: 'json_object' }, { type: 'json_schema', json_schema: {} }, { type: 'json_schema' }, { type: 'xml' }, 'json'];
    assert.deepEqual(
      formats.map((f) => parseChatRequest({ model: 'm', messages: [], response_format: f }).responseFormat),
      [{ type: 'text' }, { type: 'json_object' }, { type: 'json_schema', name: 'response', schema: {} }, undefined, undefined, undefined],
    );
  });

  test('legacy functions and function_call: tools, choice, the assistant call and the function result', () => {
    const body: JsonObject = {
      model: 'm',
      messages: [
        { role: 'user', content: 'weather?' },
        { role: 'assistant', content: null, function_call: { name: 'weather', arguments: '{"city":"Oslo"}' } },
        { role: 'function', name: 'weather', content: '{"temp":3}' },
      ],
      functions: [{ name: 'weather', parameters: { type: 'object' } }, { name: 'noop' }],
      function_call: { name: 'weather' },
    };
    assert.deepEqual(parseChatRequest(body), {
      ...BASE,
      model: 'm',
      messages: [
        { role: 'user', content: 'weather?' },
        { role: 'assistant', content: null, toolCalls: [{ id: 'call_0', name: 'weather', arguments: '{"city":"Oslo"}' }] },
        { role: 'tool', toolCallId: 'weather', content: '{"temp":3}' },
      ],
      tools: [{ name: 'weather', parameters: { type: 'object' } }, { name: 'noop' }],
      toolChoice: { name: 'weather' },
    });
    assert.equal(parseChatRequest({ model: 'm', messages: [], function_call: 'none' }).toolChoice, 'none');
  });

  test('tools win over functions, and tool_choice over function_call', () => {
    const r = parseChatRequest({
      model: 'm',
      messages: [],
      tools: [{ type: 'function', function: { name: 'new' } }],
      functions: [{ name: 'old' }],
      tool_choice: 'auto',
      function_call: 'none',
    });
    assert.deepEqual([r.tools, r.toolChoice], [[{ name: 'new' }], 'auto']);
  });

  test('image parts with and without detail, a bare URL string, an unknown detail dropped, a part without URL skipped', () => {
    const body: JsonObject = {
      model: 'm',
      messages: [
        {
          role: 'user',
          name: 'ann',
          content: [
            { type: 'text', text: 'Compare:' },
            { type: 'image_url', image_url: { url: 'https://img.test/a.png', detail: 'low' } },
            { type: 'image_url', image_url: { url: 'data:image/jpeg;base64,/9j/4AAQ' } },
            { type: 'image_url', image_url: 'https://img.test/b.png' },
            { type: 'image_url', image_url: { url: 'https://img.test/c.png', detail: 'ultra' } },
            { type: 'image_url', image_url: {} },
            { type: 'input_audio', input_audio: { data: 'AAA=', format: 'wav' } },
            'stray',
          ],
        },
      ],
    };
    assert.deepEqual(parseChatRequest(body).messages, [
      {
        role: 'user',
        name: 'ann',
        content: [
          { type: 'text', text: 'Compare:' },
          { type: 'image', url: 'https://img.test/a.png', detail: 'low' },
          { type: 'image', url: 'data:image/jpeg;base64,/9j/4AAQ' },
          { type: 'image', url: 'https://img.test/b.png' },
          { type: 'image', url: 'https://img.test/c.png' },
        ],
      },
    ]);
  });

  test('assistant turns: tool calls, reasoning_content or reasoning, refusal, name; tool results with parts', () => {
    const body: JsonObject = {
      model: 'm',
      messages: [
        { role: 'system', content: [{ type: 'text', text: 'Be brief.' }] },
        { role: 'developer', content: 'Metric units.' },
        {
          role: 'assistant',
          content: '',
          name: 'bot',
          reasoning_content: 'Two calls.',
          tool_calls: [
            { id: 'call_1', type: 'function', function: { name: 'weather', arguments: '{"city":"Paris"}' } },
            { id: 'call_2', type: 'function', function: { name: 'time', arguments: { tz: 'CET' } } },
            { id: 'call_3', type: 'function' },
          ],
        },
        { role: 'tool', tool_call_id: 'call_1', content: [{ type: 'text', text: '18C' }] },
        { role: 'tool', tool_call_id: 'call_2', content: '12:00' },
        { role: 'assistant', content: [{ type: 'refusal', refusal: 'No.' }], refusal: 'No.', reasoning: 'Unsafe.' },
      ],
    };
    assert.deepEqual(parseChatRequest(body).messages, [
      { role: 'system', content: [{ type: 'text', text: 'Be brief.' }] },
      { role: 'developer', content: 'Metric units.' },
      {
        role: 'assistant',
        content: '',
        toolCalls: [
          { id: 'call_1', name: 'weather', arguments: '{"city":"Paris"}' },
          { id: 'call_2', name: 'time', arguments: '{"tz":"CET"}' },
        ],
        reasoning: [{ text: 'Two calls.' }],
        name: 'bot',
      },
      { role: 'tool', toolCallId: 'call_1', content: [{ type: 'text', text: '18C' }] },
      { role: 'tool', toolCallId: 'call_2', content: '12:00' },
      { role: 'assistant', content: [{ type: 'text', text: 'No.' }], reasoning: [{ text: 'Unsafe.' }], refusal: 'No.' },
    ]);
  });

  test('lenient on odd shapes: non-object messages skipped, unknown roles are user turns, odd content is empty, odd numbers ignored', () => {
    const body = JSON.parse(
      '{"model":5,"messages":[null,"hi",{"role":"narrator","content":"Once"},{"content":3},{"role":"assistant"},{"role":"tool","content":null}],"n":"2","temperature":"hot","seed":1.5,"reasoning_effort":"max","parallel_tool_calls":"yes","user":7,"tools":[null,{"type":"function"},{"function":{"name":9,"parameters":[],"strict":"y"}}]}',
    ) as JsonObject;
    assert.deepEqual(parseChatRequest(body), {
      model: '',
      messages: [
        { role: 'user', content: 'Once' },
        { role: 'user', content: '' },
        { role: 'assistant', content: null },
        { role: 'tool', toolCallId: '', content: '' },
      ],
      n: 1,
      stream: false,
      includeUsage: false,
      seed: 1.5,
      tools: [{ name: '' }],
      extra: {},
    });
  });

  test('never throws on any JSON object, and keeps every untranslated field in extra', () => {
    const known = ['model', 'messages', 'tools', 'tool_choice', 'functions', 'function_call', 'stop', 'response_format', 'stream_options', 'n', 'seed', 'logit_bias'];
    const anyMessage = fc.dictionary(fc.constantFrom('role', 'content', 'tool_calls', 'function_call', 'name', 'tool_call_id', 'reasoning', 'refusal'), fc.jsonValue({ maxDepth: 3 }), {
      maxKeys: 5,
    });
    const role = fc.constantFrom('system', 'developer', 'user', 'assistant', 'tool', 'function', 'other');
    const body = fc.record({
      top: fc.dictionary(fc.oneof(fc.constantFrom(...known), fc.string({ maxLength: 8 })), fc.jsonValue({ maxDepth: 4 }), { maxKeys: 8 }),
      messages: fc.array(fc.oneof(anyMessage, fc.tuple(role, anyMessage).map(([r, m]) => ({ ...m, role: r })), fc.jsonValue({ maxDepth: 2 })), { maxLength: 6 }),
      withMessages: fc.boolean(),
    });
    fc.assert(
      fc.property(body, ({ top, messages, withMessages }) => {
        // Round-tripped through JSON text, as a parsed request body would be.
        const b = JSON.parse(JSON.stringify(withMessages ? { ...top, messages } : top)) as JsonObject;
        const r = parseChatRequest(b);
        assert.ok(Array.isArray(r.messages));
        const untranslated = Object.fromEntries(Object.entries(b).filter(([k]) => !TRANSLATED_KEYS.has(k)));
        assert.deepEqual(r.extra, untranslated);
      }),
      { numRuns: 500 },
    );
  });
});

describe('openAIUsage', () => {
  test("OpenAI's shape with details; cache writes only when there are some", () => {
    const u: Usage = { promptTokens: 100, completionTokens: 20, cachedTokens: 60, cacheWriteTokens: 0, reasoningTokens: 5, raw: { x: 1 } };
    assert.deepEqual(openAIUsage(u), {
      prompt_tokens: 100,
      completion_tokens: 20,
      total_tokens: 120,
      prompt_tokens_details: { cached_tokens: 60 },
      completion_tokens_details: { reasoning_tokens: 5 },
    });
    assert.deepEqual(openAIUsage({ ...u, cacheWriteTokens: 30 }), {
      prompt_tokens: 100,
      completion_tokens: 20,
      total_tokens: 120,
      prompt_tokens_details: { cached_tokens: 60 },
      completion_tokens_details: { reasoning_tokens: 5 },
      cache_creation_input_tokens: 30,
    });
  });
});

describe('encodeChatResponse', () => {
  const usage = { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 };

  test('a chat.completion: the client model, logprobs, choice extras in the message, reasoning, tool calls, top-level extras', () => {
    const lp = { content: [{ token: 'Hi', logprob: -0.1, bytes: [72, 105], top_logprobs: [] }], refusal: null };
    const r: ChatResponse = {
      id: 'chatcmpl-1',
      created: 1_700_000_000,
      choices: [
        { index: 0, content: 'Hi', finishReason: 'stop', logprobs: lp, extra: { annotations: [] } },
        {
          index: 1,
          content: null,
          finishReason: 'tool_calls',
          reasoning: [{ text: 'Look ', signature: 's' }, { text: 'up.' }],
          toolCalls: [
            { id: 'call_1', name: 'weather', arguments: '{"city":"Paris"}' },
            { id: 'call_2', name: 'time', arguments: '{}' },
          ],
        },
        { index: 2, content: null, finishReason: 'content_filter', refusal: 'No.' },
      ],
      usage: null,
      // Fields the body has already are the gateway's: an extra must not replace them.
      extra: { system_fingerprint: 'fp_1', service_tier: 'default', model: 'upstream-name', id: 'other' },
    };
    assert.deepEqual(encodeChatResponse(r, 'gpt-x', usage), {
      id: 'chatcmpl-1',
      object: 'chat.completion',
      created: 1_700_000_000,
      model: 'gpt-x',
      choices: [
        { index: 0, message: { role: 'assistant', content: 'Hi', refusal: null, annotations: [] }, logprobs: lp, finish_reason: 'stop' },
        {
          index: 1,
          message: {
            role: 'assistant',
            content: null,
            refusal: null,
            reasoning_content: 'Look up.',
            tool_calls: [
              { id: 'call_1', type: 'function', function: { name: 'weather', arguments: '{"city":"Paris"}' } },
              { id: 'call_2', type: 'function', function: { name: 'time', arguments: '{}' } },
            ],
          },
          logprobs: null,
          finish_reason: 'tool_calls',
        },
        { index: 2, message: { role: 'assistant', content: null, refusal: 'No.' }, logprobs: null, finish_reason: 'content_filter' },
      ],
      usage,
      system_fingerprint: 'fp_1',
      service_tier: 'default',
    });
  });

  test('no extras, no extra keys', () => {
    const r: ChatResponse = { id: 'c', created: 1, choices: [{ index: 0, content: 'x', finishReason: 'length' }], usage: null };
    assert.deepEqual(encodeChatResponse(r, 'm', usage), {
      id: 'c',
      object: 'chat.completion',
      created: 1,
      model: 'm',
      choices: [{ index: 0, message: { role: 'assistant', content: 'x', refusal: null }, logprobs: null, finish_reason: 'length' }],
      usage,
    });
  });
});

describe('ChunkEncoder', () => {
  const frame = { id: 'chatcmpl-s', object: 'chat.completion.chunk', created: 1_700_000_001, model: 'gpt-x', system_fingerprint: 'fp_9' };

  test('a two-choice stream with include_usage: role on each choice first chunk only, tool calls with index, id and name then arguments, usage null everywhere', () => {
    const enc = new ChunkEncoder('gpt-x', true);
    const lp = { content: [{ token: 'Hi', logprob: -0.3, bytes: [72, 105], top_logprobs: [] }] };
    const events: StreamEvent[] = [
      { type: 'start', id: 'chatcmpl-s', created: 1_700_000_001, extra: { system_fingerprint: 'fp_9' } },
      { type: 'reasoning', choice: 0, text: 'Think.' },
      { type: 'reasoning_signature', choice: 0, signature: 'sig' },
      { type: 'reasoning_redacted', choice: 0, data: 'opaque' },
      { type: 'text', choice: 0, text: 'Hi', logprobs: lp },
      { type: 'text', choice: 1, text: 'Yo' },
      { type: 'tool_call_start', choice: 0, index: 0, id: 'call_1', name: 'weather' },
      { type: 'tool_call_delta', choice: 0, index: 0, arguments: '{"city":' },
      { type: 'tool_call_delta', choice: 0, index: 0, arguments: '"Paris"}' },
      { type: 'refusal', choice: 1, text: 'No.' },
      { type: 'finish', choice: 0, reason: 'tool_calls' },
      { type: 'finish', choice: 1, reason: 'content_filter' },
      { type: 'usage', usage: { promptTokens: 1, completionTokens: 1, cachedTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 } },
    ];
    const one = (index: number, delta: JsonObject, finish: string | null = null, logprobs: unknown = null): JsonObject => ({
      ...frame,
      choices: [{ index, delta, logprobs, finish_reason: finish }],
      usage: null,
    });
    assert.deepEqual(events.map((e) => enc.encode(e)), [
      null,
      one(0, { role: 'assistant', reasoning_content: 'Think.' }),
      null,
      null,
      one(0, { content: 'Hi' }, null, lp),
      one(1, { role: 'assistant', content: 'Yo' }),
      one(0, { tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'weather', arguments: '' } }] }),
      one(0, { tool_calls: [{ index: 0, function: { arguments: '{"city":' } }] }),
      one(0, { tool_calls: [{ index: 0, function: { arguments: '"Paris"}' } }] }),
      one(1, { refusal: 'No.' }),
      one(0, {}, 'tool_calls'),
      one(1, {}, 'content_filter'),
      null,
    ]);
    const usage = { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 };
    assert.deepEqual(enc.usage(usage), { ...frame, choices: [], usage });
  });

  test('without include_usage no chunk has a usage key; a choice that only finishes still gets its role', () => {
    const enc = new ChunkEncoder('gpt-x');
    enc.encode({ type: 'start', id: 'chatcmpl-s', created: 1_700_000_001 });
    const { system_fingerprint: _fp, ...plain } = frame;
    assert.deepEqual(
      [enc.encode({ type: 'text', choice: 0, text: 'a' }), enc.encode({ type: 'finish', choice: 1, reason: 'stop' }), enc.encode({ type: 'finish', choice: 0, reason: 'length' })],
      [
        { ...plain, choices: [{ index: 0, delta: { role: 'assistant', content: 'a' }, logprobs: null, finish_reason: null }] },
        { ...plain, choices: [{ index: 1, delta: { role: 'assistant' }, logprobs: null, finish_reason: 'stop' }] },
        { ...plain, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'length' }] },
      ],
    );
  });

  test('capped(): one chunk ending every open choice for length, with the stream id and fingerprint', () => {
    const enc = new ChunkEncoder('gpt-x');
    enc.encode({ type: 'start', id: 'chatcmpl-s', created: 1_700_000_001, extra: { system_fingerprint: 'fp_9' } });
    assert.deepEqual(enc.capped([0, 2]), {
      ...frame,
      choices: [
        { index: 0, delta: {}, logprobs: null, finish_reason: 'length' },
        { index: 2, delta: {}, logprobs: null, finish_reason: 'length' },
      ],
    });
    // With include_usage it carries `usage: null` like every chunk but the last.
    const withUsage = new ChunkEncoder('gpt-x', true);
    assert.equal(withUsage.capped([0])['usage'], null);
  });

  test('a stream without a start event uses the gateway id and the current time', () => {
    const before = Math.floor(Date.now() / 1000);
    const enc = new ChunkEncoder('gpt-x');
    const c = enc.encode({ type: 'text', choice: 0, text: 'x' });
    const after = Math.floor(Date.now() / 1000);
    assert.ok(c !== null);
    const created = c['created'];
    assert.ok(typeof created === 'number' && created >= before && created <= after, `created ${String(created)}`);
    assert.deepEqual(c, { id: 'chatcmpl-token360', object: 'chat.completion.chunk', created, model: 'gpt-x', choices: [{ index: 0, delta: { role: 'assistant', content: 'x' }, logprobs: null, finish_reason: null }] });
  });
});

// The round trip: a grammar of OpenAI chat bodies (text and image parts, tool calls, tool
// results, tools, tool_choice) parsed and written back by the OpenAI provider's fromTyped.
const text = fc.string({ maxLength: 12 });
const ident = fc.stringMatching(/^[a-zA-Z_][a-zA-Z0-9_]{0,10}$/);
const textPart = text.map((t) => ({ type: 'text', text: t }));
const imagePart = fc
  .tuple(fc.constantFrom('https://img.test/a.png', 'data:image/png;base64,iVBORw0KGgo='), fc.option(fc.constantFrom('auto', 'low', 'high'), { nil: undefined }))
  .map(([url, detail]) => ({ type: 'image_url', image_url: detail === undefined ? { url } : { url, detail } }));
const textContent = fc.oneof(text, fc.array(textPart, { maxLength: 3 }));
const withOptional = <T extends JsonObject>(base: T, optional: JsonObject): JsonObject => {
  const out: JsonObject = { ...base };
  for (const [k, v] of Object.entries(optional)) if (v !== undefined) out[k] = v;
  return out;
};
const toolCall = fc.record({ id: ident, name: ident, args: fc.oneof(fc.constant('{}'), fc.json({ maxDepth: 2 })) }).map((c) => ({
  id: c.id,
  type: 'function',
  function: { name: c.name, arguments: c.args },
}));
const message = fc.oneof(
  fc.record({ role: fc.constantFrom('system', 'developer'), content: textContent }),
  fc
    .record({ content: fc.oneof(text, fc.array(fc.oneof(textPart, imagePart), { maxLength: 4 })), name: fc.option(ident, { nil: undefined }) })
    .map((m) => withOptional({ role: 'user', content: m.content }, { name: m.name })),
  fc
    .record({
      content: fc.oneof(fc.constant(null), text, fc.array(textPart, { maxLength: 2 })),
      calls: fc.array(toolCall, { maxLength: 3 }),
      reasoning: fc.option(fc.string({ minLength: 1, maxLength: 8 }), { nil: undefined }),
      refusal: fc.option(text, { nil: undefined }),
      name: fc.option(ident, { nil: undefined }),
    })
    .map((m) =>
      withOptional(
        { role: 'assistant', content: m.content },
        { tool_calls: m.calls.length > 0 ? m.calls : undefined, reasoning_content: m.reasoning, refusal: m.refusal, name: m.name },
      ),
    ),
  fc.record({ tool_call_id: ident, content: textContent }).map((m) => ({ role: 'tool', tool_call_id: m.tool_call_id, content: m.content })),
);
const tool = fc
  .record({
    name: ident,
    description: fc.option(text, { nil: undefined }),
    parameters: fc.option(fc.dictionary(ident, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }), { nil: undefined }),
    strict: fc.option(fc.boolean(), { nil: undefined }),
  })
  .map((t) => ({ type: 'function', function: withOptional({ name: t.name }, { description: t.description, parameters: t.parameters, strict: t.strict }) }));
const chatBody = fc
  .record({
    messages: fc.array(message, { minLength: 1, maxLength: 6 }),
    tools: fc.option(fc.array(tool, { maxLength: 3 }), { nil: undefined }),
    toolChoice: fc.option(fc.oneof(fc.constantFrom('auto', 'none', 'required'), ident.map((name) => ({ type: 'function', function: { name } }))), { nil: undefined }),
  })
  // Through JSON text, as a request body arrives (fast-check's records may have no prototype).
  .map((b) => JSON.parse(JSON.stringify(withOptional({ model: 'gpt-x', messages: b.messages }, { tools: b.tools, tool_choice: b.toolChoice }))) as JsonObject);

/** What OpenAI's provider may say differently and mean the same: roles without images in OpenAI take their text parts as one string. */
function expectedMessage(m: JsonObject): JsonObject {
  const c = m['content'];
  if (m['role'] === 'user' || !Array.isArray(c)) return m;
  return { ...m, content: (c as { text: string }[]).map((p) => p.text).join('') };
}

describe('round trip: fromTyped(parseChatRequest(body))', () => {
  test('keeps messages, tools and tool_choice of an OpenAI chat body', () => {
    fc.assert(
      fc.property(chatBody, (body) => {
        const back = fromTyped(parseChatRequest(body));
        assert.deepEqual(back['messages'], (body['messages'] as JsonObject[]).map(expectedMessage));
        assert.deepEqual(back['tools'], body['tools']);
        assert.deepEqual(back['tool_choice'], body['tool_choice']);
      }),
      { numRuns: 500 },
    );
  });
});
