import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import OpenAI from 'openai';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { IpcLimiter, serveLimiter, type Channel } from '../src/limits/ipc.js';
import { MemoryLimiter } from '../src/limits/memory.js';
import { RedisLimiter } from '../src/limits/redis.js';
import { ADMIN_KEY, startTestGateway, type HttpResult, type TestGateway } from './helpers/gateway.js';
import { limiterContract } from './helpers/limiter-contract.js';
import { CLI, exited, freePort, spawnGateway } from './helpers/process.js';

const REDIS_URL = 'redis://127.0.0.1:6379';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

limiterContract('in-process', async () => new MemoryLimiter());
limiterContract('Redis', async () => {
  const client = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  await client.ping();
  return new RedisLimiter(client);
});

// `serve --workers N` without Redis: a worker's limiter asks the primary's over a real message
// channel (structured clone, as the cluster's advanced serialization).
limiterContract('worker over IPC', async () => {
  const { port1, port2 } = new MessageChannel();
  const channel = (p: MessagePort): Channel => ({ send: (m) => p.postMessage(m), on: (e, f) => p.on(e, f), off: (e, f) => p.off(e, f) });
  serveLimiter(new MemoryLimiter(), channel(port1));
  const limiter = new IpcLimiter(channel(port2));
  const close = limiter.close.bind(limiter);
  limiter.close = async () => (await close(), port1.close());
  return limiter;
});

describe('limiter over IPC', () => {
  test('a worker that exits gives back its concurrency slots and its spend reservations', async () => {
    const primary = new MemoryLimiter();
    const { port1, port2 } = new MessageChannel();
    const channel = (p: MessagePort): Channel => ({ send: (m) => p.postMessage(m), on: (e, f) => p.on(e, f), off: (e, f) => p.off(e, f) });
    const served = serveLimiter(primary, channel(port1));
    const worker = new IpcLimiter(channel(port2));
    const subject = { id: 'key:k', limits: { concurrency: 1, daily_spend: 100n } };
    const now = Date.now();
    assert.ok((await worker.admit({ subjects: [subject], requestId: 'r1', tokens: 5, now })).ok);
    assert.equal((await worker.reserveSpend([subject], 70n, '2026-12-02', async () => 10n)).ok, true);
    // Another worker (the primary's own view) is refused while the slot and the reservation are taken.
    assert.equal((await primary.admit({ subjects: [subject], requestId: 'r2', tokens: 5, now })).ok, false);
    assert.equal((await primary.reserveSpend([subject], 30n, '2026-12-02', async () => 0n)).ok, false);
    await worker.close();
    port1.close();
    await served.exited();
    assert.ok((await primary.admit({ subjects: [subject], requestId: 'r3', tokens: 5, now })).ok);
    assert.equal((await primary.reserveSpend([subject], 30n, '2026-12-02', async () => 0n)).ok, true, "10 spent + 30: the dead worker's 70 is no longer reserved");
  });
});

const chat = { model: 'demo', messages: [{ role: 'user', content: 'hi' }] };

function assertError(r: HttpResult, status: number, type: string): void {
  assert.equal(r.status, status, r.text);
  assert.deepEqual(Object.keys(r.json.error).sort(), ['code', 'message', 'param', 'traceId', 'type']);
  assert.equal(r.json.error.type, type);
  assert.equal(r.json.error.code, String(status));
  assert.equal(r.json.error.traceId, r.headers['x-request-id']);
}

for (const kind of ['in-process', 'Redis'] as const) {
  describe(`limits over HTTP (${kind} limiter)`, () => {
    let gw: TestGateway;
    before(async () => {
      gw = await startTestGateway({
        ...(kind === 'Redis' ? { redis: REDIS_URL } : {}),
        providers: { slow: { type: 'demo', latency_ms: 300 } },
        models: { slow: { pricing: { input: 1, output: 2 }, deployments: [{ provider: 'slow', model: 'slow' }] } },
      });
    });
    after(() => gw.close());

    test('rpm: twice the limit at once admits exactly the limit; 429 names the limit with retry hints', async () => {
      const { key } = await gw.createKey({ limits: { rpm: 4 } });
      const rs = await Promise.all(Array.from({ length: 8 }, () => gw.http('POST', '/v1/chat/completions', { key, body: chat })));
      const ok = rs.filter((r) => r.status === 200);
      assert.equal(ok.length, 4);
      const remaining = ok.map((r) => Number(r.headers['x-ratelimit-remaining-requests'])).sort();
      assert.deepEqual(remaining, [0, 1, 2, 3]);
      for (const r of ok) {
        assert.equal(r.headers['x-ratelimit-limit-requests'], '4');
        assert.match(r.headers['x-ratelimit-reset-requests']!, /^(\d+ms|[\d.]+s|\d+m[\d.]+s)$/);
        assert.equal(r.headers['x-ratelimit-limit-tokens'], undefined, 'token headers only when tpm is set');
      }
      for (const r of rs.filter((x) => x.status !== 200)) {
        assertError(r, 429, 'rate_limit_error');
        assert.match(r.json.error.message, /4 requests per minute/);
        const seconds = Number(r.headers['retry-after']);
        assert.ok(seconds >= 1 && seconds <= 60);
        assert.ok(Number(r.headers['retry-after-ms']) > 0 && Number(r.headers['retry-after-ms']) <= 60_000);
        assert.equal(r.headers['x-should-retry'], undefined);
        assert.equal(r.headers['x-ratelimit-remaining-requests'], '0');
      }
    });

    test('rate-limit headers on every response of the key, without using the limit', async () => {
      const { key } = await gw.createKey({ limits: { rpm: 5, tpm: 100_000 } });
      const models = await gw.http('GET', '/v1/models', { key });
      assert.equal(models.status, 200);
      assert.equal(models.headers['x-ratelimit-limit-requests'], '5');
      assert.equal(models.headers['x-ratelimit-remaining-requests'], '5', 'a listing admits nothing');
      assert.equal(models.headers['x-ratelimit-limit-tokens'], '100000');
      assert.equal((await gw.http('POST', '/v1/chat/completions', { key, body: chat })).headers['x-ratelimit-remaining-requests'], '4');
      const missing = await gw.http('POST', '/v1/chat/completions', { key, body: { ...chat, model: 'nope' } });
      assertError(missing, 404, 'model_not_found');
      assert.equal(missing.headers['x-ratelimit-remaining-requests'], '4', 'a refusal before admission shows the window without using it');
      assert.match(missing.headers['x-ratelimit-reset-requests']!, /^(\d+ms|[\d.]+s|\d+m[\d.]+s)$/);
      const one = await gw.http('GET', '/v1/models/demo', { key });
      assert.equal(one.headers['x-ratelimit-remaining-requests'], '4');
      const me = await gw.http('GET', '/v1/me', { key });
      assert.equal(me.headers['x-ratelimit-limit-requests'], '5');
      const notFound = await gw.http('GET', '/v1/models/nope', { key });
      assert.equal(notFound.status, 404);
      assert.equal(notFound.headers['x-ratelimit-limit-requests'], '5');
      const plain = await gw.createKey();
      assert.equal((await gw.http('GET', '/v1/models', { key: plain.key })).headers['x-ratelimit-limit-requests'], undefined, 'no limits, no headers');
    });

    test('tpm: admits by prompt estimate plus max_tokens, with token headers', async () => {
      const { key } = await gw.createKey({ limits: { tpm: 250 } });
      const body = { ...chat, max_tokens: 100 };
      const rs = [];
      for (let i = 0; i < 4; i++) rs.push(await gw.http('POST', '/v1/chat/completions', { key, body }));
      // Each request counts ~108 tokens at admission and settles to ~25 actual, so a third fits after two.
      assert.equal(rs[0]!.status, 200);
      assert.equal(rs[0]!.headers['x-ratelimit-limit-tokens'], '250');
      assert.ok(Number(rs[0]!.headers['x-ratelimit-remaining-tokens']) < 250);
      const refused = rs.find((r) => r.status !== 200);
      if (refused !== undefined) {
        assertError(refused, 429, 'rate_limit_error');
        assert.match(refused.json.error.message, /tokens per minute/);
      }
      const big = await gw.http('POST', '/v1/chat/completions', { key, body: { ...chat, max_tokens: 1000 } });
      assertError(big, 429, 'rate_limit_error');
      assert.match(big.json.error.message, /more than the API key's limit of 250 tokens per minute/);
    });

    test('concurrency: only the limit runs at once, and the key is served again when a response ends', async () => {
      const { key } = await gw.createKey({ limits: { concurrency: 2 } });
      const body = { ...chat, model: 'slow' };
      const rs = await Promise.all(Array.from({ length: 5 }, () => gw.http('POST', '/v1/chat/completions', { key, body })));
      assert.equal(rs.filter((r) => r.status === 200).length, 2);
      for (const r of rs.filter((x) => x.status !== 200)) {
        assertError(r, 429, 'rate_limit_error');
        assert.match(r.json.error.message, /2 concurrent requests/);
        assert.equal(r.headers['retry-after'], '1');
        assert.equal(r.headers['retry-after-ms'], '1000');
      }
      // Settlement and release run just after the response; give them a moment.
      await new Promise((r) => setTimeout(r, 50));
      assert.equal((await gw.http('POST', '/v1/chat/completions', { key, body })).status, 200);
    });

    test('the OpenAI SDK recovers from a short 429 by itself, honouring retry-after-ms', async () => {
      const { key } = await gw.createKey({ limits: { concurrency: 1 } });
      const sdk = gw.client(key, { maxRetries: 3 });
      const results = await Promise.all([0, 1].map(() => sdk.chat.completions.create({ ...chat, model: 'slow', messages: [{ role: 'user', content: 'x' }] })));
      assert.equal(results.length, 2);
      for (const r of results) assert.ok(r.choices[0]!.message.content);
    });

    test('daily_spend: refused with x-should-retry false once spend plus holds would pass it; the SDK gives up at once', async () => {
      const { key, id } = await gw.createKey({ limits: { daily_spend: '0.0001' } });
      const body = { ...chat, max_tokens: 20 };
      let served = 0;
      let refused: HttpResult | undefined;
      for (let i = 0; i < 10 && refused === undefined; i++) {
        const r = await gw.http('POST', '/v1/chat/completions', { key, body });
        if (r.status === 200) served++;
        else refused = r;
        await new Promise((res) => setTimeout(res, 10));
      }
      assert.ok(served >= 1, 'the quota covers at least one request');
      assert.ok(refused !== undefined, 'the quota runs out');
      assertError(refused, 429, 'rate_limit_error');
      assert.equal(refused.headers['x-should-retry'], 'false');
      assert.equal(refused.headers['retry-after'], undefined);
      assert.match(refused.json.error.message, /Daily spend quota/);

      const before = (await gw.admin('GET', `/usage?key_id=${id}`)).json.data.length;
      await assert.rejects(gw.client(key, { maxRetries: 3 }).chat.completions.create(body as never), (e: unknown) => {
        assert.ok(e instanceof OpenAI.RateLimitError);
        return true;
      });
      await new Promise((res) => setTimeout(res, 50));
      const usage = (await gw.admin('GET', `/usage?key_id=${id}`)).json.data;
      assert.equal(usage.length, before + 1, 'the SDK sent the request once and did not retry');
      const spent = usage.reduce((sum: number, u: { cost: string }) => sum + Number(u.cost), 0);
      assert.ok(spent <= 0.0001, `spent ${spent} within the quota`);
    });

    test('account limits apply across all the account\'s keys', async () => {
      const acct = await gw.admin('POST', '/accounts', { name: 'shared', credit: '10', limits: { rpm: 3 } });
      assert.equal(acct.status, 201);
      const a = await gw.createKey({ accountId: acct.json.id });
      const b = await gw.createKey({ accountId: acct.json.id });
      const rs = await Promise.all([a, b, a, b, a, b].map((k) => gw.http('POST', '/v1/chat/completions', { key: k.key, body: chat })));
      assert.equal(rs.filter((r) => r.status === 200).length, 3);
      const refused = rs.find((r) => r.status === 429)!;
      assert.match(refused.json.error.message, /account's limit of 3 requests per minute/);
    });

    test('an account\'s limits changed by PATCH apply from the next request', async () => {
      const acct = await gw.admin('POST', '/accounts', { name: 'patched', credit: '10' });
      const k = await gw.createKey({ accountId: acct.json.id });
      assert.equal((await gw.http('POST', '/v1/chat/completions', { key: k.key, body: chat })).status, 200);
      const patched = await gw.admin('PATCH', `/accounts/${acct.json.id}`, { limits: { concurrency: 1, daily_spend: '0' } });
      assert.equal(patched.status, 200);
      assert.deepEqual(patched.json.limits, { concurrency: 1, daily_spend: '0.000000000' });
      const r = await gw.http('POST', '/v1/chat/completions', { key: k.key, body: chat });
      assertError(r, 429, 'rate_limit_error');
      assert.match(r.json.error.message, /account's limit of 0.000000000 USD per UTC day/);
      assert.equal((await gw.admin('PATCH', `/accounts/${acct.json.id}`, { limits: null })).json.limits, null);
      assert.equal((await gw.http('POST', '/v1/chat/completions', { key: k.key, body: chat })).status, 200);
      const bad = await gw.admin('PATCH', `/accounts/${acct.json.id}`, { limits: { rpm: -1 } });
      assertError(bad, 400, 'invalid_request_error');
      assert.equal(bad.json.error.param, 'limits.rpm');
    });
  });
}

describe('several replicas', () => {
  test('two gateway processes sharing one Redis hold one rpm limit between them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'token360-replicas-'));
    const config = join(dir, 'token360.yaml');
    writeFileSync(config, `database: sqlite:${join(dir, 'db')}\nredis: ${REDIS_URL}\nadmin_key: ${ADMIN_KEY}\nlog_level: info\n`);
    const ports = [await freePort(), await freePort()];
    const a = await spawnGateway(config, ports[0]!);
    const b = await spawnGateway(config, ports[1]!);
    try {
      const post = (port: number, path: string, body: unknown, auth: string) =>
        fetch(`http://127.0.0.1:${port}${path}`, { method: 'POST', headers: { authorization: `Bearer ${auth}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const acct = (await (await post(ports[0]!, '/admin/accounts', { name: 'r', credit: '5' }, ADMIN_KEY)).json()) as { id: string };
      const key = (await (await post(ports[1]!, '/admin/keys', { account_id: acct.id, limits: { rpm: 6 } }, ADMIN_KEY)).json()) as { key: string };
      const rs = await Promise.all(Array.from({ length: 14 }, (_, i) => post(ports[i % 2]!, '/v1/chat/completions', chat, key.key)));
      const statuses = rs.map((r) => r.status);
      assert.equal(statuses.filter((s) => s === 200).length, 6, statuses.join(','));
      assert.equal(statuses.filter((s) => s === 429).length, 8);
    } finally {
      a.kill('SIGTERM');
      b.kill('SIGTERM');
      await Promise.all([a, b].map(exited));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('with Redis unreachable the gateway keeps serving on the in-process limiter', async () => {
    const port = await freePort();
    const gw = await startTestGateway({ redis: `redis://127.0.0.1:${port}` });
    try {
      const { key } = await gw.createKey({ limits: { rpm: 2 } });
      const rs = await Promise.all(Array.from({ length: 4 }, () => gw.http('POST', '/v1/chat/completions', { key, body: chat })));
      assert.deepEqual(rs.map((r) => r.status).sort(), [200, 200, 429, 429]);
    } finally {
      await gw.close();
    }
  });
});

describe('Redis outage', () => {
  test('the gateway serves in process while Redis is down, and returns to Redis when it is back', async () => {
    const port = await freePort();
    const startRedis = async (): Promise<ChildProcess> => {
      const p = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
      for (let i = 0; i < 100; i++) {
        const probe = new Redis(port, '127.0.0.1', { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
        probe.on('error', () => undefined);
        const up = await probe.connect().then(() => probe.ping()).then(() => true, () => false);
        probe.disconnect();
        if (up) return p;
        await sleep(50);
      }
      throw new Error('redis-server did not start');
    };
    let redis = await startRedis();
    const gw = await startTestGateway({ redis: `redis://127.0.0.1:${port}` });
    const watcher = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 0, retryStrategy: () => 100 });
    watcher.on('error', () => undefined);
    try {
      const { key, id } = await gw.createKey({ limits: { rpm: 1000 } });
      const send = () => gw.http('POST', '/v1/chat/completions', { key, body: chat });
      const inRedis = async (): Promise<number> => (await watcher.zcard(`t360:key:${id}:r`).catch(() => -1));
      assert.equal((await send()).status, 200);
      assert.equal(await inRedis(), 1, 'admissions are recorded in Redis');

      redis.kill('SIGKILL');
      await new Promise((r) => redis.once('exit', r));
      for (let i = 0; i < 3; i++) assert.equal((await send()).status, 200, 'served while Redis is down');

      redis = await startRedis();
      let seen = 0;
      for (let i = 0; i < 100 && seen === 0; i++) {
        await send();
        seen = await inRedis();
        if (seen <= 0) await sleep(100);
      }
      assert.ok(seen >= 1, 'admissions reach Redis again once it is back');
    } finally {
      watcher.disconnect();
      await gw.close();
      redis.kill('SIGKILL');
    }
  });
});

describe('overload', () => {
  test('beyond max_concurrent_requests: 503 at once with retry hints, before authentication; admitted requests finish', async () => {
    const gw = await startTestGateway({
      server: { max_concurrent_requests: 3 },
      providers: { slow: { type: 'demo', latency_ms: 400 } },
      models: { slow: { pricing: { input: 1, output: 2 }, deployments: [{ provider: 'slow', model: 'slow' }] } },
    });
    try {
      const { key, id } = await gw.createKey({ limits: { rpm: 100 } });
      const order: number[] = [];
      const rs = await Promise.all(
        Array.from({ length: 15 }, () =>
          gw.http('POST', '/v1/chat/completions', { key, body: { ...chat, model: 'slow' } }).then((r) => (order.push(r.status), r)),
        ),
      );
      assert.equal(rs.filter((r) => r.status === 200).length, 3);
      const shed = rs.filter((r) => r.status === 503);
      assert.equal(shed.length, 12);
      for (const r of shed) {
        assertError(r, 503, 'api_error');
        assert.equal(r.headers['retry-after'], '1');
        assert.equal(r.headers['retry-after-ms'], '1000');
      }
      assert.deepEqual(order.slice(0, 12), Array(12).fill(503), 'every shed request is answered before any admitted one ends');
      // Shed requests used none of the key's limits and left no usage records.
      const usage = (await gw.admin('GET', `/usage?key_id=${id}`)).json.data;
      assert.equal(usage.length, 3);
      // Admin and health routes are not counted.
      assert.equal((await gw.http('GET', '/health')).status, 200);
      // The metrics count each shed request as an `overload` refusal.
      const metrics = (await gw.http('GET', '/metrics', { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).text;
      assert.match(metrics, /^token360_limit_refusals_total\{limit="overload"\} 12$/m);
    } finally {
      await gw.close();
    }
  });
});

describe('start-up log', () => {
  /** `token360 serve` until it says it listens; what it printed up to then. */
  async function startupLines(redis: boolean): Promise<string> {
    const dir = mkdtempSync(join(tmpdir(), 'token360-startlog-'));
    const config = join(dir, 'c.yaml');
    writeFileSync(config, [`database: sqlite:${join(dir, 'db.sqlite')}`, `admin_key: ${ADMIN_KEY}`, 'server: { host: 127.0.0.1, port: 0 }', ...(redis ? [`redis: ${REDIS_URL}`] : [])].join('\n'));
    const child = spawn(process.execPath, [CLI, 'serve', '--config', config], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    try {
      await new Promise<void>((resolve, reject) => {
        child.once('exit', (code) => reject(new Error(`exited ${code}: ${out}`)));
        child.stdout!.on('data', (d: Buffer) => ((out += d.toString()), out.includes('"msg":"token360 listening"') && resolve()));
      });
    } finally {
      child.kill('SIGTERM');
      await exited(child);
      rmSync(dir, { recursive: true, force: true });
    }
    return out;
  }

  test('without redis the start-up log says limits are per process; with redis it does not', async () => {
    assert.match(await startupLines(false), /limits are kept in this process \(no redis configured\)/);
    assert.doesNotMatch(await startupLines(true), /limits are kept in this process/);
  });
});
