// The Responses protocol's pure parts without a server: body → typed form, typed answer →
// Response object, typed stream → Responses events; the native provider's readers; and a
// fast-check fuzz of POST /v1/responses bodies through the gateway (documented errors only).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import type { Bill } from '../src/billing/bill.js';
import { GatewayError } from '../src/errors.js';
import { encodeResponse, echoOf } from '../src/protocols/openai-responses/encode.js';
import { needsNative, parseResponsesRequest, validateResponses } from '../src/protocols/openai-responses/parse.js';
import { KEEPALIVE_MS, ResponsesStreamEncoder } from '../src/protocols/openai-responses/stream.js';
import { fromResponse, ResponsesEventReader } from '../src/providers/openai/responses.js';
import type { StreamEvent } from '../src/types/chat.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';

type Json = Record<string, unknown>;

const bill = (prompt: number, completion: number, cost = 1000n): Bill => ({
  usage: { promptTokens: prompt, completionTokens: completion, cachedTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 },
  cost, distrusted: false, reported: true,
});

function frames(sse: string): { event: string; data: Json }[] {
  return sse
    .split('\n\n')
    .filter((f) => f !== '')
    .map((f) => {
      const [e, d] = f.split('\n');
      return { event: e!.slice('event: '.length), data: JSON.parse(d!.slice('data: '.length)) as Json };
    });
}

describe('parse', () => {
  test('input items become chat messages: instructions, images, one assistant turn of reasoning + text + calls, tool results', () => {
    const body = {
      model: 'm',
      instructions: 'Be brief.',
      input: [
        { role: 'user', content: [{ type: 'input_text', text: 'Look' }, { type: 'input_image', image_url: 'https://x/y.png', detail: 'low' }] },
        { type: 'reasoning', id: 'rs_1', summary: [{ type: 'summary_text', text: 'hmm' }] },
        { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Checking.' }] },
        { type: 'function_call', call_id: 'c1', name: 'f', arguments: '{}' },
        { type: 'function_call_output', call_id: 'c1', output: 'done' },
      ],
      tools: [{ type: 'function', name: 'f', parameters: { type: 'object' } }],
      tool_choice: { type: 'function', name: 'f' },
      text: { format: { type: 'json_schema', name: 'out', schema: { type: 'object' }, strict: true } },
      reasoning: { effort: 'xhigh' },
      max_output_tokens: 99,
      temperature: 0.5,
      store: false,
    };
    const params = validateResponses(body);
    assert.deepEqual(params, { stream: false, maxOutput: 99, previousResponseId: null, store: false });
    const r = parseResponsesRequest(body);
    assert.deepEqual(r.messages, [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: [{ type: 'text', text: 'Look' }, { type: 'image', url: 'https://x/y.png', detail: 'low' }] },
      { role: 'assistant', content: 'Checking.', reasoning: [{ text: 'hmm' }], toolCalls: [{ id: 'c1', name: 'f', arguments: '{}' }] },
      { role: 'tool', toolCallId: 'c1', content: 'done' },
    ]);
    assert.deepEqual(r.tools, [{ name: 'f', parameters: { type: 'object' } }]);
    assert.deepEqual(r.toolChoice, { name: 'f' });
    assert.deepEqual(r.responseFormat, { type: 'json_schema', name: 'out', schema: { type: 'object' }, strict: true });
    assert.equal(r.reasoningEffort, 'high');
    assert.equal(r.temperature, 0.5);
    assert.deepEqual(r.extra, {}, 'Responses-only fields never reach a chat upstream');
    assert.equal(needsNative(body), null);
  });

  test('what only a native deployment can serve is named', () => {
    assert.equal(needsNative({ input: 'x', previous_response_id: 'resp_1' }), 'previous_response_id');
    assert.equal(needsNative({ input: ['a', { type: 'item_reference', id: 'x' }].slice(1) }), 'input[0].id');
    assert.equal(needsNative({ input: 'x', tools: [{ type: 'function', name: 'f' }, { type: 'web_search' }] }), 'tools[1].type');
  });

  test('400s name the field', () => {
    const param = (body: Json): string | null => {
      try {
        validateResponses(body);
        return 'accepted';
      } catch (e) {
        assert.ok(e instanceof GatewayError);
        assert.equal(e.status, 400);
        return e.param;
      }
    };
    assert.equal(param({ model: 'm' }), 'input');
    assert.equal(param({ input: 5 }), 'input');
    assert.equal(param({ input: [{ role: 'robot', content: 'x' }] }), 'input[0].role');
    assert.equal(param({ input: [{ type: 'function_call', call_id: 'c', name: 'f' }] }), 'input[0].arguments');
    assert.equal(param({ input: 'x', max_output_tokens: 0 }), 'max_output_tokens');
    assert.equal(param({ input: 'x', tools: [{ type: 'function', name: 'bad name' }] }), 'tools[0].name');
    assert.equal(param({ input: 'x', text: { format: { type: 'xml' } } }), 'text.format.type');
    assert.equal(param({ input: 'x', reasoning: { effort: 'max' } }), 'reasoning.effort');
    assert.equal(param({ input: 'x', stream: 'yes' }), 'stream');
  });
});

describe('encode', () => {
  test('a typed answer as a Response object: reasoning, message, function calls, usage; length → incomplete', () => {
    const body = encodeResponse(
      {
        id: 'chatcmpl-1', created: 100,
        choices: [{ index: 0, content: 'Hi', reasoning: [{ text: 'r' }], toolCalls: [{ id: 'call_1', name: 'f', arguments: '{}' }], finishReason: 'length' }],
        usage: null,
      },
      'm', echoOf({ instructions: 'x' }), { input_tokens: 1 },
    );
    assert.match(body['id'] as string, /^resp_/);
    assert.equal(body['object'], 'response');
    assert.equal(body['status'], 'incomplete');
    assert.deepEqual(body['incomplete_details'], { reason: 'max_output_tokens' });
    assert.equal(body['instructions'], 'x');
    const output = body['output'] as Json[];
    assert.deepEqual(output.map((o) => o['type']), ['reasoning', 'message', 'function_call']);
    assert.deepEqual((output[0]!['summary'] as Json[])[0], { type: 'summary_text', text: 'r' });
    assert.deepEqual(((output[1]!['content'] as Json[])[0] as Json)['text'], 'Hi');
    assert.deepEqual([output[2]!['call_id'], output[2]!['name'], output[2]!['arguments']], ['call_1', 'f', '{}']);
  });
});

describe('stream encoder', () => {
  const run = (events: StreamEvent[], tail: (e: ResponsesStreamEncoder) => string): { event: string; data: Json }[] => {
    const enc = new ResponsesStreamEncoder('m', echoOf({}));
    let out = '';
    for (const ev of events) out += enc.event(ev) ?? '';
    return frames(out + tail(enc));
  };

  test('reasoning, text and a tool call: items opened and closed in order, numbered, ending completed with usage', () => {
    const f = run(
      [
        { type: 'start', id: 'x', created: 5 },
        { type: 'reasoning', choice: 0, text: 'think' },
        { type: 'text', choice: 0, text: 'He' },
        { type: 'text', choice: 0, text: 'llo' },
        { type: 'tool_call_start', choice: 0, index: 0, id: 'call_1', name: 'f' },
        { type: 'tool_call_delta', choice: 0, index: 0, arguments: '{"a":1}' },
        { type: 'finish', choice: 0, reason: 'tool_calls' },
      ],
      (e) => e.end(bill(3, 4)),
    );
    assert.deepEqual(f.map((x) => x.event), [
      'response.created', 'response.in_progress',
      'response.output_item.added', 'response.reasoning_summary_part.added', 'response.reasoning_summary_text.delta',
      'response.reasoning_summary_text.done', 'response.reasoning_summary_part.done', 'response.output_item.done',
      'response.output_item.added', 'response.content_part.added', 'response.output_text.delta', 'response.output_text.delta',
      'response.output_text.done', 'response.content_part.done', 'response.output_item.done',
      'response.output_item.added', 'response.function_call_arguments.delta', 'response.function_call_arguments.done', 'response.output_item.done',
      'response.completed',
    ]);
    f.forEach((x, i) => {
      assert.equal(x.data['sequence_number'], i);
      assert.equal(x.data['type'], x.event);
    });
    const done = f.at(-1)!.data['response'] as Json;
    assert.equal(done['status'], 'completed');
    assert.deepEqual((done['output'] as Json[]).map((o) => o['type']), ['reasoning', 'message', 'function_call']);
    assert.deepEqual((done['usage'] as Json)['input_tokens'], 3);
    assert.equal((done['usage'] as Json)['cost'], 1e-6);
  });

  /**
   * Responses' event grammar: sequence numbers 0, 1, 2…; items added with output_index 0, 1, 2…;
   * every event of an item between its added and its done; each done item as the terminal
   * response's output holds it. Returns the terminal response.
   */
  const checked = (f: { event: string; data: Json }[]): Json => {
    let next = 0;
    const open = new Set<number>();
    const done = new Map<number, Json>();
    f.forEach((x, i) => {
      assert.equal(x.data['sequence_number'], i);
      const at = x.data['output_index'];
      if (x.event === 'response.output_item.added') {
        assert.equal(at, next++, `${i}: items are added in output_index order`);
        open.add(at as number);
      } else if (typeof at === 'number') {
        assert.ok(open.has(at), `${i}: ${x.event} for item ${at}, which is not open`);
        if (x.event === 'response.output_item.done') {
          open.delete(at);
          done.set(at, x.data['item'] as Json);
        }
      }
    });
    assert.equal(open.size, 0, 'every item added is done');
    const response = f.at(-1)!.data['response'] as Json;
    assert.deepEqual(response['output'], [...done.keys()].sort((a, b) => a - b).map((k) => done.get(k)));
    return response;
  };
  const call = (response: Json, id: string): Json => (response['output'] as Json[]).find((o) => o['call_id'] === id)!;

  test('a late argument piece after text and another call: every call with all its arguments, the grammar kept', () => {
    const f = run(
      [
        { type: 'start', id: 'x', created: 5 },
        { type: 'tool_call_start', choice: 0, index: 0, id: 'c0', name: 'f' },
        { type: 'tool_call_delta', choice: 0, index: 0, arguments: '{"a":' },
        { type: 'text', choice: 0, text: 'meanwhile' },
        { type: 'tool_call_delta', choice: 0, index: 0, arguments: '1,' },
        { type: 'tool_call_start', choice: 0, index: 1, id: 'c1', name: 'g' },
        { type: 'tool_call_delta', choice: 0, index: 1, arguments: '{}' },
        { type: 'reasoning', choice: 0, text: 'hm' },
        { type: 'tool_call_delta', choice: 0, index: 0, arguments: '"b":2}' },
        { type: 'finish', choice: 0, reason: 'tool_calls' },
      ],
      (e) => e.end(bill(3, 4)),
    );
    const response = checked(f);
    assert.equal(f.at(-1)!.event, 'response.completed');
    assert.equal(call(response, 'c0')['arguments'], '{"a":1,"b":2}');
    assert.equal(call(response, 'c1')['arguments'], '{}');
    assert.deepEqual((response['output'] as Json[]).map((o) => o['type']), ['message', 'reasoning', 'function_call', 'function_call']);
    const argsDone = f.filter((x) => x.event === 'response.function_call_arguments.done').map((x) => x.data['arguments']);
    assert.deepEqual(argsDone, ['{"a":1,"b":2}', '{}']);
  });

  test('a held call streaming its arguments for long: a keepalive comment after each silence of KEEPALIVE_MS', () => {
    let now = 0;
    const enc = new ResponsesStreamEncoder('m', echoOf({}), () => now);
    const events: StreamEvent[] = [
      { type: 'start', id: 'x', created: 5 },
      { type: 'tool_call_start', choice: 0, index: 0, id: 'c0', name: 'f' },
      ...Array.from({ length: 10 }, (): StreamEvent => ({ type: 'tool_call_delta', choice: 0, index: 0, arguments: 'a' })),
      { type: 'finish', choice: 0, reason: 'tool_calls' },
    ];
    let out = '';
    for (const ev of events) {
      now += KEEPALIVE_MS / 4;
      out += enc.event(ev) ?? '';
    }
    out += enc.end(bill(1, 1));
    const comments = out.split('\n\n').filter((f) => f.startsWith(':'));
    assert.deepEqual(comments, [': keepalive', ': keepalive']);
    const f = frames(out.split('\n\n').filter((x) => !x.startsWith(':')).map((x) => `${x}\n\n`).join(''));
    assert.equal(call(checked(f), 'c0')['arguments'], 'a'.repeat(10));
  });

  test('held calls are written when the stream is cut at the cap or breaks off', () => {
    const events: StreamEvent[] = [
      { type: 'tool_call_start', choice: 0, index: 0, id: 'c0', name: 'f' },
      { type: 'tool_call_delta', choice: 0, index: 0, arguments: '{"a":1}' },
      { type: 'text', choice: 0, text: 'x' },
    ];
    const capped = run(events, (e) => e.capped() + e.end(bill(1, 1)));
    assert.equal(capped.at(-1)!.event, 'response.incomplete');
    assert.equal(call(checked(capped), 'c0')['arguments'], '{"a":1}');
    const failed = run(events, (e) => e.error(new GatewayError('upstream_failed'), 'trace-1'));
    assert.equal(failed.at(-1)!.event, 'response.failed');
    assert.equal(call(checked(failed), 'c0')['arguments'], '{"a":1}');
  });

  test('cut at the cap: response.incomplete for max_output_tokens; an error: response.failed carrying SPEC §3 error', () => {
    const capped = run([{ type: 'text', choice: 0, text: 'a' }], (e) => e.capped() + e.end(bill(1, 1)));
    assert.equal(capped.at(-1)!.event, 'response.incomplete');
    assert.deepEqual((capped.at(-1)!.data['response'] as Json)['incomplete_details'], { reason: 'max_output_tokens' });
    const failed = run([{ type: 'text', choice: 0, text: 'a' }], (e) => e.error(new GatewayError('upstream_failed'), 'trace-1'));
    assert.equal(failed.at(-1)!.event, 'response.failed');
    assert.deepEqual((failed.at(-1)!.data['error'] as Json)['code'], '502');
    assert.equal(((failed.at(-1)!.data['response'] as Json)['status']), 'failed');
  });
});

describe('native readers', () => {
  test('a Response object in the typed form, kept whole as native', () => {
    const body = {
      id: 'resp_1', created_at: 7, status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' },
      output: [{ type: 'message', content: [{ type: 'output_text', text: 'Hi' }] }],
      usage: { input_tokens: 4, output_tokens: 2, input_tokens_details: { cached_tokens: 1 }, output_tokens_details: { reasoning_tokens: 0 } },
    };
    const r = fromResponse(body);
    assert.equal(r.choices[0]!.content, 'Hi');
    assert.equal(r.choices[0]!.finishReason, 'length');
    assert.deepEqual([r.usage?.promptTokens, r.usage?.completionTokens, r.usage?.cachedTokens], [4, 2, 1]);
    assert.equal(r.native?.body, body);
  });

  test('stream events: native beside typed; usage from the terminal event, whichever it is', () => {
    const reader = new ResponsesEventReader();
    const out: StreamEvent[] = [];
    const feed = (e: Json): void => reader.read(JSON.stringify(e), e, out);
    feed({ type: 'response.created', response: { id: 'resp_1', created_at: 1 } });
    feed({ type: 'response.output_item.added', item: { type: 'function_call', id: 'fc_1', call_id: 'call_1', name: 'f' } });
    feed({ type: 'response.function_call_arguments.delta', item_id: 'fc_1', delta: '{}' });
    feed({ type: 'response.failed', response: { usage: { input_tokens: 3, output_tokens: 1 } } });
    assert.deepEqual(out.filter((e) => e.type !== 'native').map((e) => e.type), ['start', 'tool_call_start', 'tool_call_delta', 'usage']);
    assert.equal(out.filter((e) => e.type === 'native').length, 4);
    assert.ok(reader.failure({ type: 'response.failed' }, '') !== null);
  });
});

describe('fuzz: POST /v1/responses', () => {
  let gw: TestGateway;
  let key: string;
  before(async () => {
    gw = await startTestGateway();
    key = (await gw.createKey({ credit: '100' })).key;
  });
  after(async () => {
    await gw.close();
  });

  const anyJson = fc.jsonValue({ maxDepth: 3 });
  const part = fc.oneof(
    fc.record({ type: fc.constantFrom('input_text', 'output_text', 'bogus'), text: fc.oneof(fc.string({ maxLength: 10 }), anyJson) }),
    fc.record({ type: fc.constant('input_image'), image_url: fc.oneof(fc.constant('data:image/png;base64,AAAA'), anyJson) }),
    anyJson,
  );
  const item = fc.oneof(
    fc.record({ role: fc.oneof(fc.constantFrom('user', 'assistant', 'system', 'developer'), anyJson), content: fc.oneof(fc.string({ maxLength: 10 }), fc.array(part, { maxLength: 3 })) }, { requiredKeys: [] }),
    fc.record({ type: fc.constant('function_call'), call_id: fc.oneof(fc.string(), anyJson), name: fc.oneof(fc.string(), anyJson), arguments: fc.oneof(fc.string(), anyJson) }, { requiredKeys: ['type'] }),
    fc.record({ type: fc.constant('function_call_output'), call_id: fc.oneof(fc.string(), anyJson), output: fc.oneof(fc.string(), anyJson) }, { requiredKeys: ['type'] }),
    fc.record({ type: fc.constantFrom('reasoning', 'item_reference', 'web_search_call'), id: fc.string(), summary: anyJson }, { requiredKeys: ['type'] }),
    anyJson,
  );
  const body = fc.record(
    {
      model: fc.oneof(fc.constant('demo'), fc.constant('nope'), anyJson),
      input: fc.oneof(fc.string({ maxLength: 20 }), fc.array(item, { maxLength: 4 }), anyJson),
      instructions: fc.oneof(fc.string({ maxLength: 10 }), anyJson),
      stream: fc.oneof(fc.boolean(), anyJson),
      max_output_tokens: fc.oneof(fc.integer({ min: -2, max: 50 }), anyJson),
      temperature: fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), anyJson),
      tools: fc.oneof(fc.array(fc.record({ type: fc.constantFrom('function', 'web_search'), name: fc.oneof(fc.constantFrom('f', 'bad name'), anyJson), parameters: anyJson }, { requiredKeys: ['type'] }), { maxLength: 2 }), anyJson),
      tool_choice: fc.oneof(fc.constantFrom('auto', 'none', 'required', 'x'), anyJson),
      text: fc.oneof(fc.record({ format: fc.record({ type: fc.constantFrom('text', 'json_object', 'json_schema', 'x'), name: fc.string(), schema: anyJson }, { requiredKeys: [] }) }), anyJson),
      reasoning: fc.oneof(fc.record({ effort: fc.constantFrom('low', 'high', 'max') }), anyJson),
      previous_response_id: fc.oneof(fc.string({ maxLength: 8 }), anyJson),
      metadata: anyJson,
      store: anyJson,
    },
    { requiredKeys: [] },
  );
  const DOCUMENTED = new Set([200, 400, 402, 403, 404, 429, 502, 503]);

  test('every body gets 200 or a documented error in SPEC §3 shape, never a 500', async () => {
    await fc.assert(
      fc.asyncProperty(body, async (b) => {
        const res = await gw.http('POST', '/v1/responses', { key, body: b });
        assert.ok(DOCUMENTED.has(res.status), `status ${res.status}: ${res.text.slice(0, 300)}`);
        if (res.status !== 200) {
          assert.equal(typeof res.json.error.message, 'string');
          assert.equal(res.json.error.code, String(res.status));
          assert.equal(res.json.error.traceId, res.headers['x-request-id']);
        }
      }),
      { numRuns: 300 },
    );
  });
});
