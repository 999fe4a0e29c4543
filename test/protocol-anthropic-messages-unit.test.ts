// The Anthropic Messages client protocol's pure parts, no server: body → typed request
// (parse.ts), validation (validate.ts), answer encoding (encode.ts) and the stream encoder
// (stream.ts), whose output is checked against Anthropic's grammar.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Bill } from '../src/billing/bill.js';
import { GatewayError } from '../src/errors.js';
import { encodeMessage } from '../src/protocols/anthropic-messages/encode.js';
import { effortOf, parseMessagesRequest } from '../src/protocols/anthropic-messages/parse.js';
import { KEEPALIVE_MS, MessagesStreamEncoder } from '../src/protocols/anthropic-messages/stream.js';
import { validateMessages } from '../src/protocols/anthropic-messages/validate.js';
import type { ChatResponse, JsonObject, StreamEvent, Usage } from '../src/types/chat.js';
import { assertGrammar, parseFrames } from './helpers/anthropic-grammar.js';

const usage = (p: number, c: number, cached = 0, written = 0): Usage => ({ promptTokens: p, completionTokens: c, cachedTokens: cached, cacheWriteTokens: written, reasoningTokens: 0 });
const bill = (u: Usage): Bill => ({ usage: u, cost: 1n, distrusted: false, reported: true });

describe('parseMessagesRequest', () => {
  test('every translated field; the source kept with its headers', () => {
    const body: JsonObject = {
      model: 'm',
      max_tokens: 100,
      system: [{ type: 'text', text: 'A' }, { type: 'text', text: 'B' }],
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'look' }, { type: 'image', source: { type: 'base64', media_type: 'image/jpeg', data: 'AAA' } }, { type: 'image', source: { type: 'url', url: 'https://x/y.png' } }] },
        {
          role: 'assistant',
          content: [
            { type: 'thinking', thinking: 'hm', signature: 'S' },
            { type: 'redacted_thinking', data: 'R' },
            { type: 'text', text: 'ok' },
            { type: 'tool_use', id: 't1', name: 'f', input: { a: 1 } },
            { type: 'server_tool_use', id: 's1', name: 'web_search', input: {} },
          ],
        },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't1', content: [{ type: 'text', text: 'r' }, { type: 'image', source: { type: 'url', url: 'https://x/z.png' } }], is_error: true }] },
      ],
      tools: [{ name: 'f', description: 'F', input_schema: { type: 'object' }, cache_control: { type: 'ephemeral' } }, { type: 'web_search_20250305', name: 'web_search' }],
      tool_choice: { type: 'tool', name: 'f', disable_parallel_tool_use: true },
      stop_sequences: ['X'],
      temperature: 0.2,
      top_p: 0.9,
      top_k: 5,
      metadata: { user_id: 'u' },
      thinking: { type: 'enabled', budget_tokens: 5000 },
      stream: true,
    };
    const req = parseMessagesRequest(body, { 'anthropic-version': '2023-06-01' });
    assert.deepEqual(req.messages, [
      { role: 'system', content: 'A\nB' },
      { role: 'user', content: [{ type: 'text', text: 'look' }, { type: 'image', url: 'data:image/jpeg;base64,AAA' }, { type: 'image', url: 'https://x/y.png' }] },
      { role: 'assistant', content: 'ok', reasoning: [{ text: 'hm', signature: 'S' }, { text: '', redacted: 'R' }], toolCalls: [{ id: 't1', name: 'f', arguments: '{"a":1}' }] },
      { role: 'tool', toolCallId: 't1', content: [{ type: 'text', text: 'Error:' }, { type: 'text', text: 'r' }, { type: 'image', url: 'https://x/z.png' }] },
    ]);
    assert.deepEqual(req.tools, [{ name: 'f', description: 'F', parameters: { type: 'object' } }]);
    assert.deepEqual(req.toolChoice, { name: 'f' });
    assert.equal(req.parallelToolCalls, false);
    assert.deepEqual(req.stop, ['X']);
    assert.equal(req.temperature, 0.2);
    assert.equal(req.topP, 0.9);
    assert.equal(req.user, 'u');
    assert.equal(req.reasoningEffort, 'medium');
    assert.equal(req.stream, true);
    assert.deepEqual(req.extra, {}, "Anthropic's own parameters (top_k) never reach another provider");
    assert.deepEqual(req.source, { protocol: 'anthropic-messages', body, headers: { 'anthropic-version': '2023-06-01' } });
  });

  test('tool_choice and thinking mappings', () => {
    const choice = (tc: JsonObject) => parseMessagesRequest({ model: 'm', messages: [], tool_choice: tc }).toolChoice;
    assert.equal(choice({ type: 'auto' }), 'auto');
    assert.equal(choice({ type: 'any' }), 'required');
    assert.equal(choice({ type: 'none' }), 'none');
    assert.equal(effortOf({ type: 'enabled', budget_tokens: 1024 }), 'low');
    assert.equal(effortOf({ type: 'enabled', budget_tokens: 4096 }), 'medium');
    assert.equal(effortOf({ type: 'enabled', budget_tokens: 16384 }), 'high');
    assert.equal(effortOf({ type: 'adaptive' }), 'medium');
    assert.equal(effortOf({ type: 'disabled' }), undefined);
  });
});

describe('validateMessages', () => {
  const ok: JsonObject = { model: 'm', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] };
  const param = (body: JsonObject, countOnly = false): string | null => {
    try {
      validateMessages(body, countOnly);
      return null;
    } catch (e) {
      assert.ok(e instanceof GatewayError && e.status === 400);
      assert.ok(e.message.startsWith(`${e.param}: `), e.message);
      return e.param;
    }
  };
  test('each failure names its field, in Anthropic notation', () => {
    assert.equal(param(ok), null);
    assert.equal(param({ ...ok, max_tokens: undefined }), 'max_tokens');
    assert.equal(param({ ...ok, max_tokens: undefined }, true), null, 'count_tokens takes no max_tokens');
    assert.equal(param({ ...ok, messages: [] }), 'messages');
    assert.equal(param({ ...ok, messages: [{ role: 'system', content: 'x' }] }), 'messages.0.role');
    assert.equal(param({ ...ok, messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'base64', data: 'x' } }] }] }), 'messages.0.content.0.source.media_type');
    assert.equal(param({ ...ok, messages: [{ role: 'user', content: [{ type: 'tool_result' }] }] }), 'messages.0.content.0.tool_use_id');
    assert.equal(param({ ...ok, temperature: 3 }), 'temperature');
    assert.equal(param({ ...ok, tools: [{ name: 'f' }] }), 'tools.0.input_schema');
    assert.equal(param({ ...ok, tools: [{ type: 'web_search_20250305', name: 'web_search' }] }), null, 'server tools have no schema');
    assert.equal(param({ ...ok, tool_choice: { type: 'tool' } }), 'tool_choice.name');
    assert.equal(param({ ...ok, thinking: { type: 'enabled', budget_tokens: 2048 } }), 'max_tokens');
    assert.equal(param({ ...ok, messages: [{ role: 'user', content: [{ type: 'document', source: {} }] }] }), null, 'unknown block types pass');
  });
});

describe('encodeMessage', () => {
  const typed: ChatResponse = {
    id: 'chatcmpl-1',
    created: 1,
    choices: [{ index: 0, content: 'Hi', reasoning: [{ text: 'th', signature: 'S' }], toolCalls: [{ id: 'c', name: 'f', arguments: '{"a":' }], finishReason: 'length' }],
    usage: usage(10, 5),
  };
  test('typed: blocks in order thinking, text, tool_use; stop reason; billed usage', () => {
    assert.deepEqual(encodeMessage(typed, 'client-model', usage(30, 5, 10, 5)), {
      id: 'msg_chatcmpl-1',
      type: 'message',
      role: 'assistant',
      model: 'client-model',
      content: [
        { type: 'thinking', thinking: 'th', signature: 'S' },
        { type: 'text', text: 'Hi' },
        { type: 'tool_use', id: 'c', name: 'f', input: {} },
      ],
      stop_reason: 'max_tokens',
      stop_sequence: null,
      usage: { input_tokens: 15, cache_creation_input_tokens: 5, cache_read_input_tokens: 10, output_tokens: 5 },
    });
  });
  test('native: the upstream message as it came, with the client model and billed usage', () => {
    const native = { id: 'msg_1', type: 'message', model: 'up', content: [{ type: 'web_search_tool_result', x: 1 }], usage: { input_tokens: 1, output_tokens: 1, server_tool_use: { web_search_requests: 1 } } };
    const r: ChatResponse = { ...typed, native: { protocol: 'anthropic-messages', body: native } };
    const out = encodeMessage(r, 'mine', usage(3, 2));
    assert.equal(out['model'], 'mine');
    assert.deepEqual(out['content'], native.content);
    assert.deepEqual(out['usage'], { input_tokens: 3, output_tokens: 2, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, server_tool_use: { web_search_requests: 1 } });
  });
});

describe('MessagesStreamEncoder', () => {
  const run = (enc: MessagesStreamEncoder, events: StreamEvent[], end: (e: MessagesStreamEncoder) => string): string => {
    let out = '';
    for (const ev of events) out += enc.event(ev) ?? '';
    return out + end(enc);
  };

  test('typed events in grammar: thinking with signature, text, two tool calls; input tokens estimated up front', () => {
    const text = run(
      new MessagesStreamEncoder('m', 42),
      [
        { type: 'start', id: 'x', created: 1 },
        { type: 'reasoning', choice: 0, text: 'think' },
        { type: 'reasoning_signature', choice: 0, signature: 'SIG' },
        { type: 'text', choice: 0, text: 'Hel' },
        { type: 'text', choice: 0, text: 'lo' },
        { type: 'tool_call_start', choice: 0, index: 0, id: 'a', name: 'f' },
        { type: 'tool_call_delta', choice: 0, index: 0, arguments: '{}' },
        { type: 'tool_call_start', choice: 0, index: 1, id: 'b', name: 'g' },
        { type: 'tool_call_delta', choice: 0, index: 1, arguments: '{"q":1}' },
        { type: 'finish', choice: 0, reason: 'tool_calls' },
      ],
      (e) => e.end(bill(usage(50, 9))),
    );
    const evs = parseFrames(text);
    assertGrammar(evs);
    assert.equal((evs[0]!['message'] as JsonObject)['id'], 'msg_x');
    assert.deepEqual(((evs[0]!['message'] as JsonObject)['usage'] as JsonObject)['input_tokens'], 42);
    assert.deepEqual(evs.filter((e) => e['type'] === 'content_block_start').map((e) => (e['content_block'] as JsonObject)['type']), ['thinking', 'text', 'tool_use', 'tool_use']);
    assert.ok(evs.some((e) => (e['delta'] as JsonObject | undefined)?.['type'] === 'signature_delta'));
    const delta = evs.find((e) => e['type'] === 'message_delta')!;
    assert.deepEqual(delta['delta'], { stop_reason: 'tool_use', stop_sequence: null });
    assert.deepEqual(delta['usage'], { input_tokens: 50, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 9 });
  });

  /** Block types in order, and each tool_use block's id → its partial_json pieces joined. */
  const blocks = (evs: readonly JsonObject[]): { types: string[]; args: Map<string, string> } => {
    const types: string[] = [];
    const ids = new Map<number, string>();
    const args = new Map<string, string>();
    for (const e of evs) {
      if (e['type'] === 'content_block_start') {
        const b = e['content_block'] as JsonObject;
        types.push(String(b['type']));
        if (b['type'] === 'tool_use') {
          ids.set(e['index'] as number, String(b['id']));
          args.set(String(b['id']), '');
        }
      }
      const d = e['delta'] as JsonObject | undefined;
      if (e['type'] === 'content_block_delta' && d?.['type'] === 'input_json_delta') {
        const id = ids.get(e['index'] as number)!;
        args.set(id, args.get(id)! + String(d['partial_json']));
      }
    }
    return { types, args };
  };
  const start = (index: number, id: string, name = 'f'): StreamEvent => ({ type: 'tool_call_start', choice: 0, index, id, name });
  const args = (index: number, a: string): StreamEvent => ({ type: 'tool_call_delta', choice: 0, index, arguments: a });
  const text = (t: string): StreamEvent => ({ type: 'text', choice: 0, text: t });
  const finish: StreamEvent = { type: 'finish', choice: 0, reason: 'tool_calls' };
  /** Runs `events` (ending whole, or capped), checks the grammar, and returns block types and tool inputs. */
  const interleaved = (events: StreamEvent[], capped = false): { types: string[]; args: Map<string, string> } => {
    const evs = parseFrames(run(new MessagesStreamEncoder('m', 1), [{ type: 'start', id: 'x', created: 1 }, ...events], (e) => (capped ? e.capped([0]) : '') + e.end(bill(usage(1, 2)))));
    assertGrammar(evs);
    return blocks(evs);
  };

  test('(A) text after a tool call started: the text block comes first, the call whole after it', () => {
    const r = interleaved([text('a'), start(0, 'c0'), args(0, '{"x":'), text('b'), args(0, '1}'), finish]);
    assert.deepEqual(r.types, ['text', 'tool_use']);
    assert.deepEqual(JSON.parse(r.args.get('c0')!), { x: 1 });
  });

  test('(A) text only after the call started', () => {
    const r = interleaved([start(0, 'c0'), args(0, '{"x":1}'), text('late'), finish]);
    assert.deepEqual(r.types, ['text', 'tool_use']);
    assert.deepEqual(JSON.parse(r.args.get('c0')!), { x: 1 });
  });

  test('(B) arguments, text, more arguments of the same call: one block with all of them', () => {
    const r = interleaved([start(0, 'c0'), args(0, '{"a":"'), text('t'), args(0, 'b"}'), finish]);
    assert.deepEqual(r.types, ['text', 'tool_use']);
    assert.deepEqual(JSON.parse(r.args.get('c0')!), { a: 'b' });
  });

  test('(C) a late argument piece of call 0 after call 1 started', () => {
    const r = interleaved([start(0, 'c0'), args(0, '{"p":'), start(1, 'c1', 'g'), args(1, '{"q":2}'), args(0, '1}'), finish]);
    assert.deepEqual(r.types, ['tool_use', 'tool_use']);
    assert.deepEqual(JSON.parse(r.args.get('c0')!), { p: 1 });
    assert.deepEqual(JSON.parse(r.args.get('c1')!), { q: 2 });
  });

  test('(D) reasoning after a tool call started, then its arguments', () => {
    const r = interleaved([start(0, 'c0'), { type: 'reasoning', choice: 0, text: 'hm' }, args(0, '{"k":[1,2]}'), finish]);
    assert.deepEqual(r.types, ['thinking', 'tool_use']);
    assert.deepEqual(JSON.parse(r.args.get('c0')!), { k: [1, 2] });
  });

  test('pieces after the finish (some servers send them): still in grammar, the call whole', () => {
    const r = interleaved([start(0, 'c0'), args(0, '{"x":'), finish, args(0, '1}'), text('late')]);
    assert.deepEqual(r.types, ['text', 'tool_use']);
    assert.deepEqual(JSON.parse(r.args.get('c0')!), { x: 1 });
  });

  test('a call without arguments: input {} and no empty partial_json', () => {
    const evs = parseFrames(run(new MessagesStreamEncoder('m', 1), [start(0, 'c0'), finish], (e) => e.end(bill(usage(1, 1)))));
    assertGrammar(evs);
    const startEv = evs.find((e) => e['type'] === 'content_block_start')!;
    assert.deepEqual(startEv['content_block'], { type: 'tool_use', id: 'c0', name: 'f', input: {} });
    assert.equal(evs.filter((e) => e['type'] === 'content_block_delta').length, 0);
  });

  test('no finish: held calls written at the end; capped: written as far as they came, stop_reason max_tokens', () => {
    const whole = interleaved([start(0, 'c0'), args(0, '{"x":1}'), text('t')]);
    assert.deepEqual(whole.types, ['text', 'tool_use']);
    assert.deepEqual(JSON.parse(whole.args.get('c0')!), { x: 1 });
    const evs = parseFrames(run(new MessagesStreamEncoder('m', 1), [text('t'), start(0, 'c0'), args(0, '{"x":')], (e) => e.capped([0]) + e.end(bill(usage(1, 3)))));
    assertGrammar(evs);
    assert.deepEqual(blocks(evs).types, ['text', 'tool_use']);
    assert.equal(blocks(evs).args.get('c0'), '{"x":');
    assert.equal((evs.find((e) => e['type'] === 'message_delta')!['delta'] as JsonObject)['stop_reason'], 'max_tokens');
  });

  test('a held call streaming its arguments for long: a ping after each silence of KEEPALIVE_MS, none while frames flow', () => {
    let now = 0;
    const enc = new MessagesStreamEncoder('m', 1, () => now);
    const pieces: StreamEvent[] = [start(0, 'c0'), args(0, '{"x":"'), ...Array.from({ length: 10 }, () => args(0, 'ab')), args(0, '"}'), finish];
    let out = '';
    for (const ev of pieces) {
      now += KEEPALIVE_MS / 4;
      out += enc.event(ev) ?? '';
    }
    const evs = parseFrames(out + enc.end(bill(usage(1, 1))));
    assertGrammar(evs);
    // 12 pieces a quarter of the interval apart, after message_start: a ping every fourth.
    assert.equal(evs.filter((e) => e['type'] === 'ping').length, 3);
    assert.deepEqual(JSON.parse(blocks(evs).args.get('c0')!), { x: 'ab'.repeat(10) });
    now = 0;
    const busy = new MessagesStreamEncoder('m', 1, () => now);
    let text = '';
    for (const ev of [start(0, 'c0'), ...Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? args(0, 'a') : { type: 'text', choice: 0, text: 't' }) as StreamEvent)]) {
      now += KEEPALIVE_MS / 2;
      text += busy.event(ev) ?? '';
    }
    assert.doesNotMatch(text, /ping/, 'text frames in between keep the stream alive');
  });

  test('error: held calls go out before the error event', () => {
    const enc = new MessagesStreamEncoder('m', 1);
    const out = run(enc, [text('t'), start(0, 'c0'), args(0, '{"x":1}')], (e) => e.error(new GatewayError('upstream_failed'), 'req_1'));
    const evs = parseFrames(out);
    assert.deepEqual(evs.map((e) => e['type']), ['message_start', 'content_block_start', 'content_block_delta', 'content_block_stop', 'content_block_start', 'content_block_delta', 'content_block_stop', 'error']);
  });

  test('capped: the open block stopped, stop_reason max_tokens', () => {
    const text = run(new MessagesStreamEncoder('m', 1), [{ type: 'text', choice: 0, text: 'long' }], (e) => e.capped([0]) + e.end(bill(usage(1, 4))));
    const evs = parseFrames(text);
    assertGrammar(evs);
    assert.equal((evs.find((e) => e['type'] === 'message_delta')!['delta'] as JsonObject)['stop_reason'], 'max_tokens');
  });

  test('an empty answer still has message_start, message_delta and message_stop', () => {
    const evs = parseFrames(run(new MessagesStreamEncoder('m', 1), [{ type: 'finish', choice: 0, reason: 'stop' }], (e) => e.end(bill(usage(1, 0)))));
    assertGrammar(evs);
    assert.deepEqual(evs.map((e) => e['type']), ['message_start', 'message_delta', 'message_stop']);
  });

  test('native: events passed on, the model replaced, the typed ones ignored, message_delta with billed usage', () => {
    const n = (data: JsonObject): StreamEvent => ({ type: 'native', protocol: 'anthropic-messages', event: String(data['type']), data: JSON.stringify(data) });
    const enc = new MessagesStreamEncoder('client', 1);
    const text = run(
      enc,
      [
        { type: 'start', id: 'msg_u', created: 1 },
        n({ type: 'message_start', message: { id: 'msg_u', type: 'message', role: 'assistant', model: 'upstream', content: [], usage: { input_tokens: 7, output_tokens: 1 } } }),
        n({ type: 'ping' }),
        n({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
        { type: 'text', choice: 0, text: 'Hi' },
        n({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hi' } }),
        n({ type: 'content_block_stop', index: 0 }),
        { type: 'finish', choice: 0, reason: 'stop' },
        n({ type: 'message_delta', delta: { stop_reason: 'stop_sequence', stop_sequence: 'X' }, usage: { output_tokens: 3, server_tool_use: { web_search_requests: 0 } } }),
        n({ type: 'message_stop' }),
      ],
      (e) => e.end(bill(usage(7, 3))),
    );
    const evs = parseFrames(text);
    assertGrammar(evs);
    assert.equal((evs[0]!['message'] as JsonObject)['model'], 'client');
    assert.equal(evs.filter((e) => e['type'] === 'content_block_delta').length, 1, 'the typed text is not written twice');
    const delta = evs.find((e) => e['type'] === 'message_delta')!;
    assert.deepEqual(delta['delta'], { stop_reason: 'stop_sequence', stop_sequence: 'X' });
    assert.deepEqual(delta['usage'], { output_tokens: 3, server_tool_use: { web_search_requests: 0 }, input_tokens: 7, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 });
  });

  test('native capped: open upstream blocks stopped, stop_reason max_tokens', () => {
    const n = (data: JsonObject): StreamEvent => ({ type: 'native', protocol: 'anthropic-messages', event: String(data['type']), data: JSON.stringify(data) });
    const text = run(
      new MessagesStreamEncoder('c', 1),
      [n({ type: 'message_start', message: { id: 'm', content: [], usage: { input_tokens: 1 } } }), n({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } })],
      (e) => e.capped([0]) + e.end(bill(usage(1, 2))),
    );
    const evs = parseFrames(text);
    assertGrammar(evs);
    assert.equal((evs.find((e) => e['type'] === 'message_delta')!['delta'] as JsonObject)['stop_reason'], 'max_tokens');
  });

  test('error: one error event in Anthropic shape', () => {
    const frame = new MessagesStreamEncoder('m', 1).error(new GatewayError('upstream_failed'), 'req_1');
    assert.equal(frame, `event: error\ndata: ${JSON.stringify({ type: 'error', error: { type: 'api_error', message: 'The model service is unavailable' }, request_id: 'req_1' })}\n\n`);
  });
});
