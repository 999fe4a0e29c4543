// SPEC §8 logs: the real gateway with its log captured, real traffic (client keys, the admin key,
// providers with credentials that fail now and then), then: no secret anywhere in the log; one
// request line per response, under the response's x-request-id; the line's fields as the usage
// record says; upstream failures and what routing did next; audit lines for admin changes.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { AnthropicUpstream } from './helpers/anthropic-upstream.js';
import { ADMIN_KEY, backgroundDone, startTestGateway, type HttpResult, type TestGateway } from './helpers/gateway.js';
import { GEMINI_KEY, startGemini, type GeminiUpstream } from './helpers/gemini-upstream.js';
import { startFakeUpstream, type FakeUpstream, type RecordedRequest } from './helpers/upstream.js';
import { createLogger, infoLines } from '../src/compose/logger.js';

const OPENAI_KEY = 'sk-proj-openai-upstream-secret-0123456789ABCDEFabcdef';
const OPENAI_WRONG_KEY = 'sk-proj-openai-wrong-secret-9876543210ZYXWVUzyxwvu';
const PRICING = { input: 1, output: 2 };

type Line = Record<string, unknown>;

describe('logs: request lines, upstream failures, audit, no secrets', () => {
  let openai: FakeUpstream;
  let anthropic: AnthropicUpstream;
  let gemini: GeminiUpstream;
  let gw: TestGateway;
  /** The x-request-id of every response the test got, in order. */
  const answered: string[] = [];
  /** Client key secrets handed out during the run. */
  const clientKeys: string[] = [];

  /** Raw HTTP to the gateway; every response's x-request-id is kept. */
  async function call(method: string, path: string, opts: { body?: unknown; headers?: Record<string, string>; key?: string } = {}): Promise<HttpResult> {
    const r = await gw.http(method, path, opts);
    assert.match(r.headers['x-request-id'] ?? '', /^req_[0-9a-f]{32}$/, `${method} ${path}: x-request-id`);
    answered.push(r.headers['x-request-id']!);
    return r;
  }
  const admin = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<HttpResult> =>
    call(method, `/admin${path}`, { body, headers: { authorization: `Bearer ${ADMIN_KEY}`, ...headers } });
  const chat = (key: string, model: string, content: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}): Promise<HttpResult> =>
    call('POST', '/v1/chat/completions', { key, headers, body: { model, messages: [{ role: 'user', content }], ...extra } });

  const lines = (): Line[] => gw.logs.map((l) => JSON.parse(l) as Line);
  const requestLines = (): Line[] => lines().filter((l) => l['msg'] === 'request');
  const lineOf = (traceId: string): Line => {
    const found = requestLines().filter((l) => l['traceId'] === traceId);
    assert.equal(found.length, 1, `one request line for ${traceId}`);
    return found[0]!;
  };

  let account = '';
  let key = { id: '', key: '', prefix: '' };

  before(async () => {
    openai = await startFakeUpstream();
    // The wrong credential gets 401, as OpenAI answers it; content 'fail' gets 500.
    openai.setBehavior((r: RecordedRequest) => {
      if (r.headers['authorization'] === `Bearer ${OPENAI_WRONG_KEY}`) return { kind: 'status', status: 401 };
      const messages = (r.body as { messages?: { content?: string }[] }).messages;
      if (messages?.[0]?.content === 'fail') return { kind: 'status', status: 500 };
      return (r.body as { stream?: boolean }).stream === true
        ? { kind: 'stream', chunks: ['Hello', ' there'], usage: { prompt_tokens: 9, completion_tokens: 2 } }
        : { kind: 'ok', text: 'Hello there', usage: { prompt_tokens: 11, completion_tokens: 3 } };
    });
    anthropic = await AnthropicUpstream.start('sk-ant-api03-logs-secret-0123456789abcdef');
    gemini = await startGemini();
    gw = await startTestGateway(
      {
        providers: {
          oa: { type: 'openai', base_url: openai.url, api_key: OPENAI_KEY },
          oa_wrong: { type: 'openai', base_url: openai.url, api_key: OPENAI_WRONG_KEY },
          ant: { type: 'anthropic', base_url: anthropic.url, api_key: anthropic.apiKey },
          goo: { type: 'gemini', base_url: gemini.url, api_key: GEMINI_KEY },
        },
        models: {
          gpt: { pricing: PRICING, deployments: [{ provider: 'oa', model: 'gpt-up' }] },
          'gpt-ha': {
            pricing: PRICING,
            deployments: [
              { provider: 'oa_wrong', model: 'gpt-up', priority: 0 },
              { provider: 'oa', model: 'gpt-up', priority: 1 },
            ],
          },
          claude: { pricing: PRICING, deployments: [{ provider: 'ant', model: 'claude-up' }] },
          gem: { pricing: PRICING, deployments: [{ provider: 'goo', model: 'gemini-2.5-flash' }] },
        },
        // Retries without waiting long: the backoff of three attempts stays short.
        routing: { circuit: { failures: 1_000_000 }, max_retry_wait_ms: 50 },
        server: { body_limit: 100_000 },
      },
      { captureLogs: true },
    );
    const a = await admin('POST', '/accounts', { name: 'logs', credit: '50' });
    assert.equal(a.status, 201, a.text);
    account = a.json.id;
    const k = await admin('POST', '/keys', { account_id: account, name: 'main' });
    assert.equal(k.status, 201, k.text);
    key = { id: k.json.id, key: k.json.key, prefix: k.json.prefix };
    clientKeys.push(key.key);
  });

  after(async () => {
    await gw?.close();
    await openai?.close();
    await anthropic?.close();
    await gemini?.close();
  });

  test('a success: one line with the usage record’s tokens and cost, the deployment, the key’s prefix', async () => {
    const r = await chat(key.key, 'gpt', 'hi', {}, { 'x-client-request-id': 'order-42.a_b' });
    assert.equal(r.status, 200, r.text);
    const id = r.headers['x-request-id']!;
    await backgroundDone(gw);
    const usage = await admin('GET', `/usage?key_id=${key.id}`);
    const rec = (usage.json.data as Line[]).find((u) => u['trace_id'] === id)!;
    assert.ok(rec !== undefined, 'usage record');
    const line = lineOf(id);
    assert.equal(line['level'], 30, 'info');
    assert.deepEqual(
      { ...line, latency_ms: typeof line['latency_ms'], time: undefined, level: undefined, pid: undefined, hostname: undefined },
      {
        traceId: id,
        msg: 'request',
        client_request_id: 'order-42.a_b',
        route: 'chat',
        key: key.prefix,
        account,
        model: 'gpt',
        deployment: 'oa/gpt-up',
        stream: false,
        attempts: 1,
        status: 200,
        error_type: null,
        prompt_tokens: rec['prompt_tokens'],
        completion_tokens: rec['completion_tokens'],
        cost: rec['cost'],
        latency_ms: 'number',
        ttft_ms: null,
        time: undefined,
        level: undefined,
        pid: undefined,
        hostname: undefined,
      },
    );
    assert.equal(rec['prompt_tokens'], 11);
    assert.equal(rec['completion_tokens'], 3);
    assert.notEqual(rec['cost'], '0.000000000');
  });

  test('a stream: its line has the time to the first token', async () => {
    const r = await chat(key.key, 'gpt', 'hi', { stream: true });
    assert.equal(r.status, 200, r.text);
    await backgroundDone(gw);
    const line = lineOf(r.headers['x-request-id']!);
    assert.equal(line['stream'], true);
    assert.equal(line['status'], 200);
    assert.equal(line['prompt_tokens'], 9);
    assert.equal(line['completion_tokens'], 2);
    assert.equal(typeof line['ttft_ms'], 'number');
  });

  test('an upstream failing every attempt: a line per attempt saying what comes next, and the request line with its error', async () => {
    const r = await chat(key.key, 'gpt', 'fail');
    assert.equal(r.status, 502, r.text);
    const id = r.headers['x-request-id']!;
    const failed = lines().filter((l) => l['msg'] === 'upstream attempt failed' && l['traceId'] === id);
    assert.deepEqual(
      failed.map((l) => [l['deployment'], l['attempt'], l['failure'], l['status'], l['next']]),
      [
        ['oa/gpt-up', 1, 'status', 500, 'retry'],
        ['oa/gpt-up', 2, 'status', 500, 'retry'],
        ['oa/gpt-up', 3, 'status', 500, 'give_up'],
      ],
    );
    const line = lineOf(id);
    assert.equal(line['status'], 502);
    assert.equal(line['error_type'], 'api_error');
    assert.equal(line['attempts'], 3);
    assert.equal(line['deployment'], 'oa/gpt-up');
    assert.equal(line['cost'], '0.000000000');
    assert.equal(line['prompt_tokens'], 0);
  });

  test('a credential the provider refuses: failover, named in the failure line', async () => {
    const r = await chat(key.key, 'gpt-ha', 'hi');
    assert.equal(r.status, 200, r.text);
    const id = r.headers['x-request-id']!;
    const failed = lines().filter((l) => l['msg'] === 'upstream attempt failed' && l['traceId'] === id);
    assert.equal(failed.length, 1);
    assert.equal(failed[0]!['deployment'], 'oa_wrong/gpt-up');
    assert.equal(failed[0]!['status'], 401);
    assert.equal(failed[0]!['next'], 'failover');
    assert.equal(failed[0]!['next_deployment'], 'oa/gpt-up');
    assert.equal(lineOf(id)['attempts'], 2);
    assert.equal(lineOf(id)['deployment'], 'oa/gpt-up');
  });

  test('refused before authentication: a line with no key, as the client was answered', async () => {
    const bad = await chat('sk-not-a-real-key-0123456789abcdefghijklmnopqrstuv', 'gpt', 'hi');
    assert.equal(bad.status, 401);
    const line = lineOf(bad.headers['x-request-id']!);
    assert.equal(line['key'], null);
    assert.equal(line['account'], null);
    assert.equal(line['route'], 'chat');
    assert.equal(line['status'], 401);
    assert.equal(line['error_type'], 'invalid_api_key');
    const none = await call('POST', '/v1/chat/completions', { body: { model: 'gpt', messages: [] } });
    assert.equal(none.status, 401);
    assert.equal(lineOf(none.headers['x-request-id']!)['status'], 401);
  });

  test('Anthropic Messages (key in x-api-key) and Gemini: lines of their own', async () => {
    const m = await call('POST', '/v1/messages', {
      headers: { 'x-api-key': key.key, 'anthropic-version': '2023-06-01' },
      body: { model: 'claude', max_tokens: 50, messages: [{ role: 'user', content: 'hi' }] },
    });
    assert.equal(m.status, 200, m.text);
    const g = await chat(key.key, 'gem', 'hi');
    assert.equal(g.status, 200, g.text);
    await backgroundDone(gw);
    assert.equal(lineOf(m.headers['x-request-id']!)['route'], 'messages');
    assert.equal(lineOf(m.headers['x-request-id']!)['deployment'], 'ant/claude-up');
    assert.equal(lineOf(g.headers['x-request-id']!)['deployment'], 'goo/gemini-2.5-flash');
  });

  test('other requests (models, an unknown path, a bad admin key): an access line each, without query string', async () => {
    const models = await call('GET', '/v1/models', { key: key.key });
    assert.equal(models.status, 200);
    const missing = await call('GET', '/nowhere?key=query-secret-value');
    assert.equal(missing.status, 404);
    const badAdmin = await call('GET', '/admin/keys', { key: key.key });
    assert.equal(badAdmin.status, 401);
    // Refused before the pipeline: a URL the router cannot read, a body over the limit.
    const badUrl = await call('GET', '/v1/models/%E0%A4%A');
    assert.equal(badUrl.status, 400, badUrl.text);
    const tooLarge = await call('POST', '/v1/chat/completions', { key: key.key, body: { model: 'gpt', messages: [{ role: 'user', content: 'x'.repeat(200_000) }] } });
    assert.equal(tooLarge.status, 413, tooLarge.text);
    for (const r of [models, missing, badAdmin, badUrl, tooLarge]) {
      const id = r.headers['x-request-id']!;
      const deadline = performance.now() + 5000;
      // Written when the response has ended: it may follow the client's read by a moment.
      while (!requestLines().some((l) => l['traceId'] === id)) {
        assert.ok(performance.now() < deadline, `access line for ${id}`);
        await sleep(10);
      }
      const line = lineOf(id);
      assert.equal(line['status'], r.status);
      assert.equal(line['key'], undefined);
    }
    assert.equal(lineOf(missing.headers['x-request-id']!)['path'], '/nowhere');
    assert.ok(!gw.logs.join('').includes('query-secret-value'));
  });

  test('admin changes: an audit line each, naming what changed, never a secret', async () => {
    const a = await admin('POST', '/accounts', { name: 'audited', credit: '1.5' });
    const acct = a.json.id as string;
    await admin('PATCH', `/accounts/${acct}`, { name: 'audited-2' });
    const c1 = await admin('POST', `/accounts/${acct}/credit`, { amount: '2' }, { 'idempotency-key': 'pay-1' });
    const c2 = await admin('POST', `/accounts/${acct}/credit`, { amount: '2' }, { 'idempotency-key': 'pay-1' });
    assert.equal(c1.status, 200, c1.text);
    assert.equal(c2.status, 200, c2.text);
    const k = await admin('POST', '/keys', { account_id: acct, models: ['gpt'] });
    clientKeys.push(k.json.key);
    const frozen = await admin('PATCH', `/keys/${k.json.id}`, { frozen: true });
    assert.equal(frozen.status, 200);
    // The frozen key tried: refused after authentication, so the outcome's line.
    const refused = await chat(k.json.key, 'gpt', 'hi');
    assert.equal(refused.status, 403);
    assert.equal(lineOf(refused.headers['x-request-id']!)['key'], k.json.prefix);
    await admin('PATCH', `/keys/${k.json.id}`, { models: ['gpt', 'gem'] });
    assert.equal((await admin('DELETE', `/keys/${k.json.id}`)).status, 204);

    const audit = lines().filter((l) => l['audit'] === true);
    const of = (action: string): Line[] => audit.filter((l) => l['action'] === action && (l['account'] === acct || l['key'] === k.json.id));
    assert.equal(of('account.created')[0]!['credit'], '1.500000000');
    assert.equal(of('account.created')[0]!['traceId'], a.headers['x-request-id']);
    assert.deepEqual(of('account.updated')[0]!['changed'], { name: 'audited-2' });
    assert.deepEqual(
      of('account.credited').map((l) => [l['amount'], l['replayed'], l['idempotency_key']]),
      [
        ['2.000000000', false, 'pay-1'],
        ['2.000000000', true, 'pay-1'],
      ],
    );
    const created = of('key.created')[0]!;
    assert.equal(created['prefix'], k.json.prefix);
    assert.equal(created['account'], acct);
    assert.deepEqual(created['models'], ['gpt']);
    assert.deepEqual(of('key.frozen')[0]!['changed'], { frozen: true });
    assert.deepEqual(of('key.updated')[0]!['changed'], { models: ['gpt', 'gem'] });
    assert.equal(of('key.revoked')[0]!['prefix'], k.json.prefix);
    for (const l of audit) {
      assert.equal(l['level'], 30);
      assert.equal(l['hash'], undefined);
    }
  });

  test('the whole log: no client key, admin key or provider credential; exactly one request line per response', async () => {
    // The access lines of the last responses are written as they end.
    const deadline = performance.now() + 5000;
    while (!answered.every((id) => requestLines().some((l) => l['traceId'] === id))) {
      assert.ok(performance.now() < deadline, 'a request line for every response');
      await sleep(10);
    }
    await backgroundDone(gw);
    const all = gw.logs.join('');
    const demo = gw.running.created.demoKey;
    const secrets = [...clientKeys, ADMIN_KEY, OPENAI_KEY, OPENAI_WRONG_KEY, anthropic.apiKey, GEMINI_KEY, ...(demo === null ? [] : [demo])];
    assert.ok(clientKeys.length >= 2);
    for (const s of secrets) assert.ok(!all.includes(s), `a secret in the log: ${s.slice(0, 8)}…`);
    // No part of a credential long enough to matter: the first 16 characters after a key's prefix.
    for (const s of clientKeys) assert.ok(!all.includes(s.slice(10, 26)));

    const counts = new Map<string, number>();
    for (const l of requestLines()) counts.set(String(l['traceId']), (counts.get(String(l['traceId'])) ?? 0) + 1);
    assert.equal(new Set(answered).size, answered.length, 'every response has its own x-request-id');
    for (const id of answered) assert.equal(counts.get(id), 1, `request lines for ${id}`);
    assert.deepEqual([...counts.keys()].filter((id) => !answered.includes(id)), [], 'no request line without a response');
    assert.ok(answered.length >= 20, `traffic enough: ${answered.length}`);
  });
});

test('request lines written by infoLines are the lines pino writes for the same fields (level, time, pid, hostname, fields in order, msg); below info, none', () => {
  const out: string[] = [];
  const log = createLogger('info', { write: (l: string) => void out.push(l) });
  const fields = { traceId: 'req_0123', client_request_id: null, model: 'a "quoted"\nmodel \u2028 ünï', stream: false, attempts: 2, cost: '0.000123', ttft_ms: null };
  log.info(fields, 'request');
  infoLines(log).info(fields, 'request');
  infoLines(log).info({}, 'request');
  log.info({}, 'request');
  assert.equal(out.length, 4);
  const sameTime = (l: string) => l.replace(/"time":\d+/, '"time":0');
  assert.equal(sameTime(out[1]!), sameTime(out[0]!));
  assert.equal(sameTime(out[2]!), sameTime(out[3]!));
  assert.ok(out[1]!.endsWith('}\n'));
  const quiet: string[] = [];
  infoLines(createLogger('warn', { write: (l: string) => void quiet.push(l) })).info(fields, 'request');
  assert.deepEqual(quiet, []);
});
