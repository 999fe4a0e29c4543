// Money across the three client protocols (issue 10): 200 concurrent requests mixing chat
// completions, Anthropic Messages and OpenAI Responses, streamed and not, on one account whose
// balance covers only some of their holds. Each request leaves exactly one usage record, the
// ledger is exact (credit − balance = the sum of the records' costs), nothing stays held, and the
// balance never goes below zero.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { parseUsd } from '../src/billing/money.js';
import { backgroundDone, startTestGateway, type TestGateway } from './helpers/gateway.js';

const units = (usd: string): bigint => parseUsd(usd)!;
const CREDIT = '0.05';

let gw: TestGateway;
before(async () => {
  gw = await startTestGateway({
    providers: { paced: { type: 'demo', latency_ms: 5, tokens_per_second: 2000 } },
    models: { m: { pricing: { input: 2, output: 6 }, max_output_tokens: 2000, deployments: [{ provider: 'paced', model: 'demo' }] } },
  });
});
after(() => gw.close());

type Sent = { path: string; body: Record<string, unknown>; headers?: Record<string, string> };

function request(i: number): Sent {
  const stream = i % 2 === 1;
  const cap = i % 3 === 0 ? {} : { limit: 40 + (i % 7) };
  const text = `Request number ${i}: say something about the number ${i}.`;
  switch (i % 3) {
    case 0:
      return { path: '/v1/chat/completions', body: { model: 'm', stream, messages: [{ role: 'user', content: text }], ...('limit' in cap ? { max_tokens: cap.limit } : {}) } };
    case 1:
      return {
        path: '/v1/messages',
        headers: { 'anthropic-version': '2023-06-01' },
        body: { model: 'm', stream, max_tokens: 'limit' in cap ? cap.limit : 300, messages: [{ role: 'user', content: text }] },
      };
    default:
      return { path: '/v1/responses', body: { model: 'm', stream, input: text, ...('limit' in cap ? { max_output_tokens: cap.limit } : {}) } };
  }
}

test('200 concurrent requests over chat, messages and responses on one account: one record each, an exact ledger, never below zero', async () => {
  const k = await gw.createKey({ credit: CREDIT });
  const sent = Array.from({ length: 200 }, (_, i) => request(i));
  const answers = await Promise.all(sent.map((s) => gw.http('POST', s.path, { key: k.key, body: s.body, headers: s.headers ?? {} })));

  const statuses = new Map<number, number>();
  for (const a of answers) statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
  // Only answers and refusals for the balance: nothing else may happen to a valid request.
  assert.deepEqual([...statuses.keys()].filter((s) => s !== 200 && s !== 402), [], `statuses ${JSON.stringify([...statuses])}`);
  assert.ok((statuses.get(200) ?? 0) > 0, 'some were served');
  assert.ok((statuses.get(402) ?? 0) > 0, 'the balance did not cover every hold at once: some were refused');
  for (const [i, a] of answers.entries()) {
    if (a.status !== 402) continue;
    // Each protocol refuses in its own shape.
    if (sent[i]!.path === '/v1/messages') assert.equal(a.json.error.type, 'billing_error');
    else assert.equal(a.json.error.type, 'insufficient_balance');
  }

  // One record per request, once every settlement has landed.
  await backgroundDone(gw);
  const records: Record<string, string | number>[] = (await gw.admin('GET', `/usage?key_id=${k.id}&limit=1000`)).json.data;
  const account: Record<string, string> = (await gw.admin('GET', `/accounts/${k.accountId}`)).json;
  assert.equal(records.length, 200);
  assert.equal(new Set(records.map((r) => r['trace_id'])).size, 200);
  assert.equal(account['held'], '0.000000000');
  const spent = records.reduce((sum, r) => sum + units(String(r['cost'])), 0n);
  const balance = units(account['balance']!);
  assert.ok(balance >= 0n, `balance ${account['balance']}`);
  assert.equal(units(CREDIT) - balance, spent, 'credit − balance = the sum of the records');
  // The served ones cost something, the refused nothing; each protocol served some.
  for (const r of records) assert.equal(units(String(r['cost'])) > 0n, r['status'] === 200);
  const servedPaths = new Set(answers.flatMap((a, i) => (a.status === 200 ? [sent[i]!.path] : [])));
  assert.equal(servedPaths.size, 3, `served on ${[...servedPaths].join(', ')}`);
});
