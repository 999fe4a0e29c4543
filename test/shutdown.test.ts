import assert from 'node:assert/strict';
import { test } from 'node:test';
import { request } from 'undici';
import { openStore } from '../src/store/open.js';
import { startTestGateway } from './helpers/gateway.js';

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
  await new Promise((r) => setTimeout(r, 20));
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
