import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ADMIN_KEY, startTestGateway, type HttpResult, type TestGateway } from './helpers/gateway.js';

// SPEC §5 over HTTP, against the real gateway with a SQLite file this test owns.

const dir = mkdtempSync(join(tmpdir(), 'token360-admin-'));
const dbPath = join(dir, 'admin.db');
let gw: TestGateway;

before(async () => {
  gw = await startTestGateway({ database: `sqlite:${dbPath}` });
});
after(async () => {
  await gw.close();
  rmSync(dir, { recursive: true, force: true });
});

const USD9 = /^\d+\.\d{9}$/;
const KEY_RE = /^sk-[0-9A-Za-z]{40,}$/;

function assertError(r: HttpResult, status: number, type: string, param?: string | null): void {
  assert.equal(r.status, status, `status ${r.status}: ${r.text}`);
  assert.equal(r.json?.error?.type, type, r.text);
  assert.equal(r.json.error.code, String(status));
  assert.equal(typeof r.json.error.message, 'string');
  assert.equal(r.json.error.traceId, r.headers['x-request-id']);
  if (param !== undefined) assert.equal(r.json.error.param, param);
}

async function newAccount(credit?: string): Promise<any> {
  const r = await gw.admin('POST', '/accounts', credit === undefined ? { name: 'acme' } : { name: 'acme', credit });
  assert.equal(r.status, 201, r.text);
  return r.json;
}

async function newKey(body: Record<string, unknown>): Promise<any> {
  const r = await gw.admin('POST', '/keys', body);
  assert.equal(r.status, 201, r.text);
  return r.json;
}

const chat = (key: string, model = 'demo', extra: Record<string, unknown> = {}): Promise<HttpResult> =>
  gw.http('POST', '/v1/chat/completions', { key, body: { model, messages: [{ role: 'user', content: 'hello' }], max_tokens: 16, ...extra } });

/** Usage is written after the response; wait until `n` records of the key are visible. */
async function usageOf(keyId: string, n: number): Promise<any[]> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const r = await gw.admin('GET', `/usage?key_id=${keyId}&limit=10000`);
    assert.equal(r.status, 200, r.text);
    if (r.json.data.length >= n || Date.now() > deadline) return r.json.data;
    await new Promise((res) => setTimeout(res, 20));
  }
}

describe('accounts', () => {
  test('POST /admin/accounts → 201 with the account; amounts as 9-decimal USD strings', async () => {
    const r = await gw.admin('POST', '/accounts', { name: 'acme', credit: '12.5' });
    assert.equal(r.status, 201, r.text);
    assert.match(r.headers['content-type'] ?? '', /application\/json/);
    const a = r.json;
    assert.equal(typeof a.id, 'string');
    assert.equal(a.name, 'acme');
    assert.equal(a.balance, '12.500000000');
    assert.equal(a.held, '0.000000000');
    assert.equal(typeof a.created_at, 'string');
    assert.ok(Math.abs(Date.parse(a.created_at) - Date.now()) < 60_000, `created_at ${a.created_at}`);

    const g = await gw.admin('GET', `/accounts/${a.id}`);
    assert.equal(g.status, 200);
    assert.deepEqual(g.json, a);
  });

  test('credit is optional and defaults to zero; the smallest unit is kept exactly', async () => {
    assert.equal((await newAccount()).balance, '0.000000000');
    assert.equal((await newAccount('0.000000001')).balance, '0.000000001');
    assert.equal((await newAccount('1234567.123456789')).balance, '1234567.123456789');
  });

  test('bad account bodies are 400 naming the field', async () => {
    assertError(await gw.admin('POST', '/accounts', {}), 400, 'invalid_request_error', 'name');
    assertError(await gw.admin('POST', '/accounts', { name: 'x', credit: '1.0000000001' }), 400, 'invalid_request_error', 'credit');
    assertError(await gw.admin('POST', '/accounts', { name: 'x', credit: '-1' }), 400, 'invalid_request_error', 'credit');
    assertError(await gw.admin('POST', '/accounts', { name: 'x', credit: 'ten' }), 400, 'invalid_request_error', 'credit');
    assertError(await gw.admin('POST', '/accounts', '{not json'), 400, 'invalid_request_error');
  });

  test('POST /admin/accounts/{id}/credit with Idempotency-Key: twice credits once; another amount is 400', async () => {
    const a = await newAccount('1');
    const c1 = await gw.admin('POST', `/accounts/${a.id}/credit`, { amount: '2.25', note: 'invoice 7' }, { 'idempotency-key': 'inv-7' });
    assert.equal(c1.status, 200, c1.text);
    assert.equal(c1.json.id, a.id);
    assert.equal(c1.json.balance, '3.250000000');
    const c2 = await gw.admin('POST', `/accounts/${a.id}/credit`, { amount: '2.25', note: 'invoice 7' }, { 'idempotency-key': 'inv-7' });
    assert.equal(c2.status, 200, c2.text);
    assert.equal(c2.json.balance, '3.250000000');
    // Same amount written differently is the same amount.
    const c3 = await gw.admin('POST', `/accounts/${a.id}/credit`, { amount: '2.250' }, { 'idempotency-key': 'inv-7' });
    assert.equal(c3.status, 200, c3.text);
    assertError(await gw.admin('POST', `/accounts/${a.id}/credit`, { amount: '3' }, { 'idempotency-key': 'inv-7' }), 400, 'invalid_request_error');
    assert.equal((await gw.admin('GET', `/accounts/${a.id}`)).json.balance, '3.250000000');

    // Without the header every call credits.
    await gw.admin('POST', `/accounts/${a.id}/credit`, { amount: '1' });
    const c4 = await gw.admin('POST', `/accounts/${a.id}/credit`, { amount: '1' });
    assert.equal(c4.json.balance, '5.250000000');
  });

  test('credit amounts: more than 9 decimals, zero, negative, missing → 400 param amount', async () => {
    const a = await newAccount('1');
    for (const amount of ['0.0000000001', '1.1234567891', '0', '-5', 'abc', '', undefined]) {
      const body = amount === undefined ? {} : { amount };
      assertError(await gw.admin('POST', `/accounts/${a.id}/credit`, body), 400, 'invalid_request_error', 'amount');
    }
    assert.equal((await gw.admin('GET', `/accounts/${a.id}`)).json.balance, '1.000000000', 'nothing credited');
  });

  test('unknown account ids → 404 not_found_error', async () => {
    assertError(await gw.admin('GET', '/accounts/acct_nope'), 404, 'not_found_error');
    assertError(await gw.admin('POST', '/accounts/acct_nope/credit', { amount: '1' }), 404, 'not_found_error');
    assertError(await gw.admin('POST', '/keys', { account_id: 'acct_nope' }), 404, 'not_found_error');
  });

  test('the admin API refuses client keys and missing or wrong admin keys with 401 invalid_api_key', async () => {
    const { key } = await gw.createKey();
    assertError(await gw.http('GET', '/admin/keys', { key }), 401, 'invalid_api_key');
    assertError(await gw.http('GET', '/admin/keys'), 401, 'invalid_api_key');
    assertError(await gw.http('POST', '/admin/accounts', { key: ADMIN_KEY + 'x', body: { name: 'x' } }), 401, 'invalid_api_key');
  });
});

describe('keys', () => {
  test('POST /admin/keys → 201 with the secret once; lists and reads never show it', async () => {
    const a = await newAccount('5');
    const r = await gw.admin('POST', '/keys', {
      account_id: a.id,
      name: 'ci',
      models: ['demo', 'glm-*'],
      limits: { rpm: 60, tpm: 10000, concurrency: 4, daily_spend: '2.5' },
      expires_at: '2031-01-02T03:04:05.000Z',
    });
    assert.equal(r.status, 201, r.text);
    const k = r.json;
    assert.match(k.key, KEY_RE);
    assert.equal(typeof k.id, 'string');
    assert.equal(typeof k.prefix, 'string');
    assert.ok(k.key.startsWith(k.prefix) && k.prefix.length < k.key.length - 20, 'prefix is a short start of the key');
    assert.equal(k.account_id, a.id);
    assert.equal(k.name, 'ci');
    assert.deepEqual(k.models, ['demo', 'glm-*']);
    assert.deepEqual(k.limits, { rpm: 60, tpm: 10000, concurrency: 4, daily_spend: '2.500000000' });
    assert.equal(k.frozen, false);
    assert.equal(Date.parse(k.expires_at), Date.parse('2031-01-02T03:04:05.000Z'));

    const list = await gw.admin('GET', `/keys?account_id=${a.id}`);
    assert.equal(list.status, 200);
    assert.equal(list.json.data.length, 1);
    const listed = list.json.data[0];
    assert.equal(listed.id, k.id);
    assert.equal(listed.prefix, k.prefix);
    assert.deepEqual(listed.models, k.models);
    assert.ok(!('key' in listed), 'no secret in the list');
    assert.ok(!list.text.includes(k.key), 'the secret appears nowhere in the list');
    assert.ok(!list.text.includes(k.key.slice(k.prefix.length)), 'not even its tail');

    const one = await gw.admin('GET', `/keys/${k.id}`);
    assert.equal(one.status, 200);
    assert.ok(!one.text.includes(k.key));

    // The key works.
    const ok = await chat(k.key);
    assert.equal(ok.status, 200, ok.text);
  });

  test('keys are random: two keys differ', async () => {
    const a = await newAccount();
    const k1 = await newKey({ account_id: a.id });
    const k2 = await newKey({ account_id: a.id });
    assert.notEqual(k1.key, k2.key);
    assert.match(k2.key, KEY_RE);
    assert.equal(k1.models, null, 'absent models means all');
    assert.equal(k1.frozen, false);
    assert.equal(k1.expires_at, null);
  });

  test('GET /admin/keys?account_id= lists only that account', async () => {
    const a = await newAccount();
    const b = await newAccount();
    const ka = await newKey({ account_id: a.id });
    const kb = await newKey({ account_id: b.id });
    const la = await gw.admin('GET', `/keys?account_id=${a.id}`);
    assert.deepEqual(la.json.data.map((k: any) => k.id), [ka.id]);
    const all = await gw.admin('GET', '/keys');
    const ids = all.json.data.map((k: any) => k.id);
    assert.ok(ids.includes(ka.id) && ids.includes(kb.id));
    for (const k of all.json.data) assert.ok(!('key' in k));
  });

  test('bad key bodies are 400 naming the field', async () => {
    const a = await newAccount();
    assertError(await gw.admin('POST', '/keys', {}), 400, 'invalid_request_error', 'account_id');
    assertError(await gw.admin('POST', '/keys', { account_id: a.id, models: 'demo' }), 400, 'invalid_request_error', 'models');
    assertError(await gw.admin('POST', '/keys', { account_id: a.id, limits: { rpm: -1 } }), 400, 'invalid_request_error', 'limits.rpm');
    assertError(await gw.admin('POST', '/keys', { account_id: a.id, limits: { daily_spend: '0.0000000001' } }), 400, 'invalid_request_error', 'limits.daily_spend');
    assertError(await gw.admin('POST', '/keys', { account_id: a.id, expires_at: 'soon' }), 400, 'invalid_request_error', 'expires_at');
    assertError(await gw.admin('POST', '/keys', { account_id: a.id, secret: 'x' }), 400, 'invalid_request_error', 'secret');
    assert.equal((await gw.admin('GET', `/keys?account_id=${a.id}`)).json.data.length, 0, 'no key was created');
  });

  test('PATCH /admin/keys/{id}: frozen, models, limits, expires_at, name — each takes effect on the next request', async () => {
    const a = await newAccount('10');
    const k = await newKey({ account_id: a.id, name: 'orig' });
    assert.equal((await chat(k.key)).status, 200);

    let p = await gw.admin('PATCH', `/keys/${k.id}`, { frozen: true });
    assert.equal(p.status, 200, p.text);
    assert.equal(p.json.frozen, true);
    assert.equal(p.json.name, 'orig', 'other fields untouched');
    assert.ok(!('key' in p.json));
    assertError(await chat(k.key), 403, 'api_key_frozen');

    p = await gw.admin('PATCH', `/keys/${k.id}`, { frozen: false });
    assert.equal(p.json.frozen, false);
    assert.equal((await chat(k.key)).status, 200);

    p = await gw.admin('PATCH', `/keys/${k.id}`, { models: ['glm-*'] });
    assert.deepEqual(p.json.models, ['glm-*']);
    assertError(await chat(k.key), 403, 'model_access_denied', 'model');
    p = await gw.admin('PATCH', `/keys/${k.id}`, { models: null });
    assert.equal(p.json.models, null);
    assert.equal((await chat(k.key)).status, 200);

    p = await gw.admin('PATCH', `/keys/${k.id}`, { limits: { rpm: 1 } });
    assert.deepEqual(p.json.limits, { rpm: 1 });
    const first = await chat(k.key);
    assert.equal(first.status, 200, first.text);
    assert.equal(first.headers['x-ratelimit-limit-requests'], '1');
    assertError(await chat(k.key), 429, 'rate_limit_error');
    p = await gw.admin('PATCH', `/keys/${k.id}`, { limits: null });
    assert.equal(p.json.limits, null);
    assert.equal((await chat(k.key)).status, 200);

    p = await gw.admin('PATCH', `/keys/${k.id}`, { name: 'renamed' });
    assert.equal(p.json.name, 'renamed');
    assert.equal((await gw.admin('GET', `/keys/${k.id}`)).json.name, 'renamed');

    p = await gw.admin('PATCH', `/keys/${k.id}`, { expires_at: '2000-01-01T00:00:00Z' });
    assert.equal(Date.parse(p.json.expires_at), Date.parse('2000-01-01T00:00:00Z'));
    assertError(await chat(k.key), 401, 'invalid_api_key');
    p = await gw.admin('PATCH', `/keys/${k.id}`, { expires_at: null });
    assert.equal(p.json.expires_at, null);
    assert.equal((await chat(k.key)).status, 200);
  });

  test('PATCH refuses wrong types and unknown fields without changing the key', async () => {
    const a = await newAccount();
    const k = await newKey({ account_id: a.id });
    assertError(await gw.admin('PATCH', `/keys/${k.id}`, { frozen: 'yes' }), 400, 'invalid_request_error', 'frozen');
    assertError(await gw.admin('PATCH', `/keys/${k.id}`, { models: [1] }), 400, 'invalid_request_error', 'models');
    assertError(await gw.admin('PATCH', `/keys/${k.id}`, { account_id: 'other' }), 400, 'invalid_request_error', 'account_id');
    const now = await gw.admin('GET', `/keys/${k.id}`);
    assert.equal(now.json.frozen, false);
    assert.equal(now.json.models, null);
  });

  test('DELETE /admin/keys/{id} → 204; the key answers 401 from then on', async () => {
    const a = await newAccount('1');
    const k = await newKey({ account_id: a.id });
    assert.equal((await chat(k.key)).status, 200);
    const d = await gw.admin('DELETE', `/keys/${k.id}`);
    assert.equal(d.status, 204);
    assert.equal(d.text, '');
    assertError(await chat(k.key), 401, 'invalid_api_key');
    assertError(await gw.http('GET', '/v1/models', { key: k.key }), 401, 'invalid_api_key');
    assertError(await chat(k.key), 401, 'invalid_api_key');
    assert.deepEqual((await gw.admin('GET', `/keys?account_id=${a.id}`)).json.data, []);
    assertError(await gw.admin('DELETE', `/keys/${k.id}`), 404, 'not_found_error');
    assertError(await gw.admin('PATCH', `/keys/${k.id}`, { frozen: false }), 404, 'not_found_error');
    assertError(await chat(k.key), 401, 'invalid_api_key');
  });

  test('unknown key ids → 404 not_found_error', async () => {
    assertError(await gw.admin('GET', '/keys/key_nope'), 404, 'not_found_error');
    assertError(await gw.admin('PATCH', '/keys/key_nope', { frozen: true }), 404, 'not_found_error');
    assertError(await gw.admin('DELETE', '/keys/key_nope'), 404, 'not_found_error');
  });
});

describe('usage', () => {
  const FIELDS = [
    'trace_id', 'account_id', 'key_id', 'model', 'provider', 'upstream_model', 'prompt_tokens', 'completion_tokens',
    'cached_tokens', 'cost', 'status', 'error_type', 'stream', 'latency_ms', 'ttft_ms', 'created_at',
  ];
  let account: any;
  let key: any;
  let other: any;
  const traces: string[] = [];

  before(async () => {
    account = await newAccount('10');
    key = await newKey({ account_id: account.id, models: ['demo'] });
    other = await newKey({ account_id: account.id });
    for (let i = 0; i < 5; i++) {
      const r = await chat(key.key, 'demo', i === 4 ? { stream: true } : {});
      assert.equal(r.status, 200, r.text);
      traces.push(r.headers['x-request-id']!);
    }
    // A refusal after authentication leaves a record too, at no cost.
    const denied = await chat(key.key, 'not-allowed-model');
    assert.ok(denied.status === 403 || denied.status === 404, denied.text);
    traces.push(denied.headers['x-request-id']!);
    assert.equal((await chat(other.key)).status, 200);
  });

  test('every request leaves a record with all SPEC §4 fields', async () => {
    const data = await usageOf(key.id, 6);
    assert.equal(data.length, 6);
    for (const u of data) {
      assert.deepEqual(Object.keys(u).filter((f) => FIELDS.includes(f)).sort(), [...FIELDS].sort(), 'all fields present');
      assert.equal(u.account_id, account.id);
      assert.equal(u.key_id, key.id);
      assert.match(u.cost, USD9);
      assert.equal(typeof u.prompt_tokens, 'number');
      assert.equal(typeof u.completion_tokens, 'number');
      assert.equal(typeof u.cached_tokens, 'number');
      assert.equal(typeof u.status, 'number');
      assert.equal(typeof u.stream, 'boolean');
      assert.equal(typeof u.latency_ms, 'number');
      assert.ok(u.ttft_ms === null || typeof u.ttft_ms === 'number');
      assert.ok(!Number.isNaN(Date.parse(u.created_at)));
    }
    assert.deepEqual(data.map((u: any) => u.trace_id), [...traces].reverse(), 'one record per request, newest first');

    const ok = data.filter((u: any) => u.status === 200);
    assert.equal(ok.length, 5);
    for (const u of ok) {
      assert.equal(u.model, 'demo');
      assert.equal(u.provider, 'demo');
      assert.equal(u.upstream_model, 'demo-upstream');
      assert.ok(u.prompt_tokens > 0 && u.completion_tokens > 0);
      assert.notEqual(u.cost, '0.000000000');
      assert.equal(u.error_type, null);
    }
    assert.equal(data.filter((u: any) => u.stream).length, 1);
    const refused = data.find((u: any) => u.status !== 200);
    assert.equal(refused.cost, '0.000000000');
    assert.equal(typeof refused.error_type, 'string');

    // The usage costs are what the balance lost.
    await usageOf(other.id, 1);
    const all = (await gw.admin('GET', `/usage?account_id=${account.id}`)).json.data;
    assert.equal(all.length, 7);
    const nanos = (s: string): bigint => BigInt(s.replace('.', ''));
    const spent = all.reduce((s: bigint, u: any) => s + nanos(u.cost), 0n);
    const acct = (await gw.admin('GET', `/accounts/${account.id}`)).json;
    assert.equal(acct.held, '0.000000000');
    assert.equal(nanos(acct.balance), nanos('10.000000000') - spent);
  });

  test('limit and cursor page through the records without gaps or repeats; next_cursor is null at the end', async () => {
    await usageOf(key.id, 6);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const q: string = `/usage?key_id=${key.id}&limit=4${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`;
      const r = await gw.admin('GET', q);
      assert.equal(r.status, 200, r.text);
      assert.ok('next_cursor' in r.json);
      assert.ok(r.json.data.length <= 4);
      seen.push(...r.json.data.map((u: any) => u.trace_id));
      cursor = r.json.next_cursor;
      pages++;
    } while (cursor !== null && pages < 10);
    assert.equal(pages, 2);
    assert.deepEqual(seen, [...traces].reverse());

    const exact = await gw.admin('GET', `/usage?key_id=${key.id}&limit=6`);
    assert.equal(exact.json.data.length, 6);
    assert.equal(exact.json.next_cursor, null, 'a page that ends exactly at the last record has no cursor');
  });

  test('filters: account_id, key_id, from, to', async () => {
    await usageOf(other.id, 1);
    const byKey = await gw.admin('GET', `/usage?key_id=${other.id}`);
    assert.equal(byKey.json.data.length, 1);
    assert.equal(byKey.json.data[0].key_id, other.id);
    const future = new Date(Date.now() + 3_600_000).toISOString();
    assert.deepEqual((await gw.admin('GET', `/usage?account_id=${account.id}&from=${encodeURIComponent(future)}`)).json.data, []);
    const past = new Date(Date.now() - 3_600_000).toISOString();
    assert.deepEqual((await gw.admin('GET', `/usage?account_id=${account.id}&to=${encodeURIComponent(past)}`)).json.data, []);
    assert.equal((await gw.admin('GET', `/usage?account_id=${account.id}&from=${encodeURIComponent(past)}&to=${encodeURIComponent(future)}`)).json.data.length, 7);
    assert.deepEqual((await gw.admin('GET', '/usage?account_id=acct_nope')).json, { object: 'list', data: [], next_cursor: null });
  });

  test('limit defaults to 100, max 10000; out of range → 400 param limit', async () => {
    const r = await gw.admin('GET', '/usage?limit=10000');
    assert.equal(r.status, 200);
    for (const bad of ['10001', '0', '-1', '1.5', 'many']) {
      assertError(await gw.admin('GET', `/usage?limit=${bad}`), 400, 'invalid_request_error', 'limit');
    }
    assertError(await gw.admin('GET', '/usage?from=yesterday'), 400, 'invalid_request_error', 'from');
  });

  test('a query parameter given twice is a 400 naming it, never a 500', async () => {
    for (const name of ['account_id', 'key_id', 'from', 'to', 'limit', 'cursor']) {
      assertError(await gw.admin('GET', `/usage?${name}=1&${name}=2`), 400, 'invalid_request_error', name);
    }
    assertError(await gw.admin('GET', '/keys?account_id=a&account_id=b'), 400, 'invalid_request_error', 'account_id');
  });
});

test('keys are stored hashed: the plaintext appears nowhere in the database files', async () => {
  const a = await newAccount('1');
  const k = await newKey({ account_id: a.id, name: 'secret-check' });
  assert.equal((await chat(k.key)).status, 200);
  await usageOf(k.id, 1);
  const files = [dbPath, `${dbPath}-wal`, `${dbPath}-shm`, `${dbPath}-journal`].filter((f) => existsSync(f));
  const bytes = Buffer.concat(files.map((f) => readFileSync(f)));
  // The files read are the live database: the key's record is in them...
  assert.ok(bytes.includes(k.id), 'key id found in the database files');
  assert.ok(bytes.includes('secret-check'), 'key name found in the database files');
  // ...but not the secret, nor the part of it after the displayed prefix, in any encoding SQLite uses.
  const secretTail = k.key.slice(k.prefix.length);
  for (const needle of [k.key, secretTail]) {
    assert.ok(!bytes.includes(Buffer.from(needle, 'utf8')), 'plaintext key in the database');
    assert.ok(!bytes.includes(Buffer.from(needle, 'utf16le')), 'plaintext key (UTF-16) in the database');
  }
  // Nor the admin key.
  assert.ok(!bytes.includes(ADMIN_KEY));
});
