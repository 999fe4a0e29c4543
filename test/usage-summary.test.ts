import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { formatUsd, parseUsd } from '../src/billing/money.js';
import { backgroundDone, startTestGateway, type HttpResult, type TestGateway, type TestKey } from './helpers/gateway.js';
import { startFakeUpstream, type FakeUpstream, type RecordedRequest } from './helpers/upstream.js';

// GET /admin/usage/summary and the usage of /v1/me, over HTTP against the real gateway: the
// requests are real (a fake upstream that answers, fails or is refused), and every summary must
// equal the sums of the records GET /admin/usage lists.

let gw: TestGateway;
let fake: FakeUpstream;
let a1: TestKey;
let a2: TestKey;
let b1: TestKey;
let fresh: TestKey;

const DAY = 86_400_000;
const GROUPINGS = ['day', 'model', 'key', 'account'] as const;

/** What the fake upstream does, by the last message's text: `fail400`, `fail500`, or an answer whose usage grows with the text. */
function behave(req: RecordedRequest) {
  const messages = (req.body as { messages?: { content?: unknown }[] }).messages ?? [];
  const text = String(messages[messages.length - 1]?.content ?? '');
  if (text === 'fail400') return { kind: 'status', status: 400 } as const;
  if (text === 'fail500') return { kind: 'status', status: 500 } as const;
  return { kind: 'ok', usage: { prompt_tokens: 10 + text.length, completion_tokens: 3 * text.length, cached_tokens: text.length % 5 } } as const;
}

const chat = (key: TestKey, model: string, content: string, stream = false): Promise<HttpResult> =>
  gw.http('POST', '/v1/chat/completions', { key: key.key, body: { model, messages: [{ role: 'user', content }], max_tokens: 50, stream } });

before(async () => {
  fake = await startFakeUpstream();
  fake.setBehavior(behave);
  gw = await startTestGateway({
    providers: { up: { type: 'openai', base_url: fake.url, api_key: 'sk-upstream-secret' } },
    models: {
      'gpt-x': { pricing: { input: 1.5, output: 3.25, cached_input: 0.5 }, routing: { attempts: 1 }, deployments: [{ provider: 'up', model: 'up-model' }] },
      'org/gpt-y': { pricing: { input: 0.3, output: 0.7 }, routing: { attempts: 1 }, deployments: [{ provider: 'up', model: 'up-model-y' }] },
    },
  });
  a1 = await gw.createKey({ credit: '50' });
  a2 = await gw.createKey({ accountId: a1.accountId, models: ['gpt-x'] });
  b1 = await gw.createKey({ credit: '0.000001' });
  fresh = await gw.createKey();

  const sent: Promise<HttpResult>[] = [];
  for (let i = 0; i < 6; i++) {
    sent.push(chat(a1, 'gpt-x', 'hello '.repeat(i + 1), i % 2 === 0));
    sent.push(chat(a1, 'org/gpt-y', `question ${i}`));
    sent.push(chat(a2, 'gpt-x', `x${i}`));
  }
  sent.push(chat(a1, 'gpt-x', 'fail400'), chat(a1, 'org/gpt-y', 'fail500'), chat(a2, 'gpt-x', 'fail500', true));
  sent.push(chat(a1, 'demo', 'on the demo provider'), chat(a1, 'no-such-model', 'x'));
  sent.push(chat(a2, 'org/gpt-y', 'not allowed')); // 403 model_access_denied
  sent.push(chat(b1, 'gpt-x', 'long '.repeat(200))); // 402: the account cannot cover the hold
  sent.push(chat(b1, 'org/gpt-y', 'hi'));
  const statuses = (await Promise.all(sent)).map((r) => r.status);
  // The mix this test means to summarize: successes and each kind of failure.
  for (const s of [200, 400, 402, 403, 404, 502]) assert.ok(statuses.includes(s), `a ${s} among ${statuses.join(',')}`);
  await backgroundDone(gw);
});
after(async () => {
  await gw.close();
  await fake.close();
});

interface Totals {
  requests: number;
  errors: number;
  prompt_tokens: number;
  completion_tokens: number;
  cached_tokens: number;
  cache_write_tokens: number;
  reasoning_tokens: number;
  cost: bigint;
}

const TOKENS = ['prompt_tokens', 'completion_tokens', 'cached_tokens', 'cache_write_tokens', 'reasoning_tokens'] as const;

/** Every usage record the gateway wrote (one page is all of them here). */
async function records(query = ''): Promise<any[]> {
  const r = await gw.admin('GET', `/usage?limit=10000${query}`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.next_cursor, null);
  return r.json.data;
}

function sum(recs: readonly any[]): Totals {
  const t: Totals = { requests: 0, errors: 0, prompt_tokens: 0, completion_tokens: 0, cached_tokens: 0, cache_write_tokens: 0, reasoning_tokens: 0, cost: 0n };
  for (const u of recs) {
    t.requests++;
    if (u.status >= 400) t.errors++;
    for (const f of TOKENS) t[f] += u[f] as number;
    t.cost += parseUsd(u.cost as string)!;
  }
  return t;
}

/** As the API presents totals: cost a USD decimal string. */
const shown = (t: Totals): Record<string, unknown> => ({ ...t, cost: formatUsd(t.cost) });

function groupOf(u: any, by: (typeof GROUPINGS)[number]): string {
  return { day: String(u.created_at).slice(0, 10), model: u.model as string, key: u.key_id as string, account: u.account_id as string }[by];
}

/** The summary GET /admin/usage/summary owes for these records, in its order. */
function expected(recs: readonly any[], by: (typeof GROUPINGS)[number]): Record<string, unknown>[] {
  const groups = new Map<string, any[]>();
  for (const u of recs) groups.set(groupOf(u, by), [...(groups.get(groupOf(u, by)) ?? []), u]);
  const rows = [...groups].map(([group, rs]) => ({ group, t: sum(rs) }));
  const byName = (x: { group: string }, y: { group: string }): number => (x.group < y.group ? -1 : x.group > y.group ? 1 : 0);
  rows.sort(by === 'day' ? byName : (x, y) => (x.t.cost !== y.t.cost ? (y.t.cost > x.t.cost ? 1 : -1) : y.t.requests - x.t.requests || byName(x, y)));
  return rows.map((r) => ({ group: r.group, ...shown(r.t) }));
}

async function summary(query: string): Promise<HttpResult> {
  return gw.admin('GET', `/usage/summary${query}`);
}

function assertError(r: HttpResult, status: number, param: string | null): void {
  assert.equal(r.status, status, r.text);
  assert.equal(r.json.error.type, 'invalid_request_error');
  assert.equal(r.json.error.code, String(status));
  assert.equal(r.json.error.param, param);
  assert.equal(r.json.error.traceId, r.headers['x-request-id']);
}

describe('GET /admin/usage/summary', () => {
  test('every grouping, unfiltered and per account and key, equals the sums of the records GET /admin/usage lists', async () => {
    const all = await records();
    assert.ok(all.length >= 25, `records: ${all.length}`);
    assert.ok(all.some((u) => u.status === 402) && all.some((u) => u.status === 502));
    const filters: [string, (u: any) => boolean][] = [
      ['', () => true],
      [`&account_id=${a1.accountId}`, (u) => u.account_id === a1.accountId],
      [`&key_id=${a2.id}`, (u) => u.key_id === a2.id],
      [`&account_id=${b1.accountId}&key_id=${a1.id}`, () => false],
    ];
    for (const by of GROUPINGS) {
      for (const [filter, keep] of filters) {
        const r = await summary(`?group_by=${by}${filter}`);
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.object, 'usage_summary');
        assert.equal(r.json.group_by, by);
        const mine = all.filter(keep);
        assert.deepEqual(r.json.data, expected(mine, by), `${by} ${filter}`);
        assert.deepEqual(r.json.total, shown(sum(mine)), `${by} ${filter}: total`);
      }
    }
  });

  test('the default range is the last 30 UTC days, today included; from is inclusive, to exclusive', async () => {
    const r = await summary('?group_by=account');
    const tomorrow = (Math.floor(Date.now() / DAY) + 1) * DAY;
    assert.equal(r.json.to, new Date(tomorrow).toISOString());
    assert.equal(r.json.from, new Date(tomorrow - 30 * DAY).toISOString());

    const all = await records(`&key_id=${a1.id}`);
    const times = all.map((u) => Date.parse(u.created_at)).sort((x, y) => x - y);
    const mid = times[Math.floor(times.length / 2)]!;
    const iso = (ms: number): string => encodeURIComponent(new Date(ms).toISOString());
    for (const [from, to] of [[mid, tomorrow], [times[0]!, mid], [mid, mid + 1]] as const) {
      const s = await summary(`?group_by=key&key_id=${a1.id}&from=${iso(from)}&to=${iso(to)}`);
      assert.equal(s.status, 200, s.text);
      const inRange = all.filter((u) => Date.parse(u.created_at) >= from && Date.parse(u.created_at) < to);
      assert.deepEqual(s.json.data, expected(inRange, 'key'), `[${from}, ${to})`);
    }
    // Unix seconds and dates work too; a range with nothing in it is an empty list with zero totals.
    const later = await summary(`?from=${Math.floor(tomorrow / 1000)}&to=2999-01-01`);
    assert.equal(later.status, 200, later.text);
    assert.deepEqual(later.json.data, []);
    assert.equal(later.json.total.requests, 0);
    assert.equal(later.json.total.cost, '0.000000000');
  });

  test('bad parameters are a 400 naming the parameter', async () => {
    const cases: [string, string][] = [
      ['?group_by=week', 'group_by'],
      ['?group_by=day&group_by=model', 'group_by'],
      ['?from=yesterday', 'from'],
      ['?from=2026-02-31', 'from'],
      ['?to=1700000000000000', 'to'],
      ['?from=2026-01-02&to=2026-01-01', 'from'],
      ['?from=2026-01-01&to=2026-01-01', 'from'],
      ['?account_id=a&account_id=b', 'account_id'],
      ['?limit=10', 'limit'],
    ];
    for (const [q, param] of cases) assertError(await summary(q), 400, param);
    // Empty is absent, as on every admin query: the default grouping.
    assert.equal((await summary('?group_by=&from=')).json.group_by, 'day');
    const post = await gw.admin('POST', '/usage/summary');
    assert.equal(post.status, 405);
    const client = await gw.http('GET', '/admin/usage/summary', { key: a1.key });
    assert.equal(client.status, 401, 'a client key is not the admin key');
  });

  test('fuzzed query strings: 200 with a summary or 400 naming a parameter, never anything else', async () => {
    const names = fc.constantFrom('group_by', 'from', 'to', 'account_id', 'key_id', 'cursor', 'group_by[]', '');
    const values = fc.oneof(
      fc.constantFrom('day', 'model', 'key', 'account', '2026-01-01', '2026-01-01T00:00:00Z', '0', '1700000000', '-1', '1e9', 'NaN', '%', '%00', '99999999999999999999'),
      fc.string({ maxLength: 30 }),
      fc.integer().map(String),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(names, values), { maxLength: 5 }), async (pairs) => {
        const q = pairs.map(([k, v]) => `${encodeURIComponent(k)}=${v.includes('%') ? v : encodeURIComponent(v)}`).join('&');
        const r = await summary(`?${q}`);
        assert.ok(r.status === 200 || r.status === 400, `${r.status} for ?${q}: ${r.text}`);
        if (r.status === 200) {
          assert.equal(r.json.object, 'usage_summary');
          assert.ok(Array.isArray(r.json.data));
        } else {
          assert.equal(r.json.error.type, 'invalid_request_error', r.text);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('GET /v1/me', () => {
  test("shows the key's own usage today and over the last 30 days, not its account's other keys", async () => {
    const tomorrow = (Math.floor(Date.now() / DAY) + 1) * DAY;
    for (const key of [a1, a2]) {
      const me = await gw.http('GET', '/v1/me', { key: key.key });
      assert.equal(me.status, 200, me.text);
      const mine = await records(`&key_id=${key.id}`);
      const today = mine.filter((u) => Date.parse(u.created_at) >= tomorrow - DAY);
      assert.deepEqual(me.json.usage.today, { from: new Date(tomorrow - DAY).toISOString(), to: new Date(tomorrow).toISOString(), ...shown(sum(today)) });
      assert.deepEqual(me.json.usage.last_30_days, { from: new Date(tomorrow - 30 * DAY).toISOString(), to: new Date(tomorrow).toISOString(), ...shown(sum(mine)) });
      assert.ok(me.json.usage.last_30_days.requests > 0);
    }
    const none = await gw.http('GET', '/v1/me', { key: fresh.key });
    assert.equal(none.json.usage.last_30_days.requests, 0);
    assert.equal(none.json.usage.today.cost, '0.000000000');
  });

  test('a new request shows at once', async () => {
    const before = (await gw.http('GET', '/v1/me', { key: fresh.key })).json.usage.today;
    assert.equal((await chat(fresh, 'gpt-x', 'one more')).status, 200);
    await backgroundDone(gw);
    const after = (await gw.http('GET', '/v1/me', { key: fresh.key })).json.usage.today;
    assert.equal(after.requests, before.requests + 1);
    const [record] = await records(`&key_id=${fresh.id}`);
    assert.ok(parseUsd(record.cost)! > 0n);
    assert.equal(after.cost, formatUsd(parseUsd(before.cost)! + parseUsd(record.cost)!));
    assert.equal(after.prompt_tokens, before.prompt_tokens + record.prompt_tokens);
  });
});
