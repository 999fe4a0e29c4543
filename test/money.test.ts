import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import OpenAI from 'openai';
import { request } from 'undici';
import { parseUsd } from '../src/billing/money.js';
import { ADMIN_KEY, startTestGateway, type TestGateway } from './helpers/gateway.js';
import { freePort, spawnGateway } from './helpers/process.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/upstream.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const units = (usd: string): bigint => parseUsd(usd)!;

/** Settlement runs just after the response; wait until no hold is left. */
async function settled(gw: TestGateway, accountId: string): Promise<Record<string, any>> {
  for (let i = 0; i < 200; i++) {
    const a = (await gw.admin('GET', `/accounts/${accountId}`)).json;
    if (a.held === '0.000000000' && gw.running.gateway.background.size === 0) return a;
    await sleep(10);
  }
  throw new Error('holds were never released');
}

async function allUsage(gw: TestGateway, query: string): Promise<Record<string, any>[]> {
  const out: Record<string, any>[] = [];
  let cursor: string | null = null;
  do {
    const page: Record<string, any> = (await gw.admin('GET', `/usage?${query}&limit=1000${cursor ? `&cursor=${cursor}` : ''}`)).json;
    out.push(...page['data']);
    cursor = page['next_cursor'];
  } while (cursor !== null);
  return out;
}

describe('money', () => {
  let gw: TestGateway;
  let up: FakeUpstream;
  before(async () => {
    up = await startFakeUpstream();
    gw = await startTestGateway({
      providers: {
        paced: { type: 'demo', latency_ms: 20, tokens_per_second: 200 },
        up: { type: 'openai', base_url: up.url, api_key: 'sk-up', timeout_ms: 2000, first_byte_timeout_ms: 2000, idle_timeout_ms: 1000 },
      },
      models: {
        paced: { pricing: { input: 3, output: 15 }, max_output_tokens: 64, deployments: [{ provider: 'paced', model: 'paced' }] },
        cached: { pricing: { input: 1, output: 2, cached_input: 0.1 }, deployments: [{ provider: 'up', model: 'c' }] },
        free: { free: true, deployments: [{ provider: 'demo', model: 'f' }] },
      },
    });
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  test('200 concurrent requests against a balance that covers only part: never below zero, each 200 or 402, costs equal the debits', async () => {
    const credit = '0.004';
    const { key, accountId } = await gw.createKey({ credit });
    const body = (i: number) => ({ model: 'paced', messages: [{ role: 'user', content: `request ${i}` }], max_tokens: 40, stream: i % 2 === 0 });
    const rs = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const r = await request(`${gw.url}/v1/chat/completions`, {
          method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body(i)),
        });
        const text = await r.body.text();
        return { status: r.statusCode, text };
      }),
    );
    const ok = rs.filter((r) => r.status === 200);
    const refused = rs.filter((r) => r.status === 402);
    assert.equal(ok.length + refused.length, 200, `statuses: ${[...new Set(rs.map((r) => r.status))]}`);
    assert.ok(ok.length > 0 && refused.length > 0, `${ok.length} served, ${refused.length} refused`);
    for (const r of ok) assert.ok(!r.text.includes('"error"'), 'a served request completed');
    const acct = await settled(gw, accountId);
    const balance = units(acct['balance']);
    assert.ok(balance >= 0n);
    const usage = await allUsage(gw, `account_id=${accountId}`);
    assert.equal(usage.length, 200, 'one usage record per request');
    const costs = usage.reduce((s, u) => s + units(u['cost']), 0n);
    assert.equal(costs, units(credit) - balance, 'the sum of usage costs is what left the balance, to the unit');
    assert.equal(usage.filter((u) => u['status'] === 402).every((u) => u['cost'] === '0.000000000'), true);
    const ledger = await gw.running.store.ledgerTotals(accountId);
    assert.equal(ledger.credits - ledger.debits, balance, 'balance = credits - debits');
    assert.equal(ledger.debits, costs);
  });

  test('402: insufficient_balance, x-should-retry false, says how many output tokens the balance affords; the SDK does not retry', async () => {
    const { key, accountId } = await gw.createKey({ credit: '0.0001' });
    const r = await gw.http('POST', '/v1/chat/completions', { key, body: { model: 'paced', messages: [{ role: 'user', content: 'hi' }], max_tokens: 1000 } });
    assert.equal(r.status, 402);
    assert.equal(r.json.error.type, 'insufficient_balance');
    assert.equal(r.json.error.code, '402');
    assert.equal(r.headers['x-should-retry'], 'false');
    // 0.0001 USD less the prompt (~12 tokens with margin at $3/M) buys 4 output tokens at $15/M.
    assert.match(r.json.error.message, /affords at most 4 output tokens/);

    const sdk = gw.client(key, { maxRetries: 3 });
    await assert.rejects(sdk.chat.completions.create({ model: 'paced', messages: [{ role: 'user', content: 'hi' }], max_tokens: 1000 }), (e: unknown) => {
      assert.ok(e instanceof OpenAI.APIError);
      assert.equal(e.status, 402);
      return true;
    });
    await settled(gw, accountId);
    const usage = await allUsage(gw, `account_id=${accountId}`);
    assert.equal(usage.length, 2, 'one request by hand and one by the SDK, which did not retry');
    assert.deepEqual(usage.map((u) => [u['status'], u['error_type'], u['cost']]), [
      [402, 'insufficient_balance', '0.000000000'],
      [402, 'insufficient_balance', '0.000000000'],
    ]);
  });

  test('without max_tokens the hold is what the balance affords, and that cap goes upstream as max_tokens', async () => {
    up.setBehavior({ kind: 'ok' });
    const { key } = await gw.createKey({ credit: '1' });
    const before = up.requests.length;
    const r = await gw.http('POST', '/v1/chat/completions', { key, body: { model: 'cached', messages: [{ role: 'user', content: 'hi' }] } });
    assert.equal(r.status, 200, r.text);
    const sent = up.requests[before]!.body as Record<string, unknown>;
    // $1 affords ~500,000 output tokens at $2/M: the model's max_output_tokens (4096) caps it.
    assert.equal(sent['max_tokens'], 4096);
    // 50,000 nano-USD less the prompt's hold (~13 tokens × 1,000) leaves ~37,000: 18 output tokens at 2,000 each.
    const poor = await gw.createKey({ credit: '0.00005' });
    const r2 = await gw.http('POST', '/v1/chat/completions', { key: poor.key, body: { model: 'cached', messages: [{ role: 'user', content: 'hi' }] } });
    assert.equal(r2.status, 200, r2.text);
    const capped = (up.requests[up.requests.length - 1]!.body as Record<string, number>)['max_tokens']!;
    assert.ok(capped >= 15 && capped <= 20, `cap ${capped} follows the balance`);
  });

  test('cached prompt tokens are priced at the cached price', async () => {
    up.setBehavior({ kind: 'ok', usage: { prompt_tokens: 1000, completion_tokens: 100, cached_tokens: 800 } });
    const { key, accountId } = await gw.createKey({ credit: '1' });
    const res = await gw.client(key).chat.completions.create({ model: 'cached', messages: [{ role: 'user', content: 'hi' }] });
    // 200 uncached × $1/M + 800 cached × $0.1/M + 100 output × $2/M = 480 µUSD.
    assert.equal((res.usage as unknown as { cost: number }).cost, 0.00048);
    await settled(gw, accountId);
    const [u] = await allUsage(gw, `account_id=${accountId}`);
    assert.equal(u!['cost'], '0.000480000');
    assert.equal(u!['cached_tokens'], 800);
    assert.equal((await gw.admin('GET', `/accounts/${accountId}`)).json.balance, '0.999520000');
  });

  test('a stream cut by the upstream is billed for the text it delivered', async () => {
    up.setBehavior({ kind: 'stream', chunks: ['alpha', ' beta', ' gamma', ' delta'], breakAfter: 2, chunkDelayMs: 10 });
    const { key, accountId } = await gw.createKey({ credit: '1' });
    const r = await gw.http('POST', '/v1/chat/completions', { key, body: { model: 'cached', stream: true, messages: [{ role: 'user', content: 'hi' }] } });
    assert.equal(r.status, 200);
    assert.match(r.text, /"code":"502"/);
    await settled(gw, accountId);
    const [u] = await allUsage(gw, `account_id=${accountId}`);
    assert.equal(u!['status'], 502);
    assert.equal(u!['completion_tokens'], 2, '"alpha beta" is two tokens');
    assert.ok(u!['prompt_tokens'] > 0);
    const expected = BigInt(u!['prompt_tokens']) * 1000n + 2n * 2000n; // nano-USD per token: $1/M input, $2/M output
    assert.equal(units(u!['cost']), expected);
    assert.equal(units((await gw.admin('GET', `/accounts/${accountId}`)).json.balance), units('1') - expected);
  });

  // The same cut on the other client protocols, translated to the same OpenAI-compatible upstream:
  // each ends in its own error event and is billed as the chat route bills it.
  const routes: { path: string; body: Record<string, unknown>; headers: Record<string, string>; last: RegExp }[] = [
    { path: '/v1/messages', body: { max_tokens: 100 }, headers: { 'anthropic-version': '2023-06-01' }, last: /event: error\ndata: \{"type":"error","error":\{"type":"api_error"/ },
    { path: '/v1/responses', body: { input: 'hi' }, headers: {}, last: /event: response\.failed\n/ },
  ];
  for (const route of routes) {
    test(`a stream cut by the upstream on ${route.path} ends in its error event and is billed for the text it delivered`, async () => {
      up.setBehavior({ kind: 'stream', chunks: ['alpha', ' beta', ' gamma', ' delta'], breakAfter: 2, chunkDelayMs: 10, usage: null });
      const { key, id, accountId } = await gw.createKey({ credit: '1' });
      const messages = route.path === '/v1/messages' ? { messages: [{ role: 'user', content: 'hi' }] } : {};
      const r = await gw.http('POST', route.path, { key, headers: route.headers, body: { model: 'cached', stream: true, ...messages, ...route.body } });
      assert.equal(r.status, 200);
      assert.match(r.text, /alpha/);
      assert.doesNotMatch(r.text, /gamma/);
      const frames = r.text.split('\n\n').filter((f) => f !== '');
      assert.match(frames.at(-1)! + '\n', route.last, r.text);
      await settled(gw, accountId);
      const rows = await allUsage(gw, `key_id=${id}`);
      assert.equal(rows.length, 1, 'one usage record');
      const [u] = rows;
      assert.equal(u!['status'], 502);
      assert.equal(u!['stream'], true);
      assert.equal(u!['completion_tokens'], 2, '"alpha beta" is two tokens');
      assert.ok(u!['prompt_tokens'] > 0);
      const expected = BigInt(u!['prompt_tokens']) * 1000n + 2n * 2000n; // nano-USD per token: $1/M input, $2/M output
      assert.equal(units(u!['cost']), expected);
      assert.equal(units((await gw.admin('GET', `/accounts/${accountId}`)).json.balance), units('1') - expected);
    });
  }

  test('a stream cut by the client is billed for what was generated before it left', async () => {
    const { key, accountId } = await gw.createKey({ credit: '1' });
    const res = await request(`${gw.url}/v1/chat/completions`, {
      method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'paced', stream: true, messages: [{ role: 'user', content: 'tell me a long story please' }] }),
    });
    let seen = 0;
    for await (const chunk of res.body) {
      seen += (chunk as Buffer).toString().split('"content":"').length - 1;
      if (seen >= 4) break;
    }
    res.body.destroy();
    const acct = await settled(gw, accountId);
    const [u] = await allUsage(gw, `account_id=${accountId}`);
    assert.equal(u!['status'], 499);
    assert.equal(u!['error_type'], 'client_closed');
    assert.ok(u!['completion_tokens'] >= 3 && u!['completion_tokens'] < 30, `${u!['completion_tokens']} tokens delivered before the cut`);
    const expected = BigInt(u!['prompt_tokens']) * 3000n + BigInt(u!['completion_tokens']) * 15_000n;
    assert.equal(units(u!['cost']), expected);
    assert.equal(units(acct['balance']), units('1') - expected);
  });

  test('free models cost nothing and need no balance', async () => {
    const { key, accountId } = await gw.createKey({ credit: '0' });
    const r = await gw.http('POST', '/v1/chat/completions', { key, body: { model: 'free', messages: [{ role: 'user', content: 'hi' }] } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.usage.cost, 0);
    await settled(gw, accountId);
  });

  test('GET /v1/me shows balance, held, limits and today\'s spend', async () => {
    const { key, accountId } = await gw.createKey({ credit: '2', limits: { rpm: 100, daily_spend: '1.5' } });
    await gw.client(key).chat.completions.create({ model: 'paced', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 });
    await settled(gw, accountId);
    const me = (await gw.http('GET', '/v1/me', { key })).json;
    assert.equal(me.account.id, accountId);
    assert.equal(me.account.held, '0.000000000');
    assert.equal(units(me.account.balance) + units(me.account.spend_today), units('2'));
    assert.ok(units(me.key.spend_today) > 0n);
    assert.deepEqual(me.key.limits, { rpm: 100, daily_spend: '1.500000000' });
  });

  test('credits are idempotent and every credit is a ledger entry', async () => {
    const { accountId } = await gw.createKey({ credit: '1' });
    const credit = (amount: string, idem: string) => gw.admin('POST', `/accounts/${accountId}/credit`, { amount }, { 'idempotency-key': idem });
    assert.equal((await credit('2.5', 'abc')).json.balance, '3.500000000');
    assert.equal((await credit('2.5', 'abc')).json.balance, '3.500000000');
    const conflict = await credit('3', 'abc');
    assert.equal(conflict.status, 400);
    assert.equal(conflict.json.error.param, 'Idempotency-Key');
    const ledger = await gw.running.store.ledgerTotals(accountId);
    assert.equal(ledger.credits, units('3.5'));
  });
});

describe('crash recovery', () => {
  test('SIGKILL with 50 requests in flight: after a restart no hold remains, the ledger balances, nothing recorded is lost', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'token360-kill-'));
    const config = join(dir, 'token360.yaml');
    const db = join(dir, 'db.sqlite');
    writeFileSync(
      config,
      [
        `database: sqlite:${db}`,
        `admin_key: ${ADMIN_KEY}`,
        'log_level: info',
        'providers:',
        '  fast: { type: demo }',
        '  slow: { type: demo, latency_ms: 60000 }',
        'models:',
        '  fast: { pricing: { input: 1, output: 2 }, deployments: [{ provider: fast, model: fast }] }',
        '  slow: { pricing: { input: 1, output: 2 }, deployments: [{ provider: slow, model: slow }] }',
      ].join('\n'),
    );
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const call = (path: string, body: unknown, key = ADMIN_KEY) =>
      fetch(base + path, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    let child = await spawnGateway(config, port);
    try {
      const acct = (await (await call('/admin/accounts', { name: 'k', credit: '1' })).json()) as { id: string };
      const key = ((await (await call('/admin/keys', { account_id: acct.id })).json()) as { key: string }).key;
      for (let i = 0; i < 5; i++) assert.equal((await call('/v1/chat/completions', { model: 'fast', messages: [{ role: 'user', content: `done ${i}` }] }, key)).status, 200);
      await sleep(100);
      const inflight = Array.from({ length: 50 }, (_, i) =>
        call('/v1/chat/completions', { model: 'slow', stream: i % 2 === 0, messages: [{ role: 'user', content: `doomed ${i}` }], max_tokens: 100 }, key).catch(() => null),
      );
      // Wait until all 50 holds are in the database, then kill without warning.
      const probe = new Database(db, { readonly: true });
      for (let i = 0; i < 200 && (probe.prepare('SELECT COUNT(*) AS n FROM holds').get() as { n: number }).n < 50; i++) await sleep(20);
      assert.equal((probe.prepare('SELECT COUNT(*) AS n FROM holds').get() as { n: number }).n, 50);
      probe.close();
      child.kill('SIGKILL');
      await Promise.all(inflight);

      child = await spawnGateway(config, port);
      const account = (await (await fetch(`${base}/admin/accounts/${acct.id}`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).json()) as Record<string, string>;
      assert.equal(account['held'], '0.000000000', 'no hold remains');
      const usage = (await (await fetch(`${base}/admin/usage?account_id=${acct.id}&limit=1000`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).json()) as { data: Record<string, any>[] };
      assert.equal(usage.data.length, 55, '5 completed and 50 interrupted requests, each with one record');
      assert.equal(usage.data.filter((u) => u['status'] === 200).length, 5);
      const interrupted = usage.data.filter((u) => u['error_type'] === 'interrupted');
      assert.equal(interrupted.length, 50);
      assert.ok(interrupted.every((u) => u['cost'] === '0.000000000'));
      const costs = usage.data.reduce((s, u) => s + units(u['cost']), 0n);
      assert.ok(costs > 0n);
      assert.equal(units(account['balance']!), units('1') - costs, 'balance = credits - recorded costs');
      const check = new Database(db, { readonly: true, fileMustExist: true });
      check.defaultSafeIntegers(true);
      const t = check.prepare("SELECT SUM(CASE WHEN kind='credit' THEN amount ELSE 0 END) AS c, SUM(CASE WHEN kind='debit' THEN amount ELSE 0 END) AS d FROM ledger WHERE account_id = ?").get(acct.id) as { c: bigint; d: bigint };
      check.close();
      assert.equal(t.c - t.d, units(account['balance']!), 'the ledger balances');
      // The key still works after the restart.
      assert.equal((await call('/v1/chat/completions', { model: 'fast', messages: [{ role: 'user', content: 'again' }] }, key)).status, 200);
    } finally {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
