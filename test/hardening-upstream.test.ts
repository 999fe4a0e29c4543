// Hostile or broken upstreams (issue 8): what a client sees when the model service leaks internals
// in a 400, answers with a redirect, sends a body far larger than any answer should be, sends an
// SSE line that never ends, or drips bytes without ever completing an event.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { test, type TestContext } from 'node:test';
import OpenAI from 'openai';
import { request } from 'undici';
import type { RawConfig } from '../src/config/schema.js';
import { ADMIN_KEY, startTestGateway, type TestGateway } from './helpers/gateway.js';
import { exited, freePort, spawnGateway } from './helpers/process.js';
import { bigEmbeddingsBody, startFakeUpstream, type Behavior, type FakeUpstream } from './helpers/upstream.js';

const UPSTREAM_KEY = 'sk-upstream-secret-0123456789';
const price = { input: 1, output: 2 };
const hi = [{ role: 'user' as const, content: 'hi' }];

interface Setup {
  gw: TestGateway;
  key: string;
  /** First deployment of `two`, the only one of `one`. */
  a: FakeUpstream;
  /** Second deployment of `two` (lower priority). */
  b: FakeUpstream;
}

/** A gateway with model `one` (upstream a) and `two` (a, then b), each upstream with the given timeouts. */
async function setup(t: TestContext, opts: { a?: Behavior; server?: RawConfig['server']; timeouts?: Record<string, number> } = {}): Promise<Setup> {
  const a = await startFakeUpstream({ behavior: opts.a });
  const b = await startFakeUpstream();
  const timeouts = { timeout_ms: 20_000, first_byte_timeout_ms: 20_000, idle_timeout_ms: 20_000, ...opts.timeouts };
  const gw = await startTestGateway({
    server: opts.server,
    providers: {
      a: { type: 'openai', base_url: a.url, api_key: UPSTREAM_KEY, ...timeouts },
      b: { type: 'openai', base_url: b.url, api_key: UPSTREAM_KEY, ...timeouts },
    },
    models: {
      one: { pricing: price, deployments: [{ provider: 'a', model: 'up-a' }] },
      two: { pricing: price, deployments: [{ provider: 'a', model: 'up-a', priority: 0 }, { provider: 'b', model: 'up-b', priority: 1 }] },
    },
  });
  t.after(async () => {
    await gw.close();
    await a.close();
    await b.close();
  });
  const { key } = await gw.createKey({ credit: '1000' });
  return { gw, key, a, b };
}

/** Every `data:` payload of an SSE body, parsed. */
function events(text: string): Record<string, any>[] {
  return text
    .split('\n\n')
    .filter((e) => e.startsWith('data: ') && e !== 'data: [DONE]')
    .map((e) => JSON.parse(e.slice(6)) as Record<string, any>);
}

function assertShape(json: any, status: number, traceId?: string): void {
  assert.deepEqual(Object.keys(json).sort(), ['error']);
  assert.deepEqual(Object.keys(json.error).sort(), ['code', 'message', 'param', 'traceId', 'type']);
  assert.equal(json.error.code, String(status));
  if (traceId !== undefined) assert.equal(json.error.traceId, traceId);
}

// ---------------------------------------------------------------------------------------------
// 1. An upstream 400's message, cleaned.

test("an upstream 400's message reaches the OpenAI SDK cleaned of hosts, addresses, URLs, credentials and paths; the human part and param survive", async (t) => {
  const human = "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.";
  const leaks = [
    'http://10.0.0.12:8080/v1/chat',
    'postgres://svc:Hunter2pw@db-internal.corp/models',
    'db-internal.corp',
    'ip-10-0-0-12.ec2.internal',
    'redis.svc.cluster.local:6379',
    'fe80::1%eth0',
    '2001:db8::1',
    '[::1]:8080',
    '172.16.4.2',
    'hunter2',
    'sk-proj-abcdefghijklmnop12345678',
    'AKIAIOSFODNN7EXAMPLE',
    'eyJhbGciOiJIUzI1NiJ9.payload.sig',
    'org-AbCdEfGh12345678',
    'S3cr3tValue',
    '/var/lib/models/cache.bin',
    'C:\\Users\\svc\\token.txt',
  ];
  const message =
    `Routing via http://10.0.0.12:8080/v1/chat (postgres://svc:Hunter2pw@db-internal.corp/models) on db-internal.corp, ` +
    `ip-10-0-0-12.ec2.internal and redis.svc.cluster.local:6379 from fe80::1%eth0, 2001:db8::1, [::1]:8080 and 172.16.4.2 ` +
    `with PASSWORD=hunter2 api_key: sk-proj-abcdefghijklmnop12345678 AKIAIOSFODNN7EXAMPLE Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig ` +
    `org-AbCdEfGh12345678 Secret: S3cr3tValue, reading /var/lib/models/cache.bin and C:\\Users\\svc\\token.txt. ${human}`;
  const { gw, key } = await setup(t, {
    a: { kind: 'status', status: 400, body: { error: { message, type: 'invalid_request_error', param: 'messages', code: 'context_length_exceeded' } } },
  });
  const err = await gw
    .client(key)
    .chat.completions.create({ model: 'one', messages: hi })
    .then(() => assert.fail('expected a 400'), (e: unknown) => e);
  assert.ok(err instanceof OpenAI.BadRequestError, String(err));
  assert.equal(err.status, 400);
  assert.equal(err.param, 'messages');
  assert.ok(err.message.includes(human), err.message);
  for (const leak of leaks) assert.ok(!err.message.includes(leak), `${leak} leaked: ${err.message}`);
  assert.ok(!err.message.includes(UPSTREAM_KEY));
});

// ---------------------------------------------------------------------------------------------
// 2. A redirect is a failure.

const completion = {
  id: 'chatcmpl-redirect',
  object: 'chat.completion',
  created: 1_700_000_000,
  model: 'up-a',
  choices: [{ index: 0, message: { role: 'assistant', content: 'FROM THE REDIRECT' }, logprobs: null, finish_reason: 'stop' }],
  usage: { prompt_tokens: 1, completion_tokens: 3, total_tokens: 4 },
};
const redirect: Behavior = {
  kind: 'raw',
  status: 302,
  headers: { location: 'http://10.9.9.9/elsewhere', 'content-type': 'application/json' },
  body: JSON.stringify(completion),
};
const redirectStream: Behavior = {
  kind: 'raw',
  status: 302,
  headers: { location: 'http://10.9.9.9/elsewhere', 'content-type': 'text/event-stream' },
  body: `data: ${JSON.stringify({ ...completion, object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: 'FROM THE REDIRECT' }, finish_reason: 'stop' }] })}\n\ndata: [DONE]\n\n`,
};

test('a 302 with a completion-looking body is a failure: the next deployment answers; with no other, 502 api_error', async (t) => {
  const { gw, key, a, b } = await setup(t, { a: redirect });
  const served = await gw.http('POST', '/v1/chat/completions', { key, body: { model: 'two', messages: hi } });
  assert.equal(served.status, 200, served.text);
  assert.equal(served.json.choices[0].message.content, 'Hello from the fake upstream.');
  assert.equal(b.requests.length, 1, 'the second deployment served');

  const failed = await gw.http('POST', '/v1/chat/completions', { key, body: { model: 'one', messages: hi } });
  assert.equal(failed.status, 502, failed.text);
  assertShape(failed.json, 502, failed.headers['x-request-id']);
  assert.equal(failed.json.error.type, 'api_error');
  assert.ok(!failed.text.includes('REDIRECT') && !failed.text.includes('10.9.9.9'));
  assert.equal(a.requests.length, 2, 'not followed: only the two requests the gateway sent');
});

test('a 302 to a streamed request is a failure before the first byte: failover, else 502', async (t) => {
  const { gw, key, b } = await setup(t, { a: redirectStream });
  const served = await gw.http('POST', '/v1/chat/completions', { key, body: { model: 'two', stream: true, messages: hi } });
  assert.equal(served.status, 200);
  assert.equal(events(served.text).map((e) => e.choices[0]?.delta?.content ?? '').join(''), 'Hello from the fake upstream.');
  assert.equal(b.requests.length, 1);
  const failed = await gw.http('POST', '/v1/chat/completions', { key, body: { model: 'one', stream: true, messages: hi } });
  assert.equal(failed.status, 502, failed.text);
  assertShape(failed.json, 502);
  assert.ok(!failed.text.includes('REDIRECT'));
});

test('a 302 to an embeddings request is a failure: failover, else 502', async (t) => {
  const fake = { object: 'list', data: [{ object: 'embedding', index: 0, embedding: [9, 9, 9] }], model: 'up-a', usage: { prompt_tokens: 1, total_tokens: 1 } };
  const { gw, key, b } = await setup(t, { a: { ...redirect, body: JSON.stringify(fake) } });
  const served = await gw.http('POST', '/v1/embeddings', { key, body: { model: 'two', input: 'hi' } });
  assert.equal(served.status, 200, served.text);
  assert.deepEqual(served.json.data[0].embedding, [0.1, 0.2, 0.3]);
  assert.equal(served.json.model, 'two');
  assert.equal(b.requests.length, 1);
  const failed = await gw.http('POST', '/v1/embeddings', { key, body: { model: 'one', input: 'hi' } });
  assert.equal(failed.status, 502, failed.text);
  assertShape(failed.json, 502);
});

// ---------------------------------------------------------------------------------------------
// 3. Large non-streamed answers.

/** Checks a relayed big embeddings body: every vector as the upstream sent it, the client's model name, and the usage. */
/** An input our tokenizer counts at least as many tokens as the `big` body of `size` reports, so that its usage is believed (SPEC §4: never more than the hold). */
function inputFor(size: number): string {
  return 'word '.repeat(bigEmbeddingsBody(size).promptTokens);
}

function assertBigBody(text: string, size: number, model: string): void {
  const big = bigEmbeddingsBody(size);
  const upstream = JSON.parse(big.bytes.toString('utf8')) as { data: { index: number; embedding: number[] }[] };
  const got = JSON.parse(text) as { data: { index: number; embedding: number[] }[]; model: string; usage: Record<string, number> };
  assert.equal(got.model, model);
  assert.equal(got.usage['prompt_tokens'], big.promptTokens);
  assert.equal(typeof got.usage['cost'], 'number');
  assert.equal(got.data.length, upstream.data.length);
  for (const i of [0, Math.floor(got.data.length / 2), got.data.length - 1]) assert.deepEqual(got.data[i], upstream.data[i]);
}

test('8 concurrent 60 MB embeddings answers: every client gets its whole body, and the gateway process stays far below the old 1.7 GiB', { timeout: 180_000 }, async (t) => {
  const SIZE = 60_000_000;
  const fake = await startFakeUpstream({ behavior: { kind: 'big', bytes: SIZE, barrier: 8 } });
  const dir = mkdtempSync(join(tmpdir(), 'token360-big-'));
  const config = join(dir, 'token360.yaml');
  writeFileSync(
    config,
    [
      `database: sqlite:${join(dir, 'big.db')}`,
      `admin_key: ${ADMIN_KEY}`,
      'log_level: warn',
      'providers:',
      `  up: { type: openai, base_url: "${fake.url}", api_key: ${UPSTREAM_KEY} }`,
      'models:',
      '  emb: { pricing: { input: 1, output: 0 }, deployments: [{ provider: up, model: big-upstream-model }] }',
    ].join('\n'),
  );
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  let child: ChildProcess | null = await spawnGateway(config, port);
  t.after(async () => {
    if (child !== null && child.exitCode === null) {
      child.kill('SIGKILL');
      await exited(child);
    }
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const admin = (path: string, body: unknown) =>
    fetch(base + path, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify(body) }).then(
      (r) => r.json() as Promise<Record<string, string>>,
    );
  const account = await admin('/admin/accounts', { name: 'big', credit: '1000' });
  const { key } = await admin('/admin/keys', { account_id: account['id'] });
  bigEmbeddingsBody(SIZE); // built before the clock and the requests start

  const results = await Promise.all(
    Array.from({ length: 8 }, async () => {
      const res = await request(`${base}/v1/embeddings`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'emb', input: inputFor(SIZE) }),
        headersTimeout: 120_000,
        bodyTimeout: 120_000,
      });
      return { status: res.statusCode, text: await res.body.text() };
    }),
  );
  const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
  const peakKb = Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]);
  child.kill('SIGTERM');
  await exited(child);
  child = null;
  for (const r of results) {
    assert.equal(r.status, 200, r.text.slice(0, 300));
    assertBigBody(r.text, SIZE, 'emb');
  }
  const peakMb = peakKb / 1024;
  t.diagnostic(`gateway peak RSS ${peakMb.toFixed(0)} MiB for 8 x 60 MB`);
  // 480 MB of bodies must be held at once (the budget allows it); before the fix the copies took it to 1.7 GiB.
  assert.ok(peakMb < 900, `gateway peak RSS ${peakMb.toFixed(0)} MiB`);
});

test('a body over the per-response cap is a clean 502 whether announced by Content-Length or not; the gateway serves on', async (t) => {
  const { gw, key, a } = await setup(t, { server: { max_upstream_response_bytes: 4 * 1024 * 1024 } });
  for (const chunked of [false, true]) {
    a.setBehavior({ kind: 'big', bytes: 6 * 1024 * 1024, chunked });
    const r = await gw.http('POST', '/v1/embeddings', { key, body: { model: 'one', input: 'hi' } });
    assert.equal(r.status, 502, r.text.slice(0, 200));
    assertShape(r.json, 502, r.headers['x-request-id']);
    assert.equal(r.json.error.type, 'api_error');
    assert.match(r.json.error.message, /too large/);
  }
  // Just under the cap passes, byte for byte what the upstream sent but the model name and cost.
  a.setBehavior({ kind: 'big', bytes: 3 * 1024 * 1024 });
  const ok = await gw.http('POST', '/v1/embeddings', { key, body: { model: 'one', input: inputFor(3 * 1024 * 1024) } });
  assert.equal(ok.status, 200);
  assertBigBody(ok.text, 3 * 1024 * 1024, 'one');
  a.setBehavior({ kind: 'ok' });
  const chat = await gw.http('POST', '/v1/chat/completions', { key, body: { model: 'one', messages: hi } });
  assert.equal(chat.status, 200);
});

test('over the process-wide buffer budget: the answers that fit are whole, the others a clean 502', { timeout: 60_000 }, async (t) => {
  const SIZE = 10 * 1024 * 1024;
  // Room for two bodies at a time; the upstream announces all eight before it sends any.
  const { gw, key, a } = await setup(t, { a: { kind: 'big', bytes: SIZE, barrier: 8 }, server: { max_buffered_response_bytes: 25 * 1024 * 1024 } });
  const results = await Promise.all(Array.from({ length: 8 }, () => gw.http('POST', '/v1/embeddings', { key, body: { model: 'one', input: inputFor(SIZE) } })));
  const ok = results.filter((r) => r.status === 200);
  const refused = results.filter((r) => r.status !== 200);
  assert.equal(ok.length, 2, results.map((r) => r.status).join(','));
  for (const r of ok) assertBigBody(r.text, SIZE, 'one');
  for (const r of refused) {
    assert.equal(r.status, 502);
    assertShape(r.json, 502);
    assert.match(r.json.error.message, /too large/);
  }
  // Once they are sent, the budget is free again.
  a.setBehavior({ kind: 'big', bytes: SIZE });
  const again = await Promise.all([1, 2].map(() => gw.http('POST', '/v1/embeddings', { key, body: { model: 'one', input: 'hi' } })));
  assert.deepEqual(again.map((r) => r.status), [200, 200]);
});

// ---------------------------------------------------------------------------------------------
// 4. An SSE line that never ends.

test('an SSE line with no newline is cut at max_stream_event_bytes before the first byte: failover, else a prompt 502', { timeout: 60_000 }, async (t) => {
  const { gw, key, a, b } = await setup(t, { a: { kind: 'hugeLine', bytes: 300 * 1024 * 1024 }, server: { max_stream_event_bytes: 1024 * 1024 } });
  const started = performance.now();
  const failed = await gw.http('POST', '/v1/chat/completions', { key, body: { model: 'one', stream: true, messages: hi } });
  assert.equal(failed.status, 502, failed.text.slice(0, 200));
  assertShape(failed.json, 502);
  assert.ok(performance.now() - started < 15_000);
  await a.waitForClientAbort(10_000);

  const served = await gw.http('POST', '/v1/chat/completions', { key, body: { model: 'two', stream: true, messages: hi } });
  assert.equal(served.status, 200);
  assert.equal(events(served.text).map((e) => e.choices[0]?.delta?.content ?? '').join(''), 'Hello from the fake upstream.');
  assert.equal(b.requests.length, 1);
});

test('an SSE line with no newline after the first event: the chunks so far, then a 502 error event, no [DONE]', { timeout: 60_000 }, async (t) => {
  // The default cap (8 MiB); the upstream would send 300 MB.
  const { gw, key, a } = await setup(t, { a: { kind: 'hugeLine', bytes: 300 * 1024 * 1024, events: 2 } });
  const started = performance.now();
  const res = await request(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'one', stream: true, messages: hi }),
  });
  assert.equal(res.statusCode, 200);
  const text = await res.body.text();
  const got = events(text);
  assert.ok(!text.includes('[DONE]'));
  assert.equal(got.slice(0, -1).map((e) => e.choices[0].delta.content).join(''), 'part0 part1');
  assertShape(got[got.length - 1], 502, res.headers['x-request-id'] as string);
  // Cut once 8 MiB were pending, not after the whole 300 MB (nor by the 20 s idle timeout).
  assert.ok(performance.now() - started < 15_000, `cut after ${(performance.now() - started).toFixed(0)} ms`);
  await a.waitForClientAbort(10_000);
});

// ---------------------------------------------------------------------------------------------
// 5. first_byte_timeout_ms covers the first event; idle_timeout_ms is about lines, not bytes.

for (const [what, pattern] of [
  ['keep-alive comments', ':\n'],
  ['the start of an event that never ends', 'data: {"choices":[{"delta":{"content":"never finished'],
] as const) {
  test(`an upstream dripping ${what} a byte every 200 ms before its first event is cut at first_byte_timeout_ms: 502`, { timeout: 30_000 }, async (t) => {
    const { gw, key, a } = await setup(t, { a: { kind: 'drip', intervalMs: 200, pattern }, timeouts: { first_byte_timeout_ms: 1000 } });
    const started = performance.now();
    const r = await gw.http('POST', '/v1/chat/completions', { key, body: { model: 'one', stream: true, messages: hi } });
    const took = performance.now() - started;
    assert.equal(r.status, 502, r.text);
    assertShape(r.json, 502);
    assert.equal(r.json.error.type, 'api_error');
    assert.match(r.json.error.message, /did not answer in time/);
    assert.ok(took >= 900 && took < 8000, `cut after ${took.toFixed(0)} ms`);
    await a.waitForClientAbort(5000);
  });
}

test('after the first event, bytes that never complete a line do not hold the stream open past idle_timeout_ms', { timeout: 30_000 }, async (t) => {
  const { gw, key, a } = await setup(t, {
    a: { kind: 'drip', intervalMs: 200, pattern: 'data: {"choices":[{"delta":{"content":"never finished', events: 1 },
    timeouts: { idle_timeout_ms: 1000 },
  });
  const started = performance.now();
  const r = await gw.http('POST', '/v1/chat/completions', { key, body: { model: 'one', stream: true, messages: hi } });
  const took = performance.now() - started;
  assert.equal(r.status, 200);
  const got = events(r.text);
  assert.equal(got[0]!.choices[0].delta.content, 'part0');
  assertShape(got[got.length - 1], 502);
  assert.ok(!r.text.includes('[DONE]'));
  assert.ok(took < 8000, `cut after ${took.toFixed(0)} ms`);
  await a.waitForClientAbort(5000);
});

test('after the first event, keep-alive comment lines count as activity: a stream paused longer than idle_timeout_ms behind them completes', { timeout: 30_000 }, async (t) => {
  const chunk = (content: string, finish: string | null = null) =>
    `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: { content }, finish_reason: finish }] })}\n\n`;
  const upstream = createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(chunk('thinking'));
    let n = 0;
    const timer = setInterval(() => {
      if (++n <= 8) return void res.write(': keep-alive\n\n');
      clearInterval(timer);
      res.end(chunk(' done', 'stop') + 'data: [DONE]\n\n');
    }, 250);
    res.on('close', () => clearInterval(timer));
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/v1`;
  const gw = await startTestGateway({
    providers: { k: { type: 'openai', base_url: url, idle_timeout_ms: 1000 } },
    models: { k: { pricing: price, deployments: [{ provider: 'k', model: 'k' }] } },
  });
  t.after(async () => {
    await gw.close();
    upstream.closeAllConnections();
    await new Promise((r) => upstream.close(r));
  });
  const { key } = await gw.createKey();
  const r = await gw.http('POST', '/v1/chat/completions', { key, body: { model: 'k', stream: true, messages: hi } });
  assert.equal(r.status, 200);
  assert.ok(r.text.includes('[DONE]'), r.text);
  assert.equal(events(r.text).map((e) => e.choices[0]?.delta?.content ?? '').join(''), 'thinking done');
});

test('a client slower to read than idle_timeout_ms is not mistaken for a silent upstream', { timeout: 60_000 }, async (t) => {
  // 16 MB of chunks: more than the sockets buffer, so the relay waits on the client (backpressure).
  // The client allows that much output: the gateway relays no more than the cap it holds for.
  const piece = 'word '.repeat(13 * 1024);
  const { gw, key } = await setup(t, { a: { kind: 'stream', chunks: Array.from({ length: 256 }, () => piece) }, timeouts: { idle_timeout_ms: 500 } });
  const res = await request(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'one', stream: true, max_tokens: 4_000_000, messages: hi }),
  });
  assert.equal(res.statusCode, 200);
  // The client takes three idle timeouts before it starts reading.
  await new Promise((r) => setTimeout(r, 1500));
  const text = await res.body.text();
  assert.ok(text.endsWith('data: [DONE]\n\n'), text.slice(-300));
  assert.equal(events(text).reduce((n, e) => n + (e.choices[0]?.delta?.content?.length ?? 0), 0), 256 * piece.length);
});
