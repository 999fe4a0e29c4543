import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { request } from 'undici';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';
import { freePort } from './helpers/process.js';
import { startFakeUpstream } from './helpers/upstream.js';

/** Polls `check` until it holds, or fails after `ms`. */
async function until(what: string, ms: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(50);
  }
  assert.fail(`timed out waiting for ${what}`);
}

test('/healthz, /health and /readyz answer 200 without a key while the gateway runs', async () => {
  const gw = await startTestGateway();
  try {
    for (const path of ['/healthz', '/health']) {
      const r = await gw.http('GET', path);
      assert.equal(r.status, 200);
      assert.deepEqual(r.json, { status: 'ok' });
    }
    const ready = await gw.http('GET', '/readyz');
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.json, { status: 'ok' });
    assert.equal((await gw.http('POST', '/healthz')).status, 405);
  } finally {
    await gw.close();
  }
});

test('/healthz answers 503 once shutdown has begun (on a connection opened before)', async () => {
  const gw = await startTestGateway({
    server: { shutdown_timeout_ms: 2000 },
    providers: { slow: { type: 'demo', tokens_per_second: 20 } },
    models: { slow: { pricing: { input: 1, output: 2 }, deployments: [{ provider: 'slow', model: 'slow' }] } },
  });
  const { key } = await gw.createKey();
  // A stream in progress keeps the shutdown from completing while /healthz is asked.
  const streamed = await request(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'slow', stream: true, messages: [{ role: 'user', content: 'a long answer please' }] }),
  });
  assert.equal(streamed.statusCode, 200);
  // The listener stops at once and idle connections are dropped: this one has begun a request
  // (its head is half sent), so it stays open, and the rest is sent once shutdown has begun.
  const { port } = new URL(gw.url);
  const accepted = new Promise<{ bytesRead: number }>((resolve) => gw.running.app.server.once('connection', resolve));
  const socket = connect(Number(port), '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let answer = '';
  socket.on('data', (d: Buffer) => (answer += d.toString()));
  const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.write('GET /healthz HTTP/1.1\r\nHost: gateway\r\n');
  const serverSide = await accepted;
  await until('the gateway to read the request head', 2000, async () => serverSide.bytesRead > 0);
  const closing = gw.running.close();
  socket.write('\r\n');
  await until('the answer', 5000, async () => answer.includes('\r\n\r\n{'));
  assert.match(answer, /^HTTP\/1\.1 503 /);
  assert.deepEqual(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)), { status: 'shutting_down' });
  socket.end();
  await ended;
  await streamed.body.text();
  await closing;
  await gw.close();
});

test('/readyz names redis while the Redis it uses is down, and is ready again once it is back', async () => {
  const port = await freePort();
  const startRedis = async (): Promise<ChildProcess> => {
    const p = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    await until('redis-server to start', 5000, async () => {
      const probe = new Redis(port, '127.0.0.1', { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
      probe.on('error', () => undefined);
      const up = await probe.connect().then(() => probe.ping()).then(() => true, () => false);
      probe.disconnect();
      return up;
    });
    return p;
  };
  let redis = await startRedis();
  let gw: TestGateway | undefined;
  try {
    gw = await startTestGateway({ redis: `redis://127.0.0.1:${port}` });
    const g = gw;
    assert.equal((await g.http('GET', '/readyz')).status, 200);

    redis.kill('SIGKILL');
    await new Promise((r) => redis.once('exit', r));
    const down = await g.http('GET', '/readyz');
    assert.equal(down.status, 503);
    assert.deepEqual(down.json, { status: 'unready', failing: ['redis'] });
    // Still alive: a dependency down is not a reason to restart the process.
    assert.equal((await g.http('GET', '/healthz')).status, 200);

    redis = await startRedis();
    await until('/readyz to answer 200 again', 10_000, async () => (await g.http('GET', '/readyz')).status === 200);
  } finally {
    await gw?.close();
    redis.kill('SIGKILL');
  }
});

test('/readyz names a model whose every deployment has its circuit open', async () => {
  const up = await startFakeUpstream({ behavior: { kind: 'status', status: 500 } });
  const gw = await startTestGateway({
    providers: { up: { type: 'openai', base_url: up.url, api_key: 'sk-upstream' } },
    models: {
      flaky: {
        pricing: { input: 1, output: 2 },
        routing: { attempts: 1, circuit: { failures: 1, cooldown_ms: 60_000 } },
        deployments: [{ provider: 'up', model: 'x' }],
      },
    },
  });
  try {
    const { key } = await gw.createKey();
    assert.equal((await gw.http('GET', '/readyz')).status, 200);
    const failed = await gw.http('POST', '/v1/chat/completions', { key, body: { model: 'flaky', messages: [{ role: 'user', content: 'hi' }] } });
    assert.equal(failed.status, 502);
    const r = await gw.http('GET', '/readyz');
    assert.equal(r.status, 503);
    assert.deepEqual(r.json, { status: 'unready', failing: ['model:flaky'] });
  } finally {
    await gw.close();
    await up.close();
  }
});
