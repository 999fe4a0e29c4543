// Upstream reliability through the whole gateway (SPEC §7): real fake upstreams on 127.0.0.1
// that refuse, reset, hang, fail with 5xx/429/529, break before their first event or are slow to
// it; the client (the openai SDK, retries off) sees only the success, and the headers and the
// usage record say which deployment answered after how many attempts. With everything failing:
// 502, or 503 when all were busy, after exactly `attempts` upstream requests counted at the fakes.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, test, type TestContext } from 'node:test';
import OpenAI from 'openai';
import { request } from 'undici';
import { parseUsd } from '../src/billing/money.js';
import { backgroundDone, startTestGateway, type TestGateway } from './helpers/gateway.js';
import { startFakeUpstream, type Behavior, type FakeUpstream } from './helpers/upstream.js';

const UPSTREAM_KEY = 'sk-upstream-secret-reliability-0123';
const price = { input: 1, output: 2 };
const hi = [{ role: 'user' as const, content: 'hi' }];
/** The fake's default usage (10 in, 7 out) at $1/$2 per 1M tokens, in nano-USD. */
const COST = 10n * 1000n + 7n * 2000n;

/** A port nothing listens on: connections to it are refused. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Polls until `check` passes or the deadline is reached (no fixed sleeps). */
async function eventually<T>(what: string, get: () => Promise<T>, check: (v: T) => boolean, deadlineMs = 5000): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const v = await get();
    if (check(v)) return v;
    if (Date.now() > end) assert.fail(`${what}: not within ${deadlineMs} ms; last: ${JSON.stringify(v)}`);
    await new Promise((r) => setImmediate(r));
  }
}

async function streamText(stream: AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>): Promise<string> {
  let text = '';
  for await (const c of stream) text += c.choices[0]?.delta.content ?? '';
  return text;
}

describe('retries and failover', () => {
  let gw: TestGateway;
  let bad: FakeUpstream;
  let good: FakeUpstream;
  let other: FakeUpstream;
  let key: { id: string; key: string; accountId: string };
  let client: OpenAI;

  before(async () => {
    bad = await startFakeUpstream();
    good = await startFakeUpstream();
    other = await startFakeUpstream();
    const fast = { timeout_ms: 300, first_byte_timeout_ms: 300 };
    gw = await startTestGateway({
      // Failures across these tests must not open circuits: the breaker has its own tests below.
      routing: { circuit: { failures: 10_000 } },
      providers: {
        bad: { type: 'openai', base_url: bad.url, api_key: UPSTREAM_KEY, ...fast },
        good: { type: 'openai', base_url: good.url, api_key: UPSTREAM_KEY },
        other: { type: 'openai', base_url: other.url, api_key: UPSTREAM_KEY },
        closed: { type: 'openai', base_url: `http://127.0.0.1:${await closedPort()}/v1`, api_key: UPSTREAM_KEY },
      },
      models: {
        m: { pricing: price, deployments: [{ provider: 'bad', model: 'up-bad' }, { provider: 'good', model: 'up-good', priority: 1 }] },
        refused: { pricing: price, deployments: [{ provider: 'closed', model: 'up-closed' }, { provider: 'good', model: 'up-good', priority: 1 }] },
        solo: { pricing: price, routing: { attempts: 2 }, deployments: [{ provider: 'bad', model: 'up-bad' }] },
        pair: { pricing: price, deployments: [{ provider: 'good', model: 'up-good', weight: 3 }, { provider: 'other', model: 'up-other', weight: 1 }] },
      },
    });
    key = await gw.createKey({ credit: '1000' });
    client = gw.client(key.key, { maxRetries: 0 });
  });
  after(async () => {
    await gw.close();
    await Promise.all([bad.close(), good.close(), other.close()]);
  });
  beforeEach(() => {
    for (const f of [bad, good, other]) {
      f.setBehavior({ kind: 'ok' });
      f.requests.length = 0;
    }
  });

  const failures: [string, Behavior][] = [
    ['reset', { kind: 'reset' }],
    ['hang (first byte timeout)', { kind: 'hang' }],
    ['500', { kind: 'status', status: 500 }],
    ['503', { kind: 'status', status: 503 }],
    ['429 with a retry-after', { kind: 'status', status: 429, headers: { 'retry-after': '1' } }],
    ['529', { kind: 'status', status: 529, body: { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } } }],
    ['a stream cut before its first event', { kind: 'stream', breakAfter: 0 }],
    ['a first byte slower than the timeout', { kind: 'ok', delayMs: 3000 }],
  ];
  for (const [name, behavior] of failures) {
    test(`${name}: fails over to the next deployment, the client sees only the success (plain and streamed)`, async () => {
      bad.setBehavior(behavior);
      const { data, response } = await client.chat.completions.create({ model: 'm', messages: hi }).withResponse();
      assert.equal(data.choices[0]!.message.content, 'Hello from the fake upstream.');
      assert.equal(response.headers.get('x-token360-attempts'), '2');
      assert.equal(response.headers.get('x-token360-deployment'), 'good/up-good');

      const s = await client.chat.completions.create({ model: 'm', messages: hi, stream: true }).withResponse();
      assert.equal(s.response.headers.get('x-token360-attempts'), '2');
      assert.equal(s.response.headers.get('x-token360-deployment'), 'good/up-good');
      assert.equal(await streamText(s.data), 'Hello from the fake upstream.');
      assert.equal(bad.requests.length, 2);
      assert.equal(good.requests.length, 2);
    });
  }

  test('refused (nothing listens): fails over', async () => {
    const { data, response } = await client.chat.completions.create({ model: 'refused', messages: hi }).withResponse();
    assert.equal(data.choices[0]!.message.content, 'Hello from the fake upstream.');
    assert.equal(response.headers.get('x-token360-attempts'), '2');
    assert.equal(response.headers.get('x-token360-deployment'), 'good/up-good');
  });

  test('one deployment: a 429 with a short retry-after is waited out and retried there', async () => {
    bad.setBehavior(() => (bad.requests.length === 1 ? { kind: 'status', status: 429, headers: { 'retry-after-ms': '150' } } : { kind: 'ok' }));
    const { data, response } = await client.chat.completions.create({ model: 'solo', messages: hi }).withResponse();
    assert.equal(data.choices[0]!.message.content, 'Hello from the fake upstream.');
    assert.equal(response.headers.get('x-token360-attempts'), '2');
    assert.equal(response.headers.get('x-token360-deployment'), 'bad/up-bad');
    assert.equal(bad.requests.length, 2);
  });

  test('billing stays exact across retries: only the answer that reached the client is billed, and the record names it and the attempts', async () => {
    const k = await gw.createKey({ credit: '1' });
    const c = gw.client(k.key, { maxRetries: 0 });
    bad.setBehavior({ kind: 'status', status: 500 });
    await c.chat.completions.create({ model: 'm', messages: hi });
    assert.equal(await streamText(await c.chat.completions.create({ model: 'm', messages: hi, stream: true, stream_options: { include_usage: true } })), 'Hello from the fake upstream.');
    const usage = (await gw.admin('GET', `/usage?key_id=${k.id}`)).json.data as Record<string, unknown>[];
    assert.equal(usage.length, 2);
    for (const u of usage) {
      assert.equal(u['status'], 200);
      assert.equal(u['provider'], 'good');
      assert.equal(u['upstream_model'], 'up-good');
      assert.equal(u['attempts'], 2);
      assert.equal(parseUsd(u['cost'] as string), COST);
    }
    const acct = (await gw.admin('GET', `/accounts/${k.accountId}`)).json;
    assert.equal(parseUsd(acct.balance), parseUsd('1')! - 2n * COST);
    assert.equal(acct.held, '0.000000000');
  });

  test('everything failing: 502 after exactly `attempts` upstream requests, with the headers', async () => {
    bad.setBehavior({ kind: 'status', status: 500 });
    good.setBehavior({ kind: 'status', status: 502 });
    const e = await client.chat.completions.create({ model: 'm', messages: hi }).then(
      () => assert.fail('expected an error'),
      (err: unknown) => err,
    );
    assert.ok(e instanceof OpenAI.APIError);
    assert.equal(e.status, 502);
    assert.equal(e.headers?.get('x-token360-attempts'), '3');
    assert.match(e.headers?.get('x-token360-deployment') ?? '', /^(bad\/up-bad|good\/up-good)$/);
    assert.equal(bad.requests.length + good.requests.length, 3);
    assert.equal(bad.requests.length, 2, 'the first again after the second');
  });

  test('everything busy: 503 with retry-after after exactly `attempts` upstream requests', async () => {
    const busy: Behavior = { kind: 'status', status: 429, headers: { 'retry-after-ms': '50' } };
    bad.setBehavior(busy);
    good.setBehavior(busy);
    const r = await gw.http('POST', '/v1/chat/completions', { key: key.key, body: { model: 'm', messages: hi } });
    assert.equal(r.status, 503);
    assert.ok(Number(r.headers['retry-after']) >= 1);
    assert.equal(r.headers['x-token360-attempts'], '3');
    assert.equal(bad.requests.length + good.requests.length, 3);
  });

  test('an upstream 400 reaches the upstream once and the client gets 400', async () => {
    bad.setBehavior({ kind: 'status', status: 400, body: { error: { message: 'messages: too long', type: 'invalid_request_error', param: 'messages', code: null } } });
    const r = await gw.http('POST', '/v1/chat/completions', { key: key.key, body: { model: 'm', messages: hi } });
    assert.equal(r.status, 400);
    assert.equal(r.headers['x-token360-attempts'], '1');
    assert.equal(bad.requests.length, 1);
    assert.equal(good.requests.length, 0);
  });

  test('answers refused before routing say so: x-token360-attempts 0 and no deployment (401, 404, 400, 402)', async () => {
    const poor = await gw.createKey({ credit: '0' });
    const cases: [string, { key: string; body: unknown }][] = [
      ['401 bad key', { key: 'sk-' + 'x'.repeat(48), body: { model: 'm', messages: hi } }],
      ['404 unknown model', { key: key.key, body: { model: 'no-such-model', messages: hi } }],
      ['400 bad body', { key: key.key, body: { model: 'm', messages: 'hi' } }],
      ['402 no balance', { key: poor.key, body: { model: 'm', messages: hi } }],
    ];
    const before = bad.requests.length + good.requests.length + other.requests.length;
    for (const [what, req] of cases) {
      const r = await gw.http('POST', '/v1/chat/completions', req);
      assert.equal(String(r.status), what.slice(0, 3), `${what}: ${r.text}`);
      assert.equal(r.headers['x-token360-attempts'], '0', what);
      assert.equal(r.headers['x-token360-deployment'], undefined, what);
    }
    assert.equal(bad.requests.length + good.requests.length + other.requests.length, before, 'no upstream request');
  });

  test('a stream that breaks after its first event is not failed over: one upstream request, the client gets the error event', async () => {
    bad.setBehavior({ kind: 'stream', breakAfter: 2 });
    const r = await gw.http('POST', '/v1/chat/completions', { key: key.key, body: { model: 'm', messages: hi, stream: true } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-token360-attempts'], '1');
    assert.equal(r.headers['x-token360-deployment'], 'bad/up-bad');
    assert.match(r.text, /"error"/);
    assert.equal(bad.requests.length, 1);
    assert.equal(good.requests.length, 0);
  });

  test('affinity: one session lands on one deployment every time; requests without one spread by weight', async () => {
    const served = async (body: Record<string, unknown>, headers: Record<string, string> = {}): Promise<string> => {
      const r = await gw.http('POST', '/v1/chat/completions', { key: key.key, body: { model: 'pair', messages: hi, ...body }, headers });
      assert.equal(r.status, 200);
      return r.headers['x-token360-deployment']!;
    };
    const spread = new Map<string, number>();
    for (let i = 0; i < 60; i++) {
      const d = await served({});
      spread.set(d, (spread.get(d) ?? 0) + 1);
    }
    // Weights 3:1 over 60 requests: each side well away from 0 and the heavier one ahead.
    assert.ok((spread.get('good/up-good') ?? 0) > (spread.get('other/up-other') ?? 0), JSON.stringify([...spread]));
    assert.ok((spread.get('other/up-other') ?? 0) > 0, JSON.stringify([...spread]));

    for (const [body, headers] of [[{}, { 'x-session-id': 'sess-header' }], [{ prompt_cache_key: 'sess-cache' }, {}], [{ user: 'sess-user' }, {}]] as const) {
      const first = await served(body, headers);
      for (let i = 0; i < 12; i++) assert.equal(await served(body, headers), first, JSON.stringify(body) + JSON.stringify(headers));
    }
  });

  test('affinity from Anthropic metadata.user_id on /v1/messages', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 12; i++) {
      const r = await gw.http('POST', '/v1/messages', {
        key: key.key,
        body: { model: 'pair', max_tokens: 50, messages: hi, metadata: { user_id: 'claude-session-1' } },
        headers: { 'anthropic-version': '2023-06-01' },
      });
      assert.equal(r.status, 200, r.text);
      seen.add(r.headers['x-token360-deployment']!);
    }
    assert.equal(seen.size, 1);
  });
});

describe('circuit breaker over HTTP', () => {
  test('opens after `failures`, stops traffic to the deployment, probes once after the cooldown and closes; /admin/deployments shows each state', async (t: TestContext) => {
    const bad = await startFakeUpstream({ behavior: { kind: 'status', status: 500 } });
    const good = await startFakeUpstream();
    const gw = await startTestGateway({
      routing: { attempts: 2, circuit: { failures: 2, window_ms: 60_000, cooldown_ms: 300 } },
      providers: {
        bad: { type: 'openai', base_url: bad.url, api_key: UPSTREAM_KEY },
        good: { type: 'openai', base_url: good.url, api_key: UPSTREAM_KEY },
      },
      models: { m: { pricing: price, deployments: [{ provider: 'bad', model: 'up-bad' }, { provider: 'good', model: 'up-good', priority: 1 }] } },
    });
    t.after(async () => {
      await gw.close();
      await Promise.all([bad.close(), good.close()]);
    });
    const { key } = await gw.createKey();
    const client = gw.client(key, { maxRetries: 0 });
    const states = async (): Promise<Record<string, Record<string, unknown>>> => {
      const r = await gw.admin('GET', '/deployments');
      assert.equal(r.status, 200);
      return Object.fromEntries((r.json.data as Record<string, unknown>[]).map((d) => [`${d['provider']}/${d['model']}`, d]));
    };
    const unauthorized = await gw.http('GET', '/admin/deployments', { key });
    assert.equal(unauthorized.status, 401);

    assert.equal((await states())['bad/up-bad']!['state'], 'closed');
    for (let i = 0; i < 2; i++) {
      const { response } = await client.chat.completions.create({ model: 'm', messages: hi }).withResponse();
      assert.equal(response.headers.get('x-token360-deployment'), 'good/up-good');
    }
    let s = await states();
    assert.equal(s['bad/up-bad']!['state'], 'open');
    assert.equal(s['bad/up-bad']!['recent_failures'], 2);
    assert.equal(s['bad/up-bad']!['requests'], 2);
    assert.equal(s['good/up-good']!['state'], 'closed');
    assert.equal(s['good/up-good']!['requests'], 2);
    assert.equal(typeof s['good/up-good']!['latency_ms_p50'], 'number');

    // Open: traffic stops, the fake's counter does not move.
    const { response } = await client.chat.completions.create({ model: 'm', messages: hi }).withResponse();
    assert.equal(response.headers.get('x-token360-attempts'), '1');
    assert.equal(bad.requests.length, 2);

    await eventually('half-open after the cooldown', states, (v) => v['bad/up-bad']!['state'] === 'half_open');
    bad.setBehavior({ kind: 'ok' });
    const probe = await client.chat.completions.create({ model: 'm', messages: hi }).withResponse();
    assert.equal(probe.response.headers.get('x-token360-deployment'), 'bad/up-bad');
    assert.equal(bad.requests.length, 3);
    s = await states();
    assert.equal(s['bad/up-bad']!['state'], 'closed');
  });

  test('every deployment open: 503 with retry-after at once, no upstream request', async (t: TestContext) => {
    const bad = await startFakeUpstream({ behavior: { kind: 'status', status: 503 } });
    const gw = await startTestGateway({
      routing: { attempts: 1, circuit: { failures: 1, window_ms: 60_000, cooldown_ms: 60_000 } },
      providers: { bad: { type: 'openai', base_url: bad.url, api_key: UPSTREAM_KEY } },
      models: { m: { pricing: price, deployments: [{ provider: 'bad', model: 'up-bad' }] } },
    });
    t.after(async () => {
      await gw.close();
      await bad.close();
    });
    const { key } = await gw.createKey();
    const first = await gw.http('POST', '/v1/chat/completions', { key, body: { model: 'm', messages: hi } });
    assert.equal(first.status, 502);
    const r = await gw.http('POST', '/v1/chat/completions', { key, body: { model: 'm', messages: hi } });
    assert.equal(r.status, 503);
    assert.ok(Number(r.headers['retry-after']) >= 59, r.headers['retry-after']);
    assert.equal(r.headers['x-token360-attempts'], '0');
    assert.equal(bad.requests.length, 1);
  });
});

describe('the budget, broken streams, money and a client leaving, across attempts', () => {
  let gw: TestGateway;
  let late: FakeUpstream;
  let brk: FakeUpstream;
  let idle: FakeUpstream;
  let hang: FakeUpstream;
  let bad: FakeUpstream;
  let good: FakeUpstream;
  const fakes = (): FakeUpstream[] => [late, brk, idle, hang, bad, good];

  before(async () => {
    [late, brk, idle, hang, bad, good] = await Promise.all(Array.from({ length: 6 }, () => startFakeUpstream()));
    const provider = (f: FakeUpstream) => ({ type: 'openai', base_url: f.url, api_key: UPSTREAM_KEY });
    // Each model its own deployments, so that one test's failures never reach another's circuit.
    const tight = { budget_ms: 300, circuit: { failures: 1, window_ms: 60_000, cooldown_ms: 60_000 } };
    gw = await startTestGateway(
      {
        providers: {
          late: provider(late),
          brk: provider(brk),
          idle: { ...provider(idle), idle_timeout_ms: 300 },
          // Times out soon enough that a request going on without its client would reach `good`.
          hang: { ...provider(hang), timeout_ms: 3000 },
          bad: provider(bad),
          good: provider(good),
        },
        models: {
          'late-body': { pricing: price, routing: tight, deployments: [{ provider: 'late', model: 'body' }] },
          'late-headers': { pricing: price, routing: tight, deployments: [{ provider: 'late', model: 'headers' }, { provider: 'good', model: 'g1', priority: 1 }] },
          brk: { pricing: price, routing: { circuit: { failures: 2, window_ms: 60_000, cooldown_ms: 60_000 } }, deployments: [{ provider: 'brk', model: 'b' }, { provider: 'good', model: 'g2', priority: 1 }] },
          idle: { pricing: price, routing: { circuit: { failures: 1, window_ms: 60_000, cooldown_ms: 60_000 } }, deployments: [{ provider: 'idle', model: 'i' }] },
          leave: { pricing: price, deployments: [{ provider: 'hang', model: 'h' }, { provider: 'good', model: 'g3', priority: 1 }] },
          retried: { pricing: price, deployments: [{ provider: 'bad', model: 'x' }, { provider: 'good', model: 'g4', priority: 1 }] },
          failing: { pricing: price, deployments: [{ provider: 'bad', model: 'y' }, { provider: 'bad', model: 'z' }] },
        },
      },
      { captureLogs: true },
    );
  });
  after(async () => {
    await gw.close();
    await Promise.all(fakes().map((f) => f.close()));
  });
  beforeEach(() => {
    for (const f of fakes()) {
      f.setBehavior({ kind: 'ok' });
      f.requests.length = 0;
    }
  });

  const deployments = async (): Promise<Record<string, Record<string, unknown>>> =>
    Object.fromEntries(((await gw.admin('GET', '/deployments')).json.data as Record<string, unknown>[]).map((d) => [`${d['provider']}/${d['model']}`, d]));
  const failedLines = (deployment: string): Record<string, unknown>[] =>
    gw.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['msg'] === 'upstream attempt failed' && l['deployment'] === deployment);
  const settledAccount = (accountId: string): Promise<Record<string, string>> =>
    eventually(
      'holds released',
      async () => {
        await backgroundDone(gw);
        return (await gw.admin('GET', `/accounts/${accountId}`)).json as Record<string, string>;
      },
      (a) => a['held'] === '0.000000000',
    );

  test('budget_ms does not cut a non-streamed answer: one slower than the budget (headers with the body, or body after the headers) is served', async () => {
    const { key } = await gw.createKey();
    for (const behavior of [{ kind: 'ok', delayMs: 800 }, { kind: 'ok', bodyDelayMs: 800 }] as const) {
      late.setBehavior(behavior);
      late.requests.length = 0;
      const t0 = performance.now();
      const r = await gw.http('POST', '/v1/chat/completions', { key, body: { model: 'late-headers', messages: hi } });
      assert.equal(r.status, 200, r.text);
      assert.ok(performance.now() - t0 >= 750, 'the answer came after the budget');
      assert.equal(r.json.choices[0].message.content, 'Hello from the fake upstream.');
      assert.equal(r.headers['x-token360-attempts'], '1');
      assert.equal(r.headers['x-token360-deployment'], 'late/headers');
      assert.equal(late.requests.length, 1);
    }
    assert.equal(good.requests.length, 0);
    assert.deepEqual(failedLines('late/headers'), []);
  });

  test('a stream whose first event comes after budget_ms: the documented 502 after one attempt, and the deployment\'s circuit stays closed', async () => {
    late.setBehavior({ kind: 'stream', firstByteDelayMs: 3000 });
    const t0 = performance.now();
    const r = await gw.http('POST', '/v1/chat/completions', { key: (await gw.createKey()).key, body: { model: 'late-headers', messages: hi, stream: true } });
    assert.equal(r.status, 502, r.text);
    assert.ok(performance.now() - t0 < 2500, 'cut by the budget, not by the upstream');
    assert.equal(r.json.error.type, 'api_error');
    assert.equal(r.headers['x-token360-attempts'], '1', 'the budget is spent: no failover');
    assert.equal(good.requests.length, 0);
    const d = (await deployments())['late/headers']!;
    assert.equal(d['state'], 'closed', 'one failure opens this circuit, but a spent budget is not a failure of the deployment');
    assert.equal(d['recent_failures'], 0);
    const lines = await eventually('its log line', async () => failedLines('late/headers'), (l) => l.length === 1);
    assert.equal(lines[0]!['failure'], 'timeout');
    assert.equal(lines[0]!['next'], 'give_up');
    // The deployment still takes requests.
    late.setBehavior({ kind: 'ok' });
    const again = await gw.http('POST', '/v1/chat/completions', { key: (await gw.createKey()).key, body: { model: 'late-headers', messages: hi } });
    assert.equal(again.headers['x-token360-deployment'], 'late/headers');
  });

  test('a deployment whose streams break after their first event: each is logged and counted, and `failures` of them open its circuit', async () => {
    brk.setBehavior({ kind: 'stream', breakAfter: 2 });
    const { key } = await gw.createKey();
    for (let i = 1; i <= 2; i++) {
      const r = await gw.http('POST', '/v1/chat/completions', { key, body: { model: 'brk', messages: hi, stream: true } });
      assert.equal(r.status, 200);
      assert.equal(r.headers['x-token360-deployment'], 'brk/b', 'never failed over after the first byte');
      assert.match(r.text, /"error"/);
      const d = (await deployments())['brk/b']!;
      assert.equal(d['failures'], i);
      assert.equal(d['recent_failures'], i);
      assert.equal(d['state'], i === 2 ? 'open' : 'closed');
    }
    const lines = await eventually('a line per broken stream', async () => failedLines('brk/b'), (l) => l.length === 2);
    for (const l of lines) {
      assert.equal(l['next'], 'stop');
      assert.equal(l['attempt'], 1);
      assert.equal(l['failure'], 'reset');
      assert.equal(typeof l['traceId'], 'string');
    }
    const r = await gw.http('POST', '/v1/chat/completions', { key, body: { model: 'brk', messages: hi, stream: true } });
    assert.equal(r.headers['x-token360-deployment'], 'good/g2', 'the open circuit is skipped');
    assert.doesNotMatch(r.text, /"error"/);
    assert.equal(brk.requests.length, 2);
  });

  test('a stream whose upstream falls silent past idle_timeout_ms after its first event is counted against the deployment', async () => {
    idle.setBehavior({ kind: 'stream', hangAfter: 2 });
    const r = await gw.http('POST', '/v1/chat/completions', { key: (await gw.createKey()).key, body: { model: 'idle', messages: hi, stream: true } });
    assert.equal(r.status, 200);
    assert.match(r.text, /"error"/);
    const d = (await deployments())['idle/i']!;
    assert.equal(d['failures'], 1);
    assert.equal(d['state'], 'open', 'one failure opens this circuit');
    const [line] = await eventually('its log line', async () => failedLines('idle/i'), (l) => l.length === 1);
    assert.equal(line!['failure'], 'timeout');
    assert.equal(line!['next'], 'stop');
  });

  test('a client that leaves during a failover: the request ends with 499 and the next deployment never hears of it', async () => {
    hang.setBehavior({ kind: 'hang' });
    const { key, id } = await gw.createKey();
    const ac = new AbortController();
    const sent = request(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'leave', messages: hi }),
      signal: ac.signal,
    }).catch((e: unknown) => e);
    await eventually('the first deployment has the request', async () => hang.requests.length, (n) => n === 1);
    const left = performance.now();
    ac.abort();
    assert.ok((await sent) instanceof Error);
    const upstreamCut = await hang.waitForClientAbort();
    assert.ok(upstreamCut - left < 1500, `the hanging upstream request was cut at once (${Math.round(upstreamCut - left)} ms), not at its timeout`);
    const [u] = await eventually('the 499 record', async () => (await gw.admin('GET', `/usage?key_id=${id}`)).json.data as Record<string, unknown>[], (d) => d.length === 1);
    assert.equal(u!['status'], 499);
    assert.equal(u!['error_type'], 'client_closed');
    assert.equal(u!['cost'], '0.000000000');
    assert.equal(good.requests.length, 0);
  });

  test('money across retries: concurrent requests failing over against a balance that affords only part; every cost is a debit, nothing stays held', async () => {
    bad.setBehavior({ kind: 'status', status: 500 });
    good.setBehavior({ kind: 'ok', delayMs: 20 });
    const credit = '0.0005';
    const { key, id, accountId } = await gw.createKey({ credit });
    const n = 60;
    const rs = await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const r = await request(`${gw.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'retried', messages: [{ role: 'user', content: `request ${i}` }], max_tokens: 50, stream: i % 2 === 0 }),
        });
        return { status: r.statusCode, text: await r.body.text() };
      }),
    );
    const ok = rs.filter((r) => r.status === 200);
    const refused = rs.filter((r) => r.status === 402);
    assert.equal(ok.length + refused.length, n, `statuses: ${[...new Set(rs.map((r) => r.status))]}`);
    assert.ok(ok.length > 0 && refused.length > 0, `${ok.length} served, ${refused.length} refused`);
    for (const r of ok) assert.ok(!r.text.includes('"error"'), r.text);
    const acct = await settledAccount(accountId);
    const balance = parseUsd(acct['balance']!)!;
    assert.ok(balance >= 0n);
    const usage = (await gw.admin('GET', `/usage?key_id=${id}&limit=1000`)).json.data as Record<string, unknown>[];
    assert.equal(usage.length, n, 'one usage record per request, whatever its attempts');
    for (const u of usage.filter((x) => x['status'] === 200)) {
      assert.equal(u['attempts'], 2);
      assert.equal(u['provider'], 'good');
      assert.equal(parseUsd(u['cost'] as string), COST, 'only the answer that reached the client');
    }
    assert.ok(usage.filter((u) => u['status'] === 402).every((u) => u['cost'] === '0.000000000'));
    const costs = usage.reduce((s, u) => s + parseUsd(u['cost'] as string)!, 0n);
    assert.equal(costs, parseUsd(credit)! - balance, 'the sum of the records\' costs is what left the balance');
    const ledger = await gw.running.store.ledgerTotals(accountId);
    assert.equal(ledger.debits, costs);
    assert.equal(ledger.credits - ledger.debits, balance);
    assert.equal(bad.requests.length, ok.length, 'a refused request never went upstream; a served one failed once first');

    // Everything failing: nothing is charged and nothing stays held.
    const poor = await gw.createKey({ credit });
    const r = await gw.http('POST', '/v1/chat/completions', { key: poor.key, body: { model: 'failing', messages: hi, max_tokens: 50 } });
    assert.equal(r.status, 502);
    assert.equal(r.headers['x-token360-attempts'], '3');
    const after = await settledAccount(poor.accountId);
    assert.equal(after['balance'], '0.000500000');
    const records = (await gw.admin('GET', `/usage?key_id=${poor.id}`)).json.data as Record<string, unknown>[];
    assert.deepEqual(records.map((u) => [u['status'], u['cost']]), [[502, '0.000000000']]);
    const l = await gw.running.store.ledgerTotals(poor.accountId);
    assert.equal(l.credits - l.debits, parseUsd(credit));
  });
});
