import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connect } from 'node:net';
import { request } from 'undici';
import { openStore } from '../src/store/open.js';
import { ADMIN_KEY, startTestGateway } from './helpers/gateway.js';

test('shutdown: in-flight requests finish within the deadline; a stream still open at the deadline ends with a 503 error event, no [DONE]', async () => {
  const gw = await startTestGateway({
    server: { shutdown_timeout_ms: 300 },
    providers: { slow: { type: 'demo', tokens_per_second: 10 }, quick: { type: 'demo', latency_ms: 100 } },
    models: {
      slow: { pricing: { input: 1, output: 2 }, deployments: [{ provider: 'slow', model: 'slow' }] },
      quick: { pricing: { input: 1, output: 2 }, deployments: [{ provider: 'quick', model: 'quick' }] },
    },
  });
  const { key, accountId } = await gw.createKey();
  const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
  const streamed = await request(`${gw.url}/v1/chat/completions`, {
    method: 'POST', headers, body: JSON.stringify({ model: 'slow', stream: true, messages: [{ role: 'user', content: 'a long answer please' }] }),
  });
  assert.equal(streamed.statusCode, 200);
  const quick = request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers, body: JSON.stringify({ model: 'quick', messages: [{ role: 'user', content: 'hi' }] }) });
  // Both in the pipeline (the stream and the quick request) before shutdown begins.
  for (const deadline = Date.now() + 5000; ; ) {
    const m = await request(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    if (/^token360_requests_in_flight 2$/m.test(await m.body.text())) break;
    assert.ok(Date.now() < deadline, 'the quick request never arrived');
  }
  const closing = gw.running.close();
  const text = await streamed.body.text();
  const quickRes = await quick;
  assert.equal(quickRes.statusCode, 200, 'a request that ends before the deadline is served');
  await quickRes.body.text();
  await closing;
  const events = text.split('\n\n').filter((e) => e.startsWith('data: '));
  assert.ok(events.length >= 2, 'some chunks were relayed before the deadline');
  assert.ok(!text.includes('[DONE]'));
  const last = JSON.parse(events[events.length - 1]!.slice(6));
  assert.equal(last.error.code, '503');
  assert.equal(last.error.type, 'api_error');
  assert.equal(last.error.traceId, streamed.headers['x-request-id']);
  // Both requests were recorded before the process let go of the database.
  const store = await openStore(gw.database);
  const usage = await store.listUsage({ accountId, limit: 10 });
  await store.close();
  assert.deepEqual(usage.data.map((u) => u.status).sort(), [200, 503]);
  await gw.close();
});

test('shutdown: a request that arrives on a connection already open gets 503 and the connection closes; a stream in progress finishes', async () => {
  const gw = await startTestGateway({
    server: { shutdown_timeout_ms: 10_000 },
    providers: { slow: { type: 'demo', tokens_per_second: 100 } },
    models: { slow: { pricing: { input: 1, output: 2 }, deployments: [{ provider: 'slow', model: 'slow' }] } },
  });
  const { key } = await gw.createKey();
  const { port } = new URL(gw.url);
  const socket = connect(Number(port), '127.0.0.1');
  let received = '';
  const ended = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  const streamStarted = new Promise<void>((resolve) => socket.on('data', (b: Buffer) => ((received += b.toString('utf8')), received.includes('HTTP/1.1 200') && resolve())));
  const post = (body: string): string =>
    `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${key}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  socket.write(post(JSON.stringify({ model: 'slow', stream: true, max_tokens: 20, messages: [{ role: 'user', content: 'count slowly' }] })));
  await streamStarted;

  // (/healthz during shutdown: test/health.test.ts.)
  const closing = gw.running.close();
  // The stream's connection is busy, so shutdown cannot drop it: a second request on it is read and answered.
  socket.write(post(JSON.stringify({ model: 'slow', messages: [{ role: 'user', content: 'hi' }] })));
  await ended;
  await closing;

  const responses = received.split(/(?=HTTP\/1\.1 )/);
  assert.equal(responses.length, 2, received);
  assert.match(responses[0]!, /^HTTP\/1\.1 200/);
  assert.ok(responses[0]!.includes('data: [DONE]'), 'the stream in progress finished');
  const second = responses[1]!;
  assert.match(second, /^HTTP\/1\.1 503/);
  assert.match(second, /\r\nconnection: close\r\n/i);
  assert.match(second, /\r\nretry-after: 1\r\n/i);
  const body = JSON.parse(second.slice(second.indexOf('\r\n\r\n') + 4)) as { error: { type: string; message: string } };
  assert.equal(body.error.type, 'api_error');
  assert.match(body.error.message, /shutting down/);
  await gw.close();
});
