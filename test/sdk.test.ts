// Acceptance tests through the real `openai` SDK (v6): what a user who points an OpenAI client at
// Token360 actually observes — completions and streams, parameter pass-through, and every error
// class the SDK maps our statuses to, each in the one SPEC §3 shape with `requestID === traceId`.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, test } from 'node:test';
import OpenAI from 'openai';
import { startTestGateway, type HttpResult, type TestGateway } from './helpers/gateway.js';
import { startFakeUpstream, type FakeUpstream, type RecordedRequest } from './helpers/upstream.js';

const SECRET = 'sk-upstream-secret';
const UPSTREAM_MODEL = 'real-upstream-name';
const PRICING = { input: 1, output: 2 }; // USD per 1M tokens
const hi = [{ role: 'user' as const, content: 'ping' }];
const FULL_TEXT = 'Hello from the fake upstream.'; // the fake's default reply

let gw: TestGateway;
let up: FakeUpstream;
let deadUrl: string;
let key: string; // an ordinary key with plenty of credit, for tests that do not care about the key
let sdk: OpenAI;

/** A port that nothing listens on: bind, read the port, close. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

before(async () => {
  up = await startFakeUpstream();
  deadUrl = `http://127.0.0.1:${await closedPort()}/v1`;
  const openai = (base_url: string, t = { timeout_ms: 1000, first_byte_timeout_ms: 1000, idle_timeout_ms: 500 }) => ({
    type: 'openai' as const, base_url, api_key: SECRET, ...t,
  });
  const via = (provider: string, model = UPSTREAM_MODEL) => ({ pricing: PRICING, deployments: [{ provider, model }] });
  gw = await startTestGateway({
    providers: {
      up: openai(up.url),
      // Same fake, short timeouts: the hang tests then take a fraction of a second.
      up_fast: openai(up.url, { timeout_ms: 300, first_byte_timeout_ms: 300, idle_timeout_ms: 300 }),
      dead: openai(deadUrl),
    },
    models: {
      'gpt-x': via('up'),
      'gpt-fast': via('up_fast'),
      'gpt-dead': via('dead'),
      'glm-5': via('demo', 'demo-upstream'),
    },
  });
  key = (await gw.createKey()).key;
  sdk = gw.client(key);
});
// Each test scripts the fake upstream itself; the rest see a healthy one.
beforeEach(() => up.setBehavior({ kind: 'ok' }));
after(async () => {
  await gw.close();
  await up.close();
});

// ---------------------------------------------------------------------------------------------
// Helpers

type APIError = InstanceType<typeof OpenAI.APIError>;
type ErrorClass = abstract new (...args: never[]) => APIError;
interface Want {
  status: number;
  type: string;
  /** Checked only when given. */
  param?: string | null;
}

/** The body's `error` object as the SDK exposes it (`err.error` in v6 is already the inner object). */
function inner(err: APIError): Record<string, unknown> {
  assert.ok(err.error !== null && typeof err.error === 'object', `no error body: ${err.message}`);
  return err.error as Record<string, unknown>;
}

/**
 * SPEC §3 as the SDK sees it: status, type, param, code === String(status), requestID === traceId.
 * `inStream`: an error event inside a 200 stream, which the SDK raises with no HTTP status.
 */
function checkShape(err: APIError, want: Want, inStream = false): void {
  const e = inner(err);
  assert.equal(err.status, inStream ? undefined : want.status);
  assert.equal(e['type'], want.type, `type; message: ${String(e['message'])}`);
  assert.equal(err.type, want.type);
  if (want.param !== undefined) assert.equal(e['param'], want.param);
  assert.equal(e['code'], String(want.status));
  assert.equal(err.code, String(want.status));
  assert.equal(typeof e['message'], 'string');
  assert.notEqual(e['message'], '');
  assert.equal(typeof e['traceId'], 'string');
  assert.notEqual(e['traceId'], '');
  assert.equal(err.requestID, e['traceId']);
  // Errors no retry can fix tell the SDK not to retry (SPEC §3).
  if (want.status < 500) assert.equal(err.headers?.get('x-should-retry'), 'false');
}

/** Awaits an SDK call that must fail with `cls` and the wanted shape; returns the error. */
async function sdkError(p: Promise<unknown>, cls: ErrorClass, want: Want): Promise<APIError> {
  const err = await p.then(
    () => assert.fail(`expected ${cls.name}, the request succeeded`),
    (e: unknown) => e,
  );
  assert.ok(err instanceof cls, `expected ${cls.name}, got ${String(err)}`);
  checkShape(err as APIError, want);
  return err as APIError;
}

/** The same checks on a raw HTTP answer, for requests the SDK cannot be made to send. */
function rawError(res: HttpResult, want: Want): void {
  assert.equal(res.status, want.status, res.text);
  const e = res.json?.error;
  assert.ok(e !== undefined && e !== null, res.text);
  assert.equal(e.type, want.type);
  if (want.param !== undefined) assert.equal(e.param, want.param);
  assert.equal(e.code, String(want.status));
  assert.equal(typeof e.message, 'string');
  assert.equal(res.headers['x-request-id'], e.traceId);
  assert.ok(e.traceId);
  if (want.status < 500) assert.equal(res.headers['x-should-retry'], 'false');
}

/** Upstream failures must never show the client the gateway's upstream credential, URL or host. */
function assertNoLeak(err: APIError): void {
  const seen = err.message + JSON.stringify(err.error);
  for (const s of [SECRET, up.url, new URL(up.url).host, deadUrl, new URL(deadUrl).host, '127.0.0.1']) {
    assert.ok(!seen.includes(s), `client-facing error leaks ${s}: ${seen}`);
  }
}

/** Drains an SDK stream, returning its chunks and, if iteration threw, the error. */
async function drain(stream: AsyncIterable<OpenAI.ChatCompletionChunk>): Promise<{ chunks: OpenAI.ChatCompletionChunk[]; text: string; error: unknown }> {
  const chunks: OpenAI.ChatCompletionChunk[] = [];
  let error: unknown = null;
  try {
    for await (const c of stream) chunks.push(c);
  } catch (e) {
    error = e;
  }
  const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
  return { chunks, text, error };
}

/** Runs `fn` and returns the JSON body of the one request the fake upstream received meanwhile. */
async function upstreamGot(fn: () => Promise<unknown>): Promise<{ body: Record<string, any>; headers: RecordedRequest['headers'] }> {
  const from = up.requests.length;
  await fn();
  const seen = up.requests.slice(from);
  assert.equal(seen.length, 1, 'expected exactly one upstream request');
  return { body: seen[0]!.body as Record<string, any>, headers: seen[0]!.headers };
}

/** Streams must end normally and carry the usage chunk exactly when the client asked for it. */
function checkStreamUsage(chunks: OpenAI.ChatCompletionChunk[], includeUsage: boolean): void {
  const withUsage = chunks.filter((c) => c.usage !== undefined && c.usage !== null);
  if (!includeUsage) {
    assert.deepEqual(withUsage, [], 'usage chunk sent although the client did not ask for it');
    assert.ok(chunks.every((c) => c.choices.length > 0), 'an empty-choices (usage) chunk reached the client');
    return;
  }
  assert.equal(withUsage.length, 1);
  const last = chunks.at(-1)!;
  assert.equal(last, withUsage[0], 'the usage chunk is the last one');
  assert.deepEqual(last.choices, []);
  assert.equal(typeof (last.usage as { cost?: unknown }).cost, 'number');
}

// ---------------------------------------------------------------------------------------------

describe('completions and streams', () => {
  test('demo model: completion with content, the client-facing model name and usage.cost', async () => {
    const res = await sdk.chat.completions.create({ model: 'demo', messages: hi });
    assert.match(res.choices[0]!.message.content ?? '', /You said: "ping"/);
    assert.equal(res.model, 'demo'); // not the deployment's 'demo-upstream'
    assert.ok(res.usage && res.usage.completion_tokens > 0);
    const cost = (res.usage as { cost?: unknown }).cost;
    assert.equal(typeof cost, 'number');
    assert.ok((cost as number) > 0);
    assert.ok(res._request_id, 'x-request-id reaches the SDK');
  });

  for (const includeUsage of [false, true]) {
    test(`demo model: stream ends normally; usage chunk ${includeUsage ? 'present' : 'absent'} with include_usage=${includeUsage}`, async () => {
      const stream = await sdk.chat.completions.create({
        model: 'demo', messages: hi, stream: true, ...(includeUsage ? { stream_options: { include_usage: true } } : {}),
      });
      const { chunks, text, error } = await drain(stream);
      assert.equal(error, null);
      assert.match(text, /You said: "ping"/);
      assert.ok(chunks.every((c) => c.model === 'demo'));
      assert.ok(chunks.some((c) => c.choices[0]?.finish_reason === 'stop'));
      checkStreamUsage(chunks, includeUsage);
    });
  }

  test('upstream: completion shows the client model name; upstream got the deployment name; usage.cost priced', async () => {
    let res!: OpenAI.ChatCompletion;
    const r = await upstreamGot(async () => {
      res = await sdk.chat.completions.create({ model: 'gpt-x', messages: hi });
    });
    assert.equal(res.choices[0]!.message.content, FULL_TEXT);
    assert.equal(res.model, 'gpt-x');
    assert.equal(r.body['model'], UPSTREAM_MODEL);
    assert.equal(r.body['stream'], undefined);
    // Upstream's usage is passed on and priced: (10 × $1 + 7 × $2) / 1M.
    assert.equal(res.usage?.prompt_tokens, 10);
    assert.equal(res.usage?.completion_tokens, 7);
    assert.equal((res.usage as { cost?: unknown }).cost, 0.000024);
    // The gateway's own credential, not the client's key, goes upstream.
    assert.equal(r.headers['authorization'], `Bearer ${SECRET}`);
  });

  for (const includeUsage of [false, true]) {
    test(`upstream: stream with include_usage=${includeUsage}; the upstream is always asked for usage`, async () => {
      let result!: Awaited<ReturnType<typeof drain>>;
      const r = await upstreamGot(async () => {
        const stream = await sdk.chat.completions.create({
          model: 'gpt-x', messages: hi, stream: true, ...(includeUsage ? { stream_options: { include_usage: true } } : {}),
        });
        result = await drain(stream);
      });
      assert.equal(result.error, null);
      assert.equal(result.text, FULL_TEXT);
      assert.ok(result.chunks.every((c) => c.model === 'gpt-x'));
      assert.equal(r.body['model'], UPSTREAM_MODEL);
      assert.equal(r.body['stream'], true);
      // Needed to bill streams even when the client did not ask for usage.
      assert.equal(r.body['stream_options']?.include_usage, true);
      checkStreamUsage(result.chunks, includeUsage);
      if (includeUsage) assert.equal((result.chunks.at(-1)!.usage as { cost?: unknown }).cost, 0.000024);
    });
  }

  test('a whole stream ends with data: [DONE] on the wire (the SDK cannot tell)', async () => {
    const res = await gw.http('POST', '/v1/chat/completions', { key, body: { model: 'gpt-x', messages: hi, stream: true } });
    assert.equal(res.status, 200);
    assert.match(res.headers['content-type'] ?? '', /^text\/event-stream/);
    assert.ok(res.headers['x-request-id']);
    assert.ok(res.text.trimEnd().endsWith('data: [DONE]'), res.text);
  });
});

describe('pass-through to the upstream', () => {
  test('tools, tool_choice, response_format, an image part and an unknown parameter arrive unchanged', async () => {
    const messages = [
      { role: 'system', content: 'Be brief.' },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'What is in this image?' },
          { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', detail: 'low' } },
        ],
      },
    ];
    const tools = [{
      type: 'function',
      function: {
        name: 'get_weather',
        description: 'Weather for a city',
        parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
        strict: true,
      },
    }];
    const tool_choice = { type: 'function', function: { name: 'get_weather' } };
    const response_format = {
      type: 'json_schema',
      json_schema: { name: 'answer', schema: { type: 'object', properties: { a: { type: 'string' } } }, strict: true },
    };
    const vendor_extension = { thinking: { type: 'enabled' }, weights: [1, 2.5, null] };
    const sent = { model: 'gpt-x', messages, tools, tool_choice, response_format, vendor_extension, temperature: 0.2 };
    const r = await upstreamGot(() => sdk.chat.completions.create(sent as unknown as OpenAI.ChatCompletionCreateParamsNonStreaming));
    const got = r.body;
    for (const name of ['messages', 'tools', 'tool_choice', 'response_format', 'vendor_extension', 'temperature'] as const) {
      assert.deepEqual(got[name], sent[name], `${name} changed on the way upstream`);
    }
  });
});

describe('401 AuthenticationError', () => {
  const auth = { status: 401, type: 'invalid_api_key', param: null };

  test('an unknown key', async () => {
    await sdkError(gw.client('sk-' + 'x'.repeat(48)).chat.completions.create({ model: 'demo', messages: hi }), OpenAI.AuthenticationError, auth);
  });

  test('a malformed key', async () => {
    await sdkError(gw.client('garbage').models.list(), OpenAI.AuthenticationError, auth);
  });

  test('no Authorization header (SDK told to drop it, and raw)', async () => {
    // The SDK insists on an apiKey but lets a null header remove what it would send. The apiKey is
    // a valid one, so this fails only if the header really is gone.
    const noAuth = new OpenAI({ apiKey: key, baseURL: gw.baseURL, maxRetries: 0, defaultHeaders: { authorization: null } });
    await sdkError(noAuth.chat.completions.create({ model: 'demo', messages: hi }), OpenAI.AuthenticationError, auth);
    rawError(await gw.http('POST', '/v1/chat/completions', { body: { model: 'demo', messages: hi } }), auth);
    // A valid key without the `Bearer ` prefix is no key either.
    rawError(await gw.http('POST', '/v1/chat/completions', { body: { model: 'demo', messages: hi }, headers: { authorization: key } }), auth);
  });

  test('a revoked key, from the next request on', async () => {
    const k = await gw.createKey();
    await gw.client(k.key).chat.completions.create({ model: 'demo', messages: hi });
    assert.equal((await gw.admin('DELETE', `/keys/${k.id}`)).status, 204);
    await sdkError(gw.client(k.key).chat.completions.create({ model: 'demo', messages: hi }), OpenAI.AuthenticationError, auth);
  });

  test('an expired key: created expired, or expired by PATCH', async () => {
    const past = new Date(Date.now() - 60_000).toISOString();
    const born = await gw.createKey({ expires_at: past });
    await sdkError(gw.client(born.key).chat.completions.create({ model: 'demo', messages: hi }), OpenAI.AuthenticationError, auth);

    const k = await gw.createKey({ expires_at: new Date(Date.now() + 3_600_000).toISOString() });
    await gw.client(k.key).chat.completions.create({ model: 'demo', messages: hi });
    assert.equal((await gw.admin('PATCH', `/keys/${k.id}`, { expires_at: past })).status, 200);
    await sdkError(gw.client(k.key).chat.completions.create({ model: 'demo', messages: hi }), OpenAI.AuthenticationError, auth);
  });
});

describe('403 PermissionDeniedError', () => {
  test('a frozen key, effective on the very next request, and thawed again', async () => {
    const k = await gw.createKey();
    const c = gw.client(k.key);
    await c.chat.completions.create({ model: 'demo', messages: hi });
    assert.equal((await gw.admin('PATCH', `/keys/${k.id}`, { frozen: true })).status, 200);
    const frozen = { status: 403, type: 'api_key_frozen' };
    await sdkError(c.chat.completions.create({ model: 'demo', messages: hi }), OpenAI.PermissionDeniedError, frozen);
    await sdkError(c.chat.completions.create({ model: 'demo', messages: hi, stream: true }), OpenAI.PermissionDeniedError, frozen);
    assert.equal((await gw.admin('PATCH', `/keys/${k.id}`, { frozen: false })).status, 200);
    await c.chat.completions.create({ model: 'demo', messages: hi });
  });

  test('a model outside the key\'s globs; the glob itself admits its models', async () => {
    const c = gw.client((await gw.createKey({ models: ['glm-*'] })).key);
    const ok = await c.chat.completions.create({ model: 'glm-5', messages: hi });
    assert.equal(ok.model, 'glm-5');
    const denied = { status: 403, type: 'model_access_denied', param: 'model' };
    await sdkError(c.chat.completions.create({ model: 'demo', messages: hi }), OpenAI.PermissionDeniedError, denied);
    await sdkError(c.chat.completions.create({ model: 'gpt-x', messages: hi, stream: true }), OpenAI.PermissionDeniedError, denied);
    await sdkError(c.models.retrieve('demo'), OpenAI.PermissionDeniedError, denied);
    // The listing leaves the denied models out rather than failing.
    assert.deepEqual((await c.models.list()).data.map((m) => m.id), ['glm-5']);
  });
});

describe('404 NotFoundError', () => {
  const notFound = { status: 404, type: 'model_not_found', param: 'model' };
  test('an unknown model, on completions, streams and the model route', async () => {
    await sdkError(sdk.chat.completions.create({ model: 'no-such-model', messages: hi }), OpenAI.NotFoundError, notFound);
    await sdkError(sdk.chat.completions.create({ model: 'no-such-model', messages: hi, stream: true }), OpenAI.NotFoundError, notFound);
    await sdkError(sdk.models.retrieve('no-such-model'), OpenAI.NotFoundError, notFound);
  });
});

describe('400 BadRequestError names the offending param', () => {
  const msg = (content: unknown) => [{ role: 'user', content }];
  // [what, body, param]. The SDK serialises whatever it is given, so all of these go through it.
  const cases: [string, Record<string, unknown>, string][] = [
    ['missing model', { messages: hi }, 'model'],
    ['model not a string', { model: 42, messages: hi }, 'model'],
    ['missing messages', { model: 'demo' }, 'messages'],
    ['messages not an array', { model: 'demo', messages: 'hi' }, 'messages'],
    ['empty messages', { model: 'demo', messages: [] }, 'messages'],
    ['message not an object', { model: 'demo', messages: ['hi'] }, 'messages[0]'],
    ['bad role', { model: 'demo', messages: [{ role: 'robot', content: 'x' }] }, 'messages[0].role'],
    ['bad content type', { model: 'demo', messages: msg(42) }, 'messages[0].content'],
    ['bad content part type', { model: 'demo', messages: [...hi, { role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'video', url: 'x' }] }] }, 'messages[1].content[1].type'],
    ['image part without url', { model: 'demo', messages: msg([{ type: 'image_url', image_url: {} }]) }, 'messages[0].content[0].image_url.url'],
    ['tool message without tool_call_id', { model: 'demo', messages: [{ role: 'tool', content: 'x' }] }, 'messages[0].tool_call_id'],
    ['temperature out of range', { model: 'demo', messages: hi, temperature: 2.5 }, 'temperature'],
    ['top_p out of range', { model: 'demo', messages: hi, top_p: 1.5 }, 'top_p'],
    ['n not an integer', { model: 'demo', messages: hi, n: 1.5 }, 'n'],
    ['max_tokens 0', { model: 'demo', messages: hi, max_tokens: 0 }, 'max_tokens'],
    ['max_completion_tokens negative', { model: 'demo', messages: hi, max_completion_tokens: -1 }, 'max_completion_tokens'],
    ['stream not a boolean', { model: 'demo', messages: hi, stream: 'yes' }, 'stream'],
    ['stop with 5 entries', { model: 'demo', messages: hi, stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop'],
    ['bad tools[0].function.name', { model: 'demo', messages: hi, tools: [{ type: 'function', function: { name: 'get weather!' } }] }, 'tools[0].function.name'],
    ['bad tool_choice', { model: 'demo', messages: hi, tool_choice: 'sometimes' }, 'tool_choice'],
    ['bad response_format.type', { model: 'demo', messages: hi, response_format: { type: 'xml' } }, 'response_format.type'],
    ['stream_options without stream', { model: 'demo', messages: hi, stream_options: { include_usage: true } }, 'stream_options'],
    ['include_usage not a boolean', { model: 'demo', messages: hi, stream: true, stream_options: { include_usage: 'yes' } }, 'stream_options.include_usage'],
  ];
  for (const [what, sent, param] of cases) {
    test(what, async () => {
      const call = sdk.chat.completions.create(sent as unknown as OpenAI.ChatCompletionCreateParamsNonStreaming);
      await sdkError(call, OpenAI.BadRequestError, { status: 400, type: 'invalid_request_error', param });
    });
  }

  test('bodies the SDK cannot send: not JSON, not an object, empty', async () => {
    const bad = { status: 400, type: 'invalid_request_error', param: null };
    rawError(await gw.http('POST', '/v1/chat/completions', { key, body: '{"model":', headers: { 'content-type': 'application/json' } }), bad);
    rawError(await gw.http('POST', '/v1/chat/completions', { key, body: '[1,2]', headers: { 'content-type': 'application/json' } }), bad);
    rawError(await gw.http('POST', '/v1/chat/completions', { key, headers: { 'content-type': 'application/json' } }), bad);
  });
});

describe('upstream failures', () => {
  const failed = { status: 502, type: 'api_error', param: null };
  const call = (model: string, extra: Record<string, unknown> = {}) =>
    sdk.chat.completions.create({ model, messages: hi, ...extra } as OpenAI.ChatCompletionCreateParamsNonStreaming);

  test('connection refused → 502', async () => {
    assertNoLeak(await sdkError(call('gpt-dead'), OpenAI.InternalServerError, failed));
    assertNoLeak(await sdkError(call('gpt-dead', { stream: true }), OpenAI.InternalServerError, failed));
  });

  test('connection reset → 502', async () => {
    up.setBehavior({ kind: 'reset' });
    assertNoLeak(await sdkError(call('gpt-x'), OpenAI.InternalServerError, failed));
    assertNoLeak(await sdkError(call('gpt-x', { stream: true }), OpenAI.InternalServerError, failed));
  });

  test('no answer within the provider timeout → 502', async () => {
    up.setBehavior({ kind: 'hang' });
    assertNoLeak(await sdkError(call('gpt-fast'), OpenAI.InternalServerError, failed));
    // Streamed: no first byte within first_byte_timeout_ms.
    assertNoLeak(await sdkError(call('gpt-fast', { stream: true }), OpenAI.InternalServerError, failed));
  });

  test('upstream 500 → 502, also for a stream before its first byte', async () => {
    up.setBehavior({ kind: 'status', status: 500 });
    assertNoLeak(await sdkError(call('gpt-x'), OpenAI.InternalServerError, failed));
    assertNoLeak(await sdkError(call('gpt-x', { stream: true }), OpenAI.InternalServerError, failed));
  });

  test('upstream 401 (the gateway\'s own credential) → 502 without the credential or URL', async () => {
    // An upstream that echoes the credential and its own URL, as some do.
    up.setBehavior({
      kind: 'status', status: 401,
      body: { error: { message: `Incorrect API key provided: ${SECRET}. See ${up.url}/keys`, type: 'invalid_request_error', code: 'invalid_api_key' } },
    });
    assertNoLeak(await sdkError(call('gpt-x'), OpenAI.InternalServerError, failed));
  });

  test('upstream 400 → BadRequestError with the upstream message, URLs and secrets stripped', async () => {
    const message = `This model's maximum context length is 8192 tokens. See https://platform.example.com/docs/limits or ${up.url}/help (key ${SECRET}).`;
    up.setBehavior({ kind: 'status', status: 400, body: { error: { message, type: 'invalid_request_error', param: 'messages', code: 'context_length_exceeded' } } });
    const err = await sdkError(call('gpt-x'), OpenAI.BadRequestError, { status: 400, type: 'invalid_request_error' });
    const m = String(inner(err)['message']);
    assert.match(m, /maximum context length is 8192 tokens/);
    assert.ok(!/https?:\/\//.test(m), m);
    assert.ok(!m.includes('platform.example.com'), m);
    assertNoLeak(err);
  });

  test('upstream 429 → 503 with retry-after from the upstream', async () => {
    up.setBehavior({ kind: 'status', status: 429, headers: { 'retry-after': '7' } });
    const err = await sdkError(call('gpt-x'), OpenAI.InternalServerError, { status: 503, type: 'api_error', param: null });
    assert.equal(err.headers?.get('retry-after'), '7');
    assert.equal(err.headers?.get('retry-after-ms'), '7000');
    assertNoLeak(err);
  });

  describe('after the first byte: one error event, which the SDK raises while iterating', () => {
    /** The event's code is the 502 that can no longer be an HTTP status; requestID still matches. */
    async function brokenStream(model: string): Promise<string> {
      const stream = await sdk.chat.completions.create({ model, messages: hi, stream: true });
      const { text, error } = await drain(stream);
      assert.ok(error instanceof OpenAI.APIError, `expected the SDK to raise, got ${String(error)}`);
      checkShape(error, failed, true);
      assertNoLeak(error);
      return text;
    }

    test('upstream connection breaks mid-stream', async () => {
      // chunkDelayMs lets the fake flush its writes: node's http corks a write until the next tick,
      // and the fake's kill in the same tick discards it, so without a gap nothing would arrive.
      up.setBehavior({ kind: 'stream', breakAfter: 3, chunkDelayMs: 20 });
      const text = await brokenStream('gpt-x');
      // What came before the break reaches the client: a non-empty, incomplete prefix.
      assert.match(text, /^Hello/);
      assert.ok(FULL_TEXT.startsWith(text) && text !== FULL_TEXT, text);
    });

    test('upstream falls silent mid-stream past idle_timeout_ms', async () => {
      up.setBehavior({ kind: 'stream', hangAfter: 3 });
      assert.equal(await brokenStream('gpt-fast'), 'Hello from the');
    });

    test('on the wire: the error event, and no [DONE]', async () => {
      up.setBehavior({ kind: 'stream', breakAfter: 2, chunkDelayMs: 20 });
      const res = await gw.http('POST', '/v1/chat/completions', { key, body: { model: 'gpt-x', messages: hi, stream: true } });
      assert.equal(res.status, 200); // the stream had begun: too late for an HTTP status
      const events = res.text.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => JSON.parse(e.slice(6)) as Record<string, any>);
      assert.ok(!res.text.includes('[DONE]'), res.text);
      assert.ok(events.length >= 2, res.text); // some content, then the error
      assert.deepEqual(events.map((e) => 'error' in e), [...events.slice(1).map(() => false), true], 'one error event, last');
      const { error } = events.at(-1)!;
      assert.equal(error.code, '502');
      assert.equal(error.type, 'api_error');
      assert.equal(error.traceId, res.headers['x-request-id']);
    });
  });
});
