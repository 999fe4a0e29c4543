import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';

// An upstream that answers at once and then trickles its body a byte at a time: every gap is
// shorter than the timeout, the whole is longer. Only a whole-response timeout stops it.
let upstream: Server;
let gw: TestGateway;
let closedAt = 0;

before(async () => {
  upstream = createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json' });
    const timer = setInterval(() => res.write(' '), 100);
    res.on('close', () => {
      clearInterval(timer);
      closedAt = performance.now();
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/v1`;
  gw = await startTestGateway({
    providers: { trickle: { type: 'openai', base_url: url, timeout_ms: 600 } },
    models: { slow: { pricing: { input: 1, output: 2 }, deployments: [{ provider: 'trickle', model: 'x' }] } },
  });
});

after(async () => {
  await gw.close();
  upstream.closeAllConnections();
  await new Promise((r) => upstream.close(r));
});

test('a non-streamed response is cut after timeout_ms in all, even when bytes keep coming: 502', { timeout: 10_000 }, async () => {
  const { key } = await gw.createKey();
  const started = performance.now();
  const r = await gw.http('POST', '/v1/chat/completions', { key, body: { model: 'slow', messages: [{ role: 'user', content: 'hi' }] } });
  const took = performance.now() - started;
  assert.equal(r.status, 502);
  assert.equal(r.json.error.type, 'api_error');
  assert.match(r.json.error.message, /did not answer in time/);
  assert.ok(took < 3000, `cut after ${took.toFixed(0)} ms, not left to trickle on`);
  for (let i = 0; i < 100 && closedAt === 0; i++) await new Promise((res) => setTimeout(res, 10));
  assert.ok(closedAt > 0, 'the upstream request was aborted, not left running');
});
