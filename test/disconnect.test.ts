// A client that goes away must not leave the gateway talking to the upstream: the upstream sees
// its connection closed promptly (within 100 ms — the one timed assertion), and the request still
// leaves its usage record (499, client_closed).
import assert from 'node:assert/strict';
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, beforeEach, test } from 'node:test';
import { startTestGateway, type TestGateway, type TestKey } from './helpers/gateway.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/upstream.js';

const ABORT_BUDGET_MS = 100;

let gw: TestGateway;
let fake: FakeUpstream;

before(async () => {
  fake = await startFakeUpstream();
  gw = await startTestGateway({
    providers: {
      // Long timeouts: only the client's disconnect may end these requests.
      up: { type: 'openai', base_url: fake.url, api_key: 'sk-upstream-secret', timeout_ms: 30_000, first_byte_timeout_ms: 30_000, idle_timeout_ms: 30_000 },
    },
    models: { 'gpt-x': { pricing: { input: 1, output: 2 }, deployments: [{ provider: 'up', model: 'up-model' }] } },
  });
});
after(
  async () => {
    await gw.close();
    await fake.close();
  },
  { timeout: 40_000 },
);
beforeEach(() => fake.setBehavior({ kind: 'ok' }));

/** Starts a chat request with node:http; resolves once the request is on the wire. */
function startChat(key: string, body: Record<string, unknown>): { req: ClientRequest; response: Promise<IncomingMessage> } {
  const url = new URL('/v1/chat/completions', gw.url);
  const payload = JSON.stringify({ model: 'gpt-x', messages: [{ role: 'user', content: 'hi' }], ...body });
  const req = httpRequest(url, {
    method: 'POST',
    agent: false,
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
  });
  const response = new Promise<IncomingMessage>((resolve, reject) => {
    req.once('response', resolve);
    req.once('error', reject);
  });
  req.end(payload);
  return { req, response };
}

/** The usage records of one key, waiting (briefly) for the background write after the response. */
async function usageOf(key: TestKey, count: number): Promise<Record<string, unknown>[]> {
  const deadline = performance.now() + 3000;
  for (;;) {
    const r = await gw.admin('GET', `/usage?key_id=${key.id}`);
    assert.equal(r.status, 200, r.text);
    const data = r.json.data as Record<string, unknown>[];
    if (data.length >= count || performance.now() > deadline) return data;
    await sleep(20);
  }
}

async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}


/** Disconnects the client and checks that the upstream saw its connection close within the budget. */
async function assertUpstreamSeesClose(req: { destroy(): void }): Promise<void> {
  const aborted = fake.waitForClientAbort(5000);
  const t0 = performance.now();
  req.destroy();
  const elapsed = (await aborted) - t0;
  assert.ok(elapsed < ABORT_BUDGET_MS, `the upstream saw the close after ${elapsed.toFixed(1)} ms`);
}

test('a client that disconnects mid-stream: the upstream sees its connection closed within 100 ms', { timeout: 20_000 }, async () => {
  const key = await gw.createKey();
  // The upstream sends two chunks, then holds the stream open: only a disconnect can end it.
  fake.setBehavior({ kind: 'stream', chunks: ['Hello', ' there', ' and', ' more'], hangAfter: 2 });
  const { req, response } = startChat(key.key, { stream: true });
  const res = await response;
  assert.equal(res.statusCode, 200);
  const traceId = String(res.headers['x-request-id']);

  const first = await new Promise<string>((resolve) => res.once('data', (b: Buffer) => resolve(b.toString('utf8'))));
  assert.match(first, /^data: \{/, 'the first chunk is an SSE event');
  await assertUpstreamSeesClose(req);

  const [rec] = await usageOf(key, 1);
  assert.ok(rec, 'a usage record for the cut stream');
  assert.equal(rec['trace_id'], traceId);
  assert.equal(rec['status'], 499);
  assert.equal(rec['error_type'], 'client_closed');
  assert.equal(rec['stream'], true);
  assert.equal(rec['model'], 'gpt-x');
  assert.equal(rec['provider'], 'up');
  // Billed for what was generated: some text reached the client, so some completion tokens count.
  assert.ok(Number(rec['completion_tokens']) >= 1, `completion tokens of the delivered text: ${JSON.stringify(rec)}`);
  assert.ok(Number(rec['cost']) > 0);

  // Nothing stays held for the cut request.
  const acct = await gw.admin('GET', `/accounts/${key.accountId}`);
  assert.equal(acct.json.held, '0.000000000');
});

test('a client that disconnects while a non-streamed request waits on a hanging upstream: closed within 100 ms', { timeout: 20_000 }, async () => {
  const key = await gw.createKey();
  fake.setBehavior({ kind: 'hang' });
  const before = fake.requests.length;
  const { req, response } = startChat(key.key, {});
  response.catch(() => {}); // the client itself goes away; its request errors, as it should
  await until(() => fake.requests.length > before, 'the request to reach the upstream');
  // The fake records the request once its body is read; give the gateway's side a moment to settle into waiting.
  await sleep(20);

  await assertUpstreamSeesClose(req);

  const [rec] = await usageOf(key, 1);
  assert.ok(rec, 'a usage record for the abandoned request');
  assert.equal(rec['status'], 499);
  assert.equal(rec['error_type'], 'client_closed');
  assert.equal(rec['stream'], false);
  assert.equal(rec['model'], 'gpt-x');
  assert.equal(rec['cost'], '0.000000000', 'nothing was generated, nothing is charged');
  assert.match(String(rec['trace_id']), /\S/);

  const acct = await gw.admin('GET', `/accounts/${key.accountId}`);
  assert.equal(acct.json.held, '0.000000000', 'the hold is released');
  assert.equal(acct.json.balance, '100.000000000');
});

test('a client that disconnects before the upstream sends its first byte of a stream: closed within 100 ms', { timeout: 20_000 }, async () => {
  const key = await gw.createKey();
  fake.setBehavior({ kind: 'stream', firstByteDelayMs: 10_000 });
  const before = fake.requests.length;
  const { req, response } = startChat(key.key, { stream: true });
  response.catch(() => {});
  await until(() => fake.requests.length > before, 'the request to reach the upstream');
  await sleep(20);

  const aborted = fake.waitForClientAbort(5000);
  const t0 = performance.now();
  req.destroy();
  const elapsed = (await aborted) - t0;
  assert.ok(elapsed < ABORT_BUDGET_MS, `the upstream saw the close after ${elapsed.toFixed(1)} ms`);

  const [rec] = await usageOf(key, 1);
  assert.ok(rec);
  assert.equal(rec['status'], 499);
  assert.equal(rec['error_type'], 'client_closed');
  assert.equal(rec['stream'], true);
});

test('after the disconnects the gateway still serves the same upstream', { timeout: 20_000 }, async () => {
  const key = await gw.createKey();
  fake.setBehavior({ kind: 'ok' });
  const r = await gw.http('POST', '/v1/chat/completions', { key: key.key, body: { model: 'gpt-x', messages: [{ role: 'user', content: 'hi' }] } });
  assert.equal(r.status, 200, r.text);
  const [rec] = await usageOf(key, 1);
  assert.equal(rec?.['status'], 200);
  assert.equal(rec?.['error_type'], null);
});
