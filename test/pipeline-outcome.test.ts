// The request pipeline's outcome seam (issue 9): every request that got past authentication ends
// in exactly one outcome, handed to every sink built at start-up, whatever path ended it; an
// extra sink (as metrics will be) sees the same outcome billing recorded, and the response to
// a non-streamed request waits for the sinks that return a promise.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, before, test } from 'node:test';
import type { Outcome } from '../src/gateway/outcome.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/upstream.js';

let gw: TestGateway;
let up: FakeUpstream;
const seen: Outcome[] = [];
/** While set, the extra sink holds the responses of this key until the promise resolves. */
let gate: { keyId: string; until: Promise<void>; reached: () => void } | null = null;

before(async () => {
  up = await startFakeUpstream();
  gw = await startTestGateway({
    providers: { up: { type: 'openai', base_url: up.url, api_key: 'sk-upstream-secret' } },
    models: { m: { pricing: { input: 1, output: 2 }, deployments: [{ provider: 'up', model: 'up-model' }] } },
  });
  gw.running.gateway.sinks.push((o) => {
    seen.push(o);
    if (gate === null || o.key.id !== gate.keyId) return null;
    gate.reached();
    return gate.until;
  });
});
after(async () => {
  await gw.close();
  await up.close();
});

async function recordsOf(keyId: string, count: number): Promise<Record<string, unknown>[]> {
  const deadline = performance.now() + 3000;
  for (;;) {
    const r = await gw.admin('GET', `/usage?key_id=${keyId}`);
    const data = r.json.data as Record<string, unknown>[];
    if (data.length >= count || performance.now() > deadline) return data;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

test('one outcome per request, for a success, a refusal, an upstream failure and a stream, matching the usage records', async () => {
  const k = await gw.createKey({ credit: '5' });
  const client = gw.client(k.key, { maxRetries: 0 });
  const mine = (): Outcome[] => seen.filter((o) => o.key.id === k.id);

  up.setBehavior({ kind: 'ok', usage: { prompt_tokens: 11, completion_tokens: 5 } });
  await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }] });
  const bad = await gw.http('POST', '/v1/chat/completions', { key: k.key, body: { model: 'm', messages: 'nope' } });
  assert.equal(bad.status, 400);
  up.setBehavior({ kind: 'status', status: 500 });
  const failed = await gw.http('POST', '/v1/chat/completions', { key: k.key, body: { model: 'm', messages: [{ role: 'user', content: 'hi' }] } });
  assert.equal(failed.status, 502);
  up.setBehavior({ kind: 'stream', usage: { prompt_tokens: 9, completion_tokens: 4 } });
  const stream = await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }], stream: true });
  for await (const _ of stream) void _;

  const records = await recordsOf(k.id, 4);
  assert.equal(records.length, 4);
  const outcomes = mine();
  assert.equal(outcomes.length, 4, 'one outcome per request');
  assert.deepEqual(
    outcomes.map((o) => [o.status, o.errorType, o.stream, o.usage.promptTokens, o.usage.completionTokens]),
    [
      [200, null, false, 11, 5],
      [400, 'invalid_request_error', false, 0, 0],
      [502, 'api_error', false, 0, 0],
      [200, null, true, 9, 4],
    ],
  );
  // The extra sink saw what billing recorded: same trace ids, statuses and costs.
  const byTrace = new Map(records.map((r) => [r['trace_id'] ?? r['id'], r]));
  for (const o of outcomes) {
    const r = byTrace.get(o.traceId);
    assert.ok(r !== undefined, `a usage record for ${o.traceId}`);
    assert.equal(r['status'], o.status);
  }
  assert.equal(outcomes[0]!.provider, 'up');
  assert.equal(outcomes[0]!.upstreamModel, 'up-model');
  assert.ok(outcomes[0]!.cost > 0n && outcomes[1]!.cost === 0n && outcomes[2]!.cost === 0n);
});

test('a non-streamed answer leaves only once every sink that returned a promise has resolved', async () => {
  const held = await gw.createKey({ credit: '5' });
  const free = await gw.createKey({ credit: '5' });
  up.setBehavior({ kind: 'ok' });
  let open!: () => void;
  let reached!: () => void;
  const atSink = new Promise<void>((resolve) => (reached = resolve));
  gate = { keyId: held.id, until: new Promise<void>((resolve) => (open = resolve)), reached };
  const order: string[] = [];
  const body = { model: 'm', messages: [{ role: 'user', content: 'hi' }] };
  const first = gw.http('POST', '/v1/chat/completions', { key: held.key, body }).then((r) => (order.push('held'), r));
  await atSink;
  // A request sent after the held one's outcome was taken, and not held, is answered first.
  const second = await gw.http('POST', '/v1/chat/completions', { key: free.key, body });
  order.push('free');
  assert.equal(second.status, 200);
  assert.deepEqual(order, ['free']);
  gate = null;
  open();
  assert.equal((await first).status, 200);
  assert.deepEqual(order, ['free', 'held']);
});
