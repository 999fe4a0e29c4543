// SPEC §8 trace context, end to end: what the client sends (x-client-request-id, traceparent,
// even an x-request-id of its own), what it gets back, and what each provider (fake OpenAI,
// Anthropic, Gemini, a native Responses upstream) receives; plus the header rules, unit by unit.
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { clientRequestId, traceParent, upstreamTrace } from '../src/gateway/trace.js';
import { AnthropicUpstream } from './helpers/anthropic-upstream.js';
import { backgroundDone, startTestGateway, type HttpResult, type TestGateway } from './helpers/gateway.js';
import { GEMINI_KEY, startGemini, type GeminiUpstream } from './helpers/gemini-upstream.js';
import { ResponsesUpstream } from './helpers/responses-upstream.js';
import { startFakeUpstream, type FakeUpstream, type RecordedRequest } from './helpers/upstream.js';

const PRICING = { input: 1, output: 2 };
const TRACE = '0af7651916cd43dd8448eb211c80319c';
const PARENT = 'b7ad6b7169203331';
const TRACEPARENT = `00-${TRACE}-${PARENT}-01`;

type Json = Record<string, unknown>;

/** The upstream continued the client's trace: same trace id and flags, a span id of the gateway's own. */
function continued(h: IncomingHttpHeaders, flags = '01'): void {
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(String(h['traceparent']));
  assert.ok(m !== null, `traceparent upstream: ${String(h['traceparent'])}`);
  assert.equal(m[1], TRACE);
  assert.notEqual(m[2], PARENT, "the gateway's own span id");
  assert.notEqual(m[2], '0'.repeat(16));
  assert.equal(m[3], flags);
}

/** A trace the gateway started: its trace id is the hex of the request's traceId. */
function started(h: IncomingHttpHeaders, traceId: string): void {
  assert.match(String(h['traceparent']), new RegExp(`^00-${traceId.slice(4)}-[0-9a-f]{16}-00$`));
}

describe('trace context end to end', () => {
  let openai: FakeUpstream;
  let anthropic: AnthropicUpstream;
  let gemini: GeminiUpstream;
  let native: ResponsesUpstream;
  let gw: TestGateway;
  let key = '';
  let keyId = '';
  let failFirst = 0;

  before(async () => {
    openai = await startFakeUpstream();
    openai.setBehavior((r: RecordedRequest) => {
      const content = (r.body as { messages?: { content?: string }[] }).messages?.[0]?.content;
      if (content === 'flaky' && failFirst-- > 0) return { kind: 'status', status: 503 };
      return (r.body as { stream?: boolean }).stream === true ? { kind: 'stream', chunks: ['Hi'] } : { kind: 'ok', text: 'Hi' };
    });
    anthropic = await AnthropicUpstream.start('sk-ant-api03-trace-0123456789abcdef');
    gemini = await startGemini();
    native = await ResponsesUpstream.start('sk-native-trace-0123456789');
    gw = await startTestGateway({
      providers: {
        oa: { type: 'openai', base_url: openai.url, api_key: 'sk-trace-openai' },
        ant: { type: 'anthropic', base_url: anthropic.url, api_key: anthropic.apiKey },
        goo: { type: 'gemini', base_url: gemini.url, api_key: GEMINI_KEY },
        nat: { type: 'openai', base_url: native.url, api_key: native.apiKey, responses: 'native' },
      },
      models: {
        gpt: { pricing: PRICING, deployments: [{ provider: 'oa', model: 'gpt-up' }] },
        claude: { pricing: PRICING, deployments: [{ provider: 'ant', model: 'claude-up' }] },
        gem: { pricing: PRICING, deployments: [{ provider: 'goo', model: 'gemini-2.5-flash' }] },
        nat: { pricing: PRICING, max_output_tokens: 1000, deployments: [{ provider: 'nat', model: 'gpt-nat' }] },
      },
      routing: { circuit: { failures: 1_000_000 }, max_retry_wait_ms: 50 },
    });
    const k = await gw.createKey();
    key = k.key;
    keyId = k.id;
  });

  after(async () => {
    await gw?.close();
    await openai?.close();
    await anthropic?.close();
    await gemini?.close();
    await native?.close();
  });

  const chat = (model: string, headers: Record<string, string>, extra: Json = {}): Promise<HttpResult> =>
    gw.http('POST', '/v1/chat/completions', { key, headers, body: { model, messages: [{ role: 'user', content: 'hello' }], ...extra } });

  async function usageOf(traceId: string): Promise<Json> {
    await backgroundDone(gw);
    const data = ((await gw.admin('GET', `/usage?key_id=${keyId}`)).json as { data: Json[] }).data;
    const rec = data.find((u) => u['trace_id'] === traceId);
    assert.ok(rec !== undefined, `usage record of ${traceId}`);
    return rec;
  }

  test('OpenAI: the client id echoed, recorded and passed on; x-request-id is the traceId; the traceparent continued', async () => {
    const r = await chat('gpt', { 'x-client-request-id': 'job-7.step_3', traceparent: TRACEPARENT, 'x-request-id': 'client-chosen-id' });
    assert.equal(r.status, 200, r.text);
    const id = r.headers['x-request-id']!;
    assert.match(id, /^req_[0-9a-f]{32}$/, "the gateway's own id, not the client's x-request-id");
    assert.equal(r.headers['x-client-request-id'], 'job-7.step_3');
    const up = openai.requests.at(-1)!.headers;
    assert.equal(up['x-request-id'], id);
    assert.equal(up['x-client-request-id'], 'job-7.step_3');
    continued(up);
    assert.equal((await usageOf(id))['client_request_id'], 'job-7.step_3');
  });

  test('malformed client ids are ignored: not echoed, not passed, not recorded; a malformed traceparent starts a new trace', async () => {
    const bad = ['has space', 'x'.repeat(129), 'a/b', 'ünï'];
    const parents = ['garbage', `01-${TRACE}-${PARENT}-01`, `00-${'0'.repeat(32)}-${PARENT}-01`, `00-${TRACE}-${'0'.repeat(16)}-01`, `00-${TRACE.toUpperCase()}-${PARENT}-01`];
    for (let i = 0; i < Math.max(bad.length, parents.length); i++) {
      const headers: Record<string, string> = { traceparent: parents[i % parents.length]! };
      // undici refuses non-ASCII header values on the way out; the rest go as they are.
      if (/^[\x20-\x7e]*$/.test(bad[i % bad.length]!)) headers['x-client-request-id'] = bad[i % bad.length]!;
      const r = await chat('gpt', headers);
      assert.equal(r.status, 200, r.text);
      const id = r.headers['x-request-id']!;
      assert.equal(r.headers['x-client-request-id'], undefined);
      const up = openai.requests.at(-1)!.headers;
      assert.equal(up['x-client-request-id'], undefined);
      assert.equal(up['x-request-id'], id);
      started(up, id);
      assert.equal((await usageOf(id))['client_request_id'], null);
    }
  });

  test('no trace from the client: a new one, under the traceId', async () => {
    const r = await chat('gpt', {});
    const up = openai.requests.at(-1)!.headers;
    started(up, r.headers['x-request-id']!);
  });

  test('retries carry the same ids', async () => {
    failFirst = 1;
    const before = openai.requests.length;
    const r = await gw.http('POST', '/v1/chat/completions', {
      key,
      headers: { 'x-client-request-id': 'retry-me', traceparent: TRACEPARENT },
      body: { model: 'gpt', messages: [{ role: 'user', content: 'flaky' }] },
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers['x-token360-attempts'], '2');
    const tries = openai.requests.slice(before).map((q) => q.headers);
    assert.equal(tries.length, 2);
    for (const h of tries) {
      assert.equal(h['x-request-id'], r.headers['x-request-id']);
      assert.equal(h['x-client-request-id'], 'retry-me');
      continued(h);
    }
    assert.equal(tries[0]!['traceparent'], tries[1]!['traceparent']);
  });

  test('Anthropic, through /v1/messages and streamed: the same headers reach it', async () => {
    const r = await gw.http('POST', '/v1/messages', {
      headers: { 'x-api-key': key, 'anthropic-version': '2023-06-01', 'x-client-request-id': 'ant-1', traceparent: `00-${TRACE}-${PARENT}-00` },
      body: { model: 'claude', max_tokens: 50, stream: true, messages: [{ role: 'user', content: 'hi' }] },
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers['x-client-request-id'], 'ant-1');
    const up = anthropic.last.headers;
    assert.equal(up['x-request-id'], r.headers['x-request-id']);
    assert.equal(up['x-client-request-id'], 'ant-1');
    assert.equal(up['x-api-key'], anthropic.apiKey, "the provider's own credential, not the client's");
    continued(up, '00');
    assert.equal((await usageOf(r.headers['x-request-id']!))['client_request_id'], 'ant-1');
  });

  test('Gemini (chat, streamed) and embeddings: the same headers reach it', async () => {
    const r = await chat('gem', { 'x-client-request-id': 'gem-1', traceparent: TRACEPARENT }, { stream: true });
    assert.equal(r.status, 200, r.text);
    const up = gemini.last.headers;
    assert.equal(up['x-request-id'], r.headers['x-request-id']);
    assert.equal(up['x-client-request-id'], 'gem-1');
    continued(up);
    const e = await gw.http('POST', '/v1/embeddings', { key, headers: { 'x-client-request-id': 'emb-1' }, body: { model: 'gem', input: 'hello' } });
    assert.equal(e.status, 200, e.text);
    assert.equal(gemini.last.headers['x-request-id'], e.headers['x-request-id']);
    assert.equal(gemini.last.headers['x-client-request-id'], 'emb-1');
  });

  test('a stored response read at its upstream carries them too', async () => {
    const made = await gw.http('POST', '/v1/responses', { key, body: { model: 'nat', input: 'remember' } });
    assert.equal(made.status, 200, made.text);
    assert.equal(native.received.at(-1)!.headers['x-request-id'], made.headers['x-request-id']);
    const got = await gw.http('GET', `/v1/responses/${made.json.id}`, { key, headers: { 'x-client-request-id': 'read-1', traceparent: TRACEPARENT } });
    assert.equal(got.status, 200, got.text);
    assert.equal(got.headers['x-client-request-id'], 'read-1');
    const up = native.received.at(-1)!;
    assert.equal(up.method, 'GET');
    assert.equal(up.headers['x-request-id'], got.headers['x-request-id']);
    assert.equal(up.headers['x-client-request-id'], 'read-1');
    continued(up.headers);
  });

  test('refused requests echo the client id too', async () => {
    const r = await gw.http('POST', '/v1/chat/completions', { key: 'sk-nope', headers: { 'x-client-request-id': 'who-am-i' }, body: {} });
    assert.equal(r.status, 401);
    assert.equal(r.headers['x-client-request-id'], 'who-am-i');
  });
});

describe('trace context rules', () => {
  test('x-client-request-id: 1–128 letters, digits, -, _, .; a repeated header is not taken', () => {
    assert.equal(clientRequestId({ 'x-client-request-id': 'a' }), 'a');
    assert.equal(clientRequestId({ 'x-client-request-id': 'A-z_0.9' }), 'A-z_0.9');
    assert.equal(clientRequestId({ 'x-client-request-id': 'x'.repeat(128) }), 'x'.repeat(128));
    for (const v of ['', 'x'.repeat(129), 'a b', 'a:b', 'a\tb', 'é']) assert.equal(clientRequestId({ 'x-client-request-id': v }), null, JSON.stringify(v));
    assert.equal(clientRequestId({ 'x-client-request-id': ['a', 'b'] }), null);
    assert.equal(clientRequestId({}), null);
  });

  test('traceparent: version 00, lower-case hex, ids not all zeros', () => {
    assert.deepEqual(traceParent({ traceparent: TRACEPARENT }), { traceId: TRACE, flags: '01' });
    for (const v of ['', 'garbage', `01-${TRACE}-${PARENT}-01`, `00-${TRACE}-${PARENT}-01-extra`, `00-${'0'.repeat(32)}-${PARENT}-01`, `00-${TRACE}-${'0'.repeat(16)}-01`, `00-${TRACE.toUpperCase()}-${PARENT}-01`, `00-${TRACE}-${PARENT}-1`]) {
      assert.equal(traceParent({ traceparent: v }), null, v);
    }
  });

  test('upstream headers: a new span id each time, the client id only when given', () => {
    const id = `req_${'ab'.repeat(16)}`;
    const a = upstreamTrace(id, null, null);
    const b = upstreamTrace(id, 'c-1', traceParent({ traceparent: TRACEPARENT }));
    assert.deepEqual(Object.keys(a).sort(), ['traceparent', 'x-request-id']);
    assert.equal(a['x-request-id'], id);
    assert.match(a['traceparent']!, new RegExp(`^00-${'ab'.repeat(16)}-[0-9a-f]{16}-00$`));
    assert.equal(b['x-client-request-id'], 'c-1');
    assert.match(b['traceparent']!, new RegExp(`^00-${TRACE}-[0-9a-f]{16}-01$`));
    assert.notEqual(upstreamTrace(id, null, null)['traceparent'], a['traceparent']);
  });
});
