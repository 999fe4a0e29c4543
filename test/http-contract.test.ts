// The HTTP contract of SPEC §3, checked on the wire with raw HTTP (no SDK): every documented error
// status, its exact body and its headers, plus the success-side guarantees that go with them
// (x-request-id everywhere, model listing by access, percent-encoded model ids, stream errors).
import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { ADMIN_KEY, startTestGateway, type HttpResult, type TestGateway, type TestKey } from './helpers/gateway.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/upstream.js';

const UPSTREAM_KEY = 'sk-upstream-secret';
const chat = (model: string, extra: Record<string, unknown> = {}) => ({ model, messages: [{ role: 'user', content: 'hi' }], ...extra });

let gw: TestGateway;
let fake: FakeUpstream;
let deadUrl: string;
let key: TestKey;

/** A port nothing listens on: bound once, then released. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', () => resolve()));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

before(async () => {
  fake = await startFakeUpstream();
  deadUrl = `http://127.0.0.1:${await closedPort()}/v1`;
  const timeouts = { timeout_ms: 1000, first_byte_timeout_ms: 1000, idle_timeout_ms: 500 };
  gw = await startTestGateway({
    server: { body_limit: 1024 },
    providers: {
      up: { type: 'openai', base_url: fake.url, api_key: UPSTREAM_KEY, ...timeouts },
      dead: { type: 'openai', base_url: deadUrl, api_key: UPSTREAM_KEY, ...timeouts },
    },
    models: {
      'gpt-x': { pricing: { input: 1, output: 2 }, deployments: [{ provider: 'up', model: 'up-model' }] },
      'dead-x': { pricing: { input: 1, output: 2 }, deployments: [{ provider: 'dead', model: 'dead-model' }] },
      'org/model-a': { pricing: { input: 1, output: 2 }, deployments: [{ provider: 'demo', model: 'demo-upstream' }] },
    },
  });
  key = await gw.createKey();
});
after(async () => {
  await gw.close();
  await fake.close();
});

/**
 * The one error shape (SPEC §3), checked exactly: the body has `error` and nothing else, `error`
 * has exactly the five fields, `code` is the status, `traceId` is the `x-request-id` header, the
 * content type is JSON, and the message leaks no upstream URL, host or credential.
 */
function assertError(
  r: Pick<HttpResult, 'status' | 'headers' | 'text'>,
  status: number,
  type: string,
  param: string | null = null,
): { message: string; type: string; param: string | null; code: string; traceId: string } {
  assert.equal(r.status, status, `expected ${status}, got ${r.status}: ${r.text}`);
  assert.match(r.headers['content-type'] ?? '', /^application\/json\b/, 'content-type is JSON');
  const body = JSON.parse(r.text) as Record<string, unknown>;
  assert.deepEqual(Object.keys(body), ['error'], 'body has exactly one key, "error"');
  const e = body['error'] as Record<string, unknown>;
  assert.deepEqual(Object.keys(e).sort(), ['code', 'message', 'param', 'traceId', 'type']);
  assert.equal(typeof e['message'], 'string');
  assert.notEqual(e['message'], '');
  assert.equal(e['type'], type);
  assert.equal(e['param'], param);
  assert.equal(e['code'], String(status));
  assert.equal(typeof e['traceId'], 'string');
  assert.equal(e['traceId'], r.headers['x-request-id'], 'traceId equals x-request-id');
  const msg = e['message'] as string;
  for (const leak of ['http://', 'https://', '127.0.0.1', 'localhost', UPSTREAM_KEY, ADMIN_KEY, 'at Object.', '    at ']) {
    assert.ok(!msg.includes(leak), `message leaks ${JSON.stringify(leak)}: ${msg}`);
  }
  return e as never;
}

function assertNoRetry(r: HttpResult): void {
  assert.equal(r.headers['x-should-retry'], 'false');
  assert.equal(r.headers['retry-after'], undefined);
}

/** Parses an SSE body into its `data:` payloads. */
function sseData(text: string): string[] {
  return text
    .split('\n\n')
    .filter((e) => e.startsWith('data: '))
    .map((e) => e.slice('data: '.length));
}

describe('400 invalid_request_error', () => {
  test('a body that is not JSON', async () => {
    const r = await gw.http('POST', '/v1/chat/completions', { key: key.key, body: '{"model": "demo",' });
    assertError(r, 400, 'invalid_request_error', null);
    assertNoRetry(r);
  });

  test('a body that is JSON but an array', async () => {
    const r = await gw.http('POST', '/v1/chat/completions', { key: key.key, body: '[{"model":"demo"}]' });
    assertError(r, 400, 'invalid_request_error', null);
    assertNoRetry(r);
  });

  test('an empty body', async () => {
    const r = await gw.http('POST', '/v1/chat/completions', { key: key.key, headers: { 'content-type': 'application/json' } });
    assertError(r, 400, 'invalid_request_error', null);
  });

  test('a body that is not JSON, sent as text/plain, is still our 400 (not a 415)', async () => {
    const r = await gw.http('POST', '/v1/chat/completions', { key: key.key, body: 'hello', headers: { 'content-type': 'text/plain' } });
    assertError(r, 400, 'invalid_request_error', null);
  });

  for (const [what, body, param] of [
    ['messages is a string', { model: 'demo', messages: 'hi' }, 'messages'],
    ['messages is missing', { model: 'demo' }, 'messages'],
    ['model is a number', { model: 42, messages: [{ role: 'user', content: 'hi' }] }, 'model'],
    ['model is missing', { messages: [{ role: 'user', content: 'hi' }] }, 'model'],
    ['temperature is a string', chat('demo', { temperature: 'hot' }), 'temperature'],
    ['max_tokens is a float', chat('demo', { max_tokens: 1.5 }), 'max_tokens'],
    ['stream is a string', chat('demo', { stream: 'yes' }), 'stream'],
    ['a message role is unknown', { model: 'demo', messages: [{ role: 'robot', content: 'hi' }] }, 'messages[0].role'],
    ['a content part is a number', { model: 'demo', messages: [{ role: 'user', content: [42] }] }, 'messages[0].content[0]'],
    ['stream_options.include_usage is a string', chat('demo', { stream: true, stream_options: { include_usage: 'y' } }), 'stream_options.include_usage'],
    ['tools is an object', chat('demo', { tools: {} }), 'tools'],
    ['response_format.type is unknown', chat('demo', { response_format: { type: 'xml' } }), 'response_format.type'],
  ] as const) {
    test(`a wrong-typed or missing field names it in param: ${what}`, async () => {
      const r = await gw.http('POST', '/v1/chat/completions', { key: key.key, body });
      assertError(r, 400, 'invalid_request_error', param);
      assertNoRetry(r);
    });
  }
});

describe('401 invalid_api_key', () => {
  const call = (headers: Record<string, string>) => gw.http('POST', '/v1/chat/completions', { body: chat('demo'), headers });

  test('no Authorization header', async () => {
    const r = await call({});
    assertError(r, 401, 'invalid_api_key');
    assertNoRetry(r);
  });

  for (const auth of ['Basic x', 'Basic dXNlcjpwYXNz', 'Token sk-abc', 'Bearer', 'Bearer ', 'sk-nobearerprefix0123456789']) {
    test(`Authorization without the Bearer scheme: ${JSON.stringify(auth)}`, async () => {
      const r = await call({ authorization: auth });
      assertError(r, 401, 'invalid_api_key');
      assertNoRetry(r);
    });
  }

  test('an unknown key', async () => {
    const r = await call({ authorization: 'Bearer sk-thisKeyDoesNotExist0123456789abcdefghijklmnop' });
    assertError(r, 401, 'invalid_api_key');
    assertNoRetry(r);
  });

  test('a revoked key, on the request path and on GET /v1/models', async () => {
    const k = await gw.createKey();
    assert.equal((await gw.http('GET', '/v1/models', { key: k.key })).status, 200);
    const del = await gw.admin('DELETE', `/keys/${k.id}`);
    assert.equal(del.status, 204);
    assert.ok(del.headers['x-request-id']);
    const r = await gw.http('POST', '/v1/chat/completions', { key: k.key, body: chat('demo') });
    assertError(r, 401, 'invalid_api_key');
    assertNoRetry(r);
    assertError(await gw.http('GET', '/v1/models', { key: k.key }), 401, 'invalid_api_key');
  });

  test('an expired key', async () => {
    const k = await gw.createKey({ expires_at: '2001-01-01T00:00:00Z' });
    const r = await gw.http('POST', '/v1/chat/completions', { key: k.key, body: chat('demo') });
    assertError(r, 401, 'invalid_api_key');
    assertNoRetry(r);
  });

  test('a key that expires later works until then', async () => {
    const k = await gw.createKey({ expires_at: new Date(Date.now() + 3_600_000).toISOString() });
    const r = await gw.http('POST', '/v1/chat/completions', { key: k.key, body: chat('demo') });
    assert.equal(r.status, 200, r.text);
  });

  test('authentication comes before body parsing: a bad key with a bad body is 401', async () => {
    const r = await gw.http('POST', '/v1/chat/completions', { body: 'not json' });
    assertError(r, 401, 'invalid_api_key');
  });
});

describe('402 insufficient_balance', () => {
  test('an account with no credit', async () => {
    const k = await gw.createKey({ credit: '0' });
    const r = await gw.http('POST', '/v1/chat/completions', { key: k.key, body: chat('demo') });
    assertError(r, 402, 'insufficient_balance');
    assertNoRetry(r);
  });

  test('an explicit max_tokens the balance cannot cover: the message says what it affords', async () => {
    // 0.001 USD at 2 USD per 1M output tokens affords about 500 tokens.
    const k = await gw.createKey({ credit: '0.001' });
    const r = await gw.http('POST', '/v1/chat/completions', { key: k.key, body: chat('demo', { max_tokens: 100_000 }) });
    const e = assertError(r, 402, 'insufficient_balance');
    assert.match(e.message, /\d+ output tokens/);
    assertNoRetry(r);
    assert.equal((await gw.http('POST', '/v1/chat/completions', { key: k.key, body: chat('demo', { max_tokens: 10 }) })).status, 200);
  });
});

describe('429 rate_limit_error', () => {
  test('over the key’s rpm: retry-after (whole seconds ≤ 60) and retry-after-ms', async () => {
    const k = await gw.createKey({ limits: { rpm: 1 } });
    const ok = await gw.http('POST', '/v1/chat/completions', { key: k.key, body: chat('demo') });
    assert.equal(ok.status, 200, ok.text);
    const r = await gw.http('POST', '/v1/chat/completions', { key: k.key, body: chat('demo') });
    assertError(r, 429, 'rate_limit_error');
    const ra = r.headers['retry-after'] ?? '';
    assert.match(ra, /^\d+$/);
    assert.ok(Number(ra) >= 1 && Number(ra) <= 60, `retry-after ${ra}`);
    assert.match(r.headers['retry-after-ms'] ?? '', /^\d+$/);
    assert.ok(Number(r.headers['retry-after-ms']) >= 1 && Number(r.headers['retry-after-ms']) <= 60_000);
    assert.equal(r.headers['x-should-retry'], undefined);
  });

  test('an exhausted daily spend quota: 429 with x-should-retry false', async () => {
    const k = await gw.createKey({ limits: { daily_spend: '0.000000001' } });
    const r = await gw.http('POST', '/v1/chat/completions', { key: k.key, body: chat('demo') });
    assertError(r, 429, 'rate_limit_error');
    assertNoRetry(r);
  });
});

describe('403', () => {
  test('api_key_frozen, and unfreezing restores access', async () => {
    const k = await gw.createKey();
    assert.equal((await gw.admin('PATCH', `/keys/${k.id}`, { frozen: true })).status, 200);
    const r = await gw.http('POST', '/v1/chat/completions', { key: k.key, body: chat('demo') });
    assertError(r, 403, 'api_key_frozen');
    assertNoRetry(r);
    assertError(await gw.http('GET', '/v1/models', { key: k.key }), 403, 'api_key_frozen');
    assert.equal((await gw.admin('PATCH', `/keys/${k.id}`, { frozen: false })).status, 200);
    assert.equal((await gw.http('POST', '/v1/chat/completions', { key: k.key, body: chat('demo') })).status, 200);
  });

  test('model_access_denied with param "model"', async () => {
    const k = await gw.createKey({ models: ['demo'] });
    const before = fake.requests.length;
    const r = await gw.http('POST', '/v1/chat/completions', { key: k.key, body: chat('gpt-x') });
    assertError(r, 403, 'model_access_denied', 'model');
    assertNoRetry(r);
    assert.equal(fake.requests.length, before, 'a denied request never reaches the upstream');
  });
});

describe('404', () => {
  test('model_not_found with param "model"', async () => {
    const r = await gw.http('POST', '/v1/chat/completions', { key: key.key, body: chat('no-such-model') });
    assertError(r, 404, 'model_not_found', 'model');
    assertNoRetry(r);
  });

  test('GET /v1/models/{id} of an unknown model is model_not_found', async () => {
    const r = await gw.http('GET', '/v1/models/no-such-model', { key: key.key });
    assertError(r, 404, 'model_not_found', 'model');
    assertNoRetry(r);
  });

  test('a URL the router cannot decode (broken percent-encoding) is a 400 in our shape, not fastify’s', async () => {
    for (const path of ['/v1/models/%E0%A4%A', '/admin/keys/%ZZ', '/v1/chat/completions%']) {
      const r = await gw.http('GET', path, { key: key.key });
      assertError(r, 400, 'invalid_request_error');
      assertNoRetry(r);
    }
  });

  test('an over-long admin id is an error in our shape, not fastify’s 414', async () => {
    const r = await gw.admin('GET', `/keys/${'k'.repeat(3000)}`);
    assertError(r, 400, 'invalid_request_error');
    assertNoRetry(r);
  });

  for (const [method, path] of [
    ['GET', '/nope'],
    ['POST', '/nope'],
    ['GET', '/v1/nope'],
    ['POST', '/v1/completions'],
    ['DELETE', '/v2/chat/completions'],
    ['GET', '/'],
    ['GET', '/v1'],
  ] as const) {
    test(`an unknown path: ${method} ${path}`, async () => {
      const r = await gw.http(method, path, { key: key.key, ...(method === 'POST' ? { body: chat('demo') } : {}) });
      assertError(r, 404, 'not_found_error');
      assertNoRetry(r);
    });
  }

  test('an unknown path without any Authorization is still 404 in our shape', async () => {
    assertError(await gw.http('GET', '/definitely/not/here?x=1'), 404, 'not_found_error');
  });

  for (const [method, path, body] of [
    ['GET', '/accounts/acct_doesnotexist', undefined],
    ['POST', '/accounts/acct_doesnotexist/credit', { amount: '1' }],
    ['GET', '/keys/key_doesnotexist', undefined],
    ['PATCH', '/keys/key_doesnotexist', { frozen: true }],
    ['DELETE', '/keys/key_doesnotexist', undefined],
  ] as const) {
    test(`an unknown admin id: ${method} /admin${path}`, async () => {
      const r = await gw.admin(method, path, body);
      assertError(r, 404, 'not_found_error');
      assertNoRetry(r);
    });
  }

  test('POST /admin/keys for an unknown account is 404 naming account_id', async () => {
    const r = await gw.admin('POST', '/keys', { account_id: 'acct_doesnotexist' });
    assertError(r, 404, 'not_found_error', 'account_id');
  });
});

describe('405 with Allow', () => {
  for (const [path, methods, allow, auth] of [
    ['/v1/chat/completions', ['GET', 'PUT', 'PATCH', 'DELETE'], 'POST', 'client'],
    ['/v1/models', ['POST', 'PUT', 'PATCH', 'DELETE'], 'GET', 'client'],
    ['/v1/models/demo', ['POST', 'DELETE'], 'GET', 'client'],
    ['/v1/embeddings', ['GET'], 'POST', 'client'],
    ['/admin/accounts', ['GET', 'PUT', 'PATCH', 'DELETE'], 'POST', 'admin'],
    ['/admin/usage', ['POST'], 'GET', 'admin'],
  ] as const) {
    for (const method of methods) {
      test(`${method} ${path}`, async () => {
        const headers = { authorization: `Bearer ${auth === 'admin' ? ADMIN_KEY : key.key}` };
        const r = await gw.http(method, path, { headers, ...(method === 'GET' || method === 'DELETE' ? {} : { body: {} }) });
        assertError(r, 405, 'invalid_request_error');
        assert.equal(r.headers['allow'], allow);
        assertNoRetry(r);
      });
    }
  }

  test('405 on a client route needs no key (HTTP-level refusal)', async () => {
    const r = await gw.http('GET', '/v1/chat/completions');
    assertError(r, 405, 'invalid_request_error');
    assert.equal(r.headers['allow'], 'POST');
  });
});

describe('413', () => {
  test('a body over server.body_limit', async () => {
    const big = JSON.stringify(chat('demo', { user: 'x'.repeat(2000) }));
    const r = await gw.http('POST', '/v1/chat/completions', { key: key.key, body: big });
    assertError(r, 413, 'invalid_request_error');
    assertNoRetry(r);
  });

  test('a body over the limit on an admin route', async () => {
    const r = await gw.admin('POST', '/accounts', { name: 'x'.repeat(2000) });
    assertError(r, 413, 'invalid_request_error');
  });

  test('a body just under the limit is read', async () => {
    const body = JSON.stringify(chat('demo'));
    const padded = body.slice(0, -1) + `,"user":"${'u'.repeat(1024 - body.length - 10)}"}`;
    assert.ok(padded.length <= 1024);
    const r = await gw.http('POST', '/v1/chat/completions', { key: key.key, body: padded });
    assert.equal(r.status, 200, r.text);
  });
});

describe('upstream failures', () => {
  test('502 api_error when the upstream refuses the connection', async () => {
    const r = await gw.http('POST', '/v1/chat/completions', { key: key.key, body: chat('dead-x') });
    const e = assertError(r, 502, 'api_error');
    assert.ok(!e.message.includes(String(new URL(deadUrl).port)), 'message does not name the upstream port');
    assert.equal(r.headers['x-should-retry'], undefined);
  });

  test('502 api_error when the upstream answers 500 (its body, with URL and key, never reaches the client)', async () => {
    fake.setBehavior({
      kind: 'status',
      status: 500,
      body: { error: { message: `crashed at ${fake.url} using ${UPSTREAM_KEY}`, type: 'server_error' } },
    });
    const r = await gw.http('POST', '/v1/chat/completions', { key: key.key, body: chat('gpt-x') });
    assertError(r, 502, 'api_error');
    assert.ok(!r.text.includes(UPSTREAM_KEY) && !r.text.includes(fake.url));
  });

  test('502 api_error when the upstream rejects the gateway credential (401)', async () => {
    fake.setBehavior({ kind: 'status', status: 401 });
    const r = await gw.http('POST', '/v1/chat/completions', { key: key.key, body: chat('gpt-x') });
    assertError(r, 502, 'api_error');
    assert.ok(!/incorrect api key/i.test(r.text), 'the upstream credential error is not passed on as the client’s');
  });

  test('502 api_error for a streamed request whose upstream answers 500 before the first byte', async () => {
    fake.setBehavior({ kind: 'status', status: 500 });
    const r = await gw.http('POST', '/v1/chat/completions', { key: key.key, body: chat('gpt-x', { stream: true }) });
    assertError(r, 502, 'api_error');
  });

  test('400 with the upstream message cleaned of URLs, hosts and the upstream key', async () => {
    fake.setBehavior({
      kind: 'status',
      status: 400,
      body: { error: { message: `context too long; see ${fake.url}/docs or 127.0.0.1:9999 (key ${UPSTREAM_KEY})`, type: 'invalid_request_error', param: 'messages' } },
    });
    const r = await gw.http('POST', '/v1/chat/completions', { key: key.key, body: chat('gpt-x') });
    const e = assertError(r, 400, 'invalid_request_error', 'messages');
    assert.match(e.message, /context too long/);
    assertNoRetry(r);
  });

  for (const [given, seconds] of [
    ['7', 7],
    ['120', 60],
  ] as const) {
    test(`503 api_error for an upstream 429 (retry-after ${given}), with retry-after ≤ 60 and retry-after-ms`, async () => {
      fake.setBehavior({ kind: 'status', status: 429, headers: { 'retry-after': given } });
      const r = await gw.http('POST', '/v1/chat/completions', { key: key.key, body: chat('gpt-x') });
      assertError(r, 503, 'api_error');
      const ra = r.headers['retry-after'] ?? '';
      assert.match(ra, /^\d+$/, 'retry-after is whole seconds');
      assert.equal(Number(ra), seconds);
      assert.ok(Number(ra) >= 1 && Number(ra) <= 60);
      assert.match(r.headers['retry-after-ms'] ?? '', /^\d+$/);
      assert.equal(Number(r.headers['retry-after-ms']), seconds * 1000);
      assert.equal(r.headers['x-should-retry'], undefined);
    });
  }

  test('503 for an upstream 429 with no retry hint still carries both headers', async () => {
    fake.setBehavior({ kind: 'status', status: 429 });
    const r = await gw.http('POST', '/v1/chat/completions', { key: key.key, body: chat('gpt-x') });
    assertError(r, 503, 'api_error');
    const ra = Number(r.headers['retry-after']);
    assert.ok(Number.isInteger(ra) && ra >= 1 && ra <= 60, `retry-after ${r.headers['retry-after']}`);
    assert.ok(Number(r.headers['retry-after-ms']) >= 1);
  });

  test('a stream that breaks before its first event is an ordinary HTTP 502', async () => {
    fake.setBehavior({ kind: 'stream', breakAfter: 0 });
    const r = await gw.http('POST', '/v1/chat/completions', { key: key.key, body: chat('gpt-x', { stream: true }) });
    assertError(r, 502, 'api_error');
  });

  test('a stream broken mid-way: 200, the chunks so far, one error event (502), no [DONE]', async () => {
    fake.setBehavior({ kind: 'stream', chunks: ['a', 'b', 'c', 'd', 'e'], breakAfter: 3, chunkDelayMs: 20 });
    const res = await request(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' },
      body: JSON.stringify(chat('gpt-x', { stream: true })),
    });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^text\/event-stream/);
    const traceId = String(res.headers['x-request-id']);
    assert.match(traceId, /\S/);
    const text = await res.body.text();
    const events = sseData(text);
    assert.ok(!events.includes('[DONE]'), 'no [DONE] after an error');
    assert.ok(events.length >= 2, `some data before the error: ${text}`);
    const parsed = events.map((e) => JSON.parse(e) as Record<string, unknown>);
    const errors = parsed.filter((p) => 'error' in p);
    assert.equal(errors.length, 1, 'exactly one error event');
    assert.equal(parsed.at(-1), errors[0], 'the error is the last event');
    const data = parsed.slice(0, -1);
    // What arrived is the upstream's chunks in order, from the first; the break lands before 'd'.
    const got = data.map((c) => (c['choices'] as { delta: { content?: string } }[])[0]?.delta.content);
    assert.ok(got.length >= 1 && got.length <= 3, `chunks before the break: ${JSON.stringify(got)}`);
    assert.deepEqual(got, ['a', 'b', 'c'].slice(0, got.length));
    for (const c of data) assert.equal(c['model'], 'gpt-x');
    assertError({ status: 502, headers: { 'content-type': 'application/json', 'x-request-id': traceId }, text: events.at(-1)! }, 502, 'api_error');
  });
});

describe('the admin API', () => {
  test('a client key on /admin is 401 invalid_api_key', async () => {
    for (const [method, path] of [
      ['POST', '/accounts'],
      ['GET', `/accounts/${key.accountId}`],
      ['GET', '/keys'],
      ['GET', '/usage'],
    ] as const) {
      const r = await gw.http(method, `/admin${path}`, { key: key.key, ...(method === 'POST' ? { body: { name: 'x' } } : {}) });
      assertError(r, 401, 'invalid_api_key');
      assertNoRetry(r);
    }
  });

  test('no key on /admin is 401 invalid_api_key', async () => {
    assertError(await gw.http('GET', '/admin/keys'), 401, 'invalid_api_key');
    assertError(await gw.http('GET', '/admin/keys', { headers: { authorization: `Basic ${ADMIN_KEY}` } }), 401, 'invalid_api_key');
  });

  test('the admin key is not a client key', async () => {
    assertError(await gw.http('POST', '/v1/chat/completions', { key: ADMIN_KEY, body: chat('demo') }), 401, 'invalid_api_key');
  });

  const bad: [string, string, unknown, string | null][] = [
    ['POST', '/accounts', {}, 'name'],
    ['POST', '/accounts', { name: 5 }, 'name'],
    ['POST', '/accounts', { name: '' }, 'name'],
    ['POST', '/accounts', { name: 'a', credit: 'lots' }, 'credit'],
    ['POST', '/accounts', { name: 'a', credit: '-1' }, 'credit'],
    ['POST', '/accounts', { name: 'a', credit: '1.0000000001' }, 'credit'],
    ['POST', '/accounts', { name: 'a', colour: 'red' }, 'colour'],
    ['POST', '/accounts', '{"name":', null],
    ['POST', '/accounts', '[1,2]', null],
    ['POST', '/keys', {}, 'account_id'],
  ];
  for (const [method, path, body, param] of bad) {
    test(`bad admin body: ${method} /admin${path} ${typeof body === 'string' ? body : JSON.stringify(body)} → 400 param ${param}`, async () => {
      const r = await gw.admin(method, path, body);
      assertError(r, 400, 'invalid_request_error', param);
      assertNoRetry(r);
    });
  }

  test('bad admin bodies on routes with an id → 400 with param', async () => {
    const k = await gw.createKey();
    const cases: [string, string, unknown, string][] = [
      ['POST', '/keys', { account_id: k.accountId, limits: { rpm: -1 } }, 'limits.rpm'],
      ['POST', '/keys', { account_id: k.accountId, limits: { daily_spend: 'x' } }, 'limits.daily_spend'],
      ['POST', '/keys', { account_id: k.accountId, limits: { burst: 1 } }, 'burst'],
      ['POST', '/keys', { account_id: k.accountId, models: 'demo' }, 'models'],
      ['POST', '/keys', { account_id: k.accountId, expires_at: 'tomorrow' }, 'expires_at'],
      ['PATCH', `/keys/${k.id}`, { frozen: 'yes' }, 'frozen'],
      ['PATCH', `/keys/${k.id}`, { models: [1] }, 'models'],
      ['POST', `/accounts/${k.accountId}/credit`, {}, 'amount'],
      ['POST', `/accounts/${k.accountId}/credit`, { amount: 0 }, 'amount'],
      ['POST', `/accounts/${k.accountId}/credit`, { amount: true }, 'amount'],
    ];
    for (const [method, path, body, param] of cases) {
      const r = await gw.admin(method, path, body);
      assertError(r, 400, 'invalid_request_error', param);
    }
  });

  test('GET /admin/usage with a bad query → 400 with param', async () => {
    assertError(await gw.admin('GET', '/usage?limit=0'), 400, 'invalid_request_error', 'limit');
    assertError(await gw.admin('GET', '/usage?limit=abc'), 400, 'invalid_request_error', 'limit');
    assertError(await gw.admin('GET', '/usage?from=yesterday'), 400, 'invalid_request_error', 'from');
  });

  test('an idempotency key reused with another amount → 400', async () => {
    const k = await gw.createKey();
    const h = { 'idempotency-key': 'idem-1' };
    assert.equal((await gw.admin('POST', `/accounts/${k.accountId}/credit`, { amount: '1' }, h)).status, 200);
    assertError(await gw.admin('POST', `/accounts/${k.accountId}/credit`, { amount: '2' }, h), 400, 'invalid_request_error', 'Idempotency-Key');
  });
});

describe('success responses', () => {
  test('every success response carries x-request-id, unique per request', async () => {
    const ids = new Set<string>();
    const results: HttpResult[] = [
      await gw.http('POST', '/v1/chat/completions', { key: key.key, body: chat('demo') }),
      await gw.http('POST', '/v1/chat/completions', { key: key.key, body: chat('demo', { stream: true }) }),
      await gw.http('GET', '/v1/models', { key: key.key }),
      await gw.http('GET', '/v1/models/demo', { key: key.key }),
      await gw.http('GET', '/v1/me', { key: key.key }),
      await gw.http('GET', '/health'),
      await gw.admin('POST', '/accounts', { name: 'rid' }),
      await gw.admin('GET', `/accounts/${key.accountId}`),
      await gw.admin('GET', '/keys'),
      await gw.admin('GET', '/usage?limit=1'),
    ];
    for (const r of results) {
      assert.ok(r.status >= 200 && r.status < 300, `${r.status}: ${r.text}`);
      const id = r.headers['x-request-id'];
      assert.ok(id !== undefined && id.length > 0, 'x-request-id present');
      ids.add(id);
    }
    assert.equal(ids.size, results.length, 'ids are unique');
  });

  test('a completion reports x-request-id and the model the client asked for', async () => {
    fake.setBehavior({ kind: 'ok' });
    const r = await gw.http('POST', '/v1/chat/completions', { key: key.key, body: chat('gpt-x') });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.model, 'gpt-x');
    assert.ok(r.headers['x-request-id']);
    assert.ok(!r.text.includes(UPSTREAM_KEY));
  });

  test('a client-supplied x-request-id is not echoed as the trace id', async () => {
    const r = await gw.http('GET', '/v1/nope', { headers: { 'x-request-id': 'forged' } });
    const e = assertError(r, 404, 'not_found_error');
    assert.notEqual(e.traceId, 'forged');
  });

  test('GET /v1/models lists exactly the models the key may use', async () => {
    const all = await gw.http('GET', '/v1/models', { key: key.key });
    assert.equal(all.status, 200);
    assert.equal(all.json.object, 'list');
    assert.deepEqual(all.json.data.map((m: { id: string }) => m.id).sort(), ['dead-x', 'demo', 'gpt-x', 'org/model-a']);
    for (const m of all.json.data) {
      assert.deepEqual(Object.keys(m).sort(), ['created', 'id', 'object', 'owned_by']);
      assert.equal(m.object, 'model');
    }

    const some = await gw.createKey({ models: ['demo', 'org/*'] });
    const r = await gw.http('GET', '/v1/models', { key: some.key });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.data.map((m: { id: string }) => m.id).sort(), ['demo', 'org/model-a']);

    const none = await gw.createKey({ models: ['nothing-matches-*'] });
    assert.deepEqual((await gw.http('GET', '/v1/models', { key: none.key })).json, { object: 'list', data: [] });
  });

  test('GET /v1/models/{id}: percent-encoded and plain ids with "/", 403 for a disallowed one', async () => {
    for (const path of ['/v1/models/org%2Fmodel-a', '/v1/models/org%2fmodel-a', '/v1/models/org/model-a']) {
      const r = await gw.http('GET', path, { key: key.key });
      assert.equal(r.status, 200, `${path}: ${r.text}`);
      assert.equal(r.json.id, 'org/model-a');
      assert.equal(r.json.object, 'model');
      assert.ok(r.headers['x-request-id']);
    }
    const limited = await gw.createKey({ models: ['demo'] });
    const denied = await gw.http('GET', '/v1/models/org%2Fmodel-a', { key: limited.key });
    assertError(denied, 403, 'model_access_denied', 'model');
    assertNoRetry(denied);
    assert.equal((await gw.http('GET', '/v1/models/demo', { key: limited.key })).status, 200);
    assertError(await gw.http('GET', '/v1/models/org%2Fmodel-a'), 401, 'invalid_api_key');
  });

  test('a model id with "/" works on the request path too', async () => {
    const r = await gw.http('POST', '/v1/chat/completions', { key: key.key, body: chat('org/model-a') });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.model, 'org/model-a');
  });
});

describe('requests the HTTP parser rejects', () => {
  /** Writes raw bytes to the gateway and reads until it closes the connection. */
  function raw(bytes: string): Promise<string> {
    const { hostname, port } = new URL(gw.url);
    return new Promise((resolve, reject) => {
      const sock = connect({ host: hostname, port: Number(port) });
      const parts: Buffer[] = [];
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new Error(`no answer; got so far: ${Buffer.concat(parts).toString()}`));
      }, 5000);
      sock.on('data', (b) => parts.push(b));
      sock.on('error', () => {});
      sock.on('close', () => {
        clearTimeout(timer);
        resolve(Buffer.concat(parts).toString('utf8'));
      });
      sock.on('connect', () => sock.write(bytes));
    });
  }

  function parseRaw(text: string): Pick<HttpResult, 'status' | 'headers' | 'text'> {
    const split = text.indexOf('\r\n\r\n');
    assert.ok(split > 0, `an HTTP response: ${JSON.stringify(text)}`);
    const [statusLine, ...lines] = text.slice(0, split).split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3}) /.exec(statusLine!);
    assert.ok(m, `status line: ${statusLine}`);
    const headers: Record<string, string> = {};
    for (const l of lines) {
      const i = l.indexOf(':');
      headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    const body = text.slice(split + 4);
    if (headers['content-length'] !== undefined) assert.equal(Buffer.byteLength(body), Number(headers['content-length']));
    return { status: Number(m[1]), headers, text: body };
  }

  test('a malformed header line gets a JSON 400 in the one shape', async () => {
    const res = parseRaw(await raw('GET /v1/models HTTP/1.1\r\nHost: x\r\nThis is not a header\r\n\r\n'));
    assertError(res, 400, 'invalid_request_error');
    assert.match(res.headers['x-request-id'] ?? '', /\S/);
  });

  test('a header name with a space gets a JSON 400 in the one shape', async () => {
    const res = parseRaw(await raw('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nBad Name: y\r\nContent-Length: 2\r\n\r\n{}'));
    assertError(res, 400, 'invalid_request_error');
  });

  test('a garbage request line gets a JSON 400 in the one shape', async () => {
    const res = parseRaw(await raw('HELLO\r\n\r\n'));
    assertError(res, 400, 'invalid_request_error');
  });

  test('headers over node’s limit get 431 in the one shape', async () => {
    const res = parseRaw(await raw(`GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`));
    assertError(res, 431, 'invalid_request_error');
  });
});
