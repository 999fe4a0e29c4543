// CORS on /v1 for browser clients (SPEC §6): preflights from the origins in server.cors_origins
// are answered before routing, and every /v1 response to such an origin carries
// access-control-allow-origin, pipeline streams included; other origins and other paths get none.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';

const APP = 'https://app.example.com';
const chat = { model: 'demo', messages: [{ role: 'user', content: 'hi' }] };

describe('listed origins', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startTestGateway({ server: { cors_origins: [APP, 'http://localhost:5173'] } });
  });
  after(() => gw.close());

  test('a preflight from a listed origin: 204 with the methods, the asked headers and a max age; nothing is served or recorded', async () => {
    const r = await gw.http('OPTIONS', '/v1/chat/completions', {
      headers: { origin: APP, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type, x-stainless-os' },
    });
    assert.equal(r.status, 204);
    assert.equal(r.headers['access-control-allow-origin'], APP);
    assert.equal(r.headers['vary'], 'Origin');
    assert.match(r.headers['access-control-allow-methods'] ?? '', /POST/);
    assert.equal(r.headers['access-control-allow-headers'], 'authorization, content-type, x-stainless-os');
    assert.equal(r.headers['access-control-max-age'], '600');
    assert.equal(r.text, '');
  });

  test('a request from a listed origin carries allow-origin and exposes the request id and rate-limit headers, streamed or not, errors too', async () => {
    const { key } = await gw.createKey();
    const ok = await gw.http('POST', '/v1/chat/completions', { key, body: chat, headers: { origin: APP } });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers['access-control-allow-origin'], APP);
    assert.match(ok.headers['access-control-expose-headers'] ?? '', /x-request-id/);
    assert.match(ok.headers['access-control-expose-headers'] ?? '', /x-ratelimit-remaining-requests/);
    const streamed = await gw.http('POST', '/v1/chat/completions', { key, body: { ...chat, stream: true }, headers: { origin: 'http://localhost:5173' } });
    assert.equal(streamed.status, 200);
    assert.match(streamed.headers['content-type'] ?? '', /event-stream/);
    assert.equal(streamed.headers['access-control-allow-origin'], 'http://localhost:5173');
    const denied = await gw.http('POST', '/v1/chat/completions', { key: 'sk-nope', body: chat, headers: { origin: APP } });
    assert.equal(denied.status, 401);
    assert.equal(denied.headers['access-control-allow-origin'], APP, 'a browser must be able to read the error');
    const models = await gw.http('GET', '/v1/models', { key, headers: { origin: APP } });
    assert.equal(models.headers['access-control-allow-origin'], APP);
  });

  test('another origin gets no CORS headers: its preflight is not answered as one', async () => {
    const pre = await gw.http('OPTIONS', '/v1/chat/completions', { headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
    assert.notEqual(pre.status, 204);
    assert.equal(pre.headers['access-control-allow-origin'], undefined);
    const { key } = await gw.createKey();
    const r = await gw.http('POST', '/v1/chat/completions', { key, body: chat, headers: { origin: 'https://evil.example' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['access-control-allow-origin'], undefined);
  });

  test('paths outside /v1 (the admin API) get no CORS headers', async () => {
    const r = await gw.http('OPTIONS', '/admin/accounts', { headers: { origin: APP, 'access-control-request-method': 'GET' } });
    assert.notEqual(r.status, 204);
    assert.equal(r.headers['access-control-allow-origin'], undefined);
  });
});

describe('any origin, and none', () => {
  test('["*"]: any origin gets `*` and no Vary', async () => {
    const gw = await startTestGateway({ server: { cors_origins: ['*'] } });
    try {
      const pre = await gw.http('OPTIONS', '/v1/embeddings', { headers: { origin: 'https://anywhere.example', 'access-control-request-method': 'POST' } });
      assert.equal(pre.status, 204);
      assert.equal(pre.headers['access-control-allow-origin'], '*');
      assert.equal(pre.headers['vary'], undefined);
      assert.equal(pre.headers['access-control-allow-headers'], 'authorization, content-type');
    } finally {
      await gw.close();
    }
  });

  test('by default no origin is allowed: a preflight is a 405 in the documented shape, a request carries no allow-origin', async () => {
    const gw = await startTestGateway();
    try {
      const pre = await gw.http('OPTIONS', '/v1/chat/completions', { headers: { origin: APP, 'access-control-request-method': 'POST' } });
      assert.equal(pre.status, 405);
      assert.equal(pre.json.error.type, 'invalid_request_error');
      assert.equal(pre.headers['access-control-allow-origin'], undefined);
      const { key } = await gw.createKey();
      const r = await gw.http('POST', '/v1/chat/completions', { key, body: chat, headers: { origin: APP } });
      assert.equal(r.headers['access-control-allow-origin'], undefined);
    } finally {
      await gw.close();
    }
  });

  test('a cors_origins entry that is not an origin stops start-up with a message naming it', async () => {
    const { parseConfigText, ConfigError } = await import('../src/config/load.js');
    assert.throws(() => parseConfigText('server:\n  cors_origins: ["https://app.example.com/path"]\n', {}), (e: unknown) => e instanceof ConfigError && /server\.cors_origins\.0/.test(e.message));
  });
});
