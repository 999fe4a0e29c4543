// GET and DELETE /v1/responses/{id} end to end, as users meet them: the `openai` SDK's
// responses.retrieve and responses.delete → the gateway → the native deployment that made the
// response (two fake Responses upstreams), for the key's own account only, free of charge.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { parseUsd } from '../src/billing/money.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';
import { ResponsesUpstream } from './helpers/responses-upstream.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/upstream.js';

type Json = Record<string, unknown>;

/** USD per 1M tokens; in nano-USD per token: input 2000, output 8000. */
const PRICING = { input: 2, output: 8 };
const cost = (input: number, output: number): bigint => BigInt(input) * 2000n + BigInt(output) * 8000n;

let gw: TestGateway;
let chat: FakeUpstream;
let natA: ResponsesUpstream;
let natB: ResponsesUpstream;

before(async () => {
  chat = await startFakeUpstream();
  natA = await ResponsesUpstream.start('sk-upstream-native-a-0123456789');
  natB = await ResponsesUpstream.start('sk-upstream-native-b-0123456789');
  natA.script = natB.script = () => ({ kind: 'answer', text: 'Stored answer.', usage: { input: 7, output: 2 } });
  gw = await startTestGateway({
    providers: {
      chat: { type: 'openai', base_url: chat.url, api_key: 'sk-chat-upstream' },
      nat_a: { type: 'openai', base_url: natA.url, api_key: natA.apiKey, responses: 'native' },
      nat_b: { type: 'openai', base_url: natB.url, api_key: natB.apiKey, responses: 'native' },
    },
    models: {
      tr: { pricing: PRICING, max_output_tokens: 1000, deployments: [{ provider: 'chat', model: 'chat-upstream' }] },
      nat: {
        pricing: PRICING,
        max_output_tokens: 1000,
        deployments: [
          { provider: 'nat_a', model: 'gpt-a' },
          { provider: 'nat_b', model: 'gpt-b' },
        ],
      },
    },
  });
});

after(async () => {
  await gw.close();
  await chat.close();
  await natA.close();
  await natB.close();
});

async function account(opts: { models?: string[]; limits?: Json; accountId?: string } = {}): Promise<{ sdk: OpenAI; key: string; keyId: string; accountId: string }> {
  const k = await gw.createKey({ credit: '10', ...opts });
  return { sdk: gw.client(k.key), key: k.key, keyId: k.id, accountId: k.accountId };
}

async function records(keyId: string): Promise<Json[]> {
  return ((await gw.admin('GET', `/usage?key_id=${keyId}`)).json as { data: Json[] }).data;
}

async function balance(accountId: string): Promise<bigint> {
  const a = (await gw.admin('GET', `/accounts/${accountId}`)).json as { balance: string; held: string };
  assert.equal(a.held, '0.000000000');
  return parseUsd(a.balance)!;
}

/** GETs and DELETEs the upstreams received for this id. */
const reads = (up: ResponsesUpstream, id: string): string[] => up.received.filter((r) => r.path.startsWith(`/v1/responses/${id}`)).map((r) => r.method);

/** A 404 in SPEC §3's shape, as the SDK raises it. */
function notFound(e: unknown): boolean {
  assert.ok(e instanceof OpenAI.NotFoundError, `expected a 404, got ${String(e)}`);
  const err = (e.error ?? {}) as Json;
  assert.equal(err['type'], 'not_found_error');
  assert.equal(err['code'], '404');
  assert.equal(err['traceId'], e.requestID);
  return true;
}

describe('GET and DELETE /v1/responses/{id}', () => {
  test('each response is read and deleted at the deployment that made it (two deployments); the model is the catalogue id; include[] passed on', async () => {
    const a = await account();
    const seen = new Set<string>();
    for (let i = 0; i < 8; i++) {
      const made = await a.sdk.responses.create({ model: 'nat', input: `Remember ${i}` });
      const [origin, other] = natA.stored.has(made.id) ? [natA, natB] : [natB, natA];
      seen.add(origin === natA ? 'a' : 'b');

      const got = await a.sdk.responses.retrieve(made.id, { include: ['reasoning.encrypted_content'] });
      assert.equal(got.id, made.id);
      assert.equal(got.model, 'nat', 'the upstream model name is not shown');
      assert.equal(got.output_text, 'Stored answer.');
      const get = origin.received.at(-1)!;
      assert.equal(get.method, 'GET');
      assert.equal(new URL(get.path, 'http://x').searchParams.get('include[]'), 'reasoning.encrypted_content');
      assert.equal(get.headers.authorization, `Bearer ${origin.apiKey}`, "the deployment's own credential");

      await a.sdk.responses.delete(made.id);
      assert.equal(origin.stored.has(made.id), false);
      assert.deepEqual(reads(origin, made.id), ['GET', 'DELETE']);
      assert.deepEqual(reads(other, made.id), []);
      // Gone at the upstream: its 404 reaches the client.
      await assert.rejects(a.sdk.responses.retrieve(made.id), notFound);
    }
    // With two equal deployments, eight responses all landing on one is 1 in 128.
    assert.equal(seen.size, 2);
  });

  test('the DELETE answer as the upstream sent it', async () => {
    const a = await account();
    const made = await a.sdk.responses.create({ model: 'nat', input: 'Hi' });
    const res = await gw.http('DELETE', `/v1/responses/${made.id}`, { key: a.key });
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, { id: made.id, object: 'response', deleted: true });
    assert.ok(typeof res.headers['x-request-id'] === 'string');
  });

  test('an unknown id is a 404 (NotFoundError) that reaches no upstream', async () => {
    const a = await account();
    const before = natA.received.length + natB.received.length;
    await assert.rejects(a.sdk.responses.retrieve('resp_0123456789abcdef'), notFound);
    await assert.rejects(a.sdk.responses.delete('resp_0123456789abcdef'), notFound);
    assert.equal(natA.received.length + natB.received.length, before);
  });

  test("another account's key gets the same 404 for a response that exists, and cannot delete it", async () => {
    const owner = await account();
    const stranger = await account();
    const made = await owner.sdk.responses.create({ model: 'nat', input: 'Mine' });
    const up = natA.stored.has(made.id) ? natA : natB;
    await assert.rejects(stranger.sdk.responses.retrieve(made.id), notFound);
    await assert.rejects(stranger.sdk.responses.delete(made.id), notFound);
    assert.deepEqual(reads(up, made.id), [], 'nothing went upstream');
    assert.ok(up.stored.has(made.id));
    // Nor may it continue it.
    await assert.rejects(stranger.sdk.responses.create({ model: 'nat', input: 'Theirs?', previous_response_id: made.id }), (e: unknown) => {
      assert.ok(e instanceof OpenAI.BadRequestError);
      assert.equal(e.param, 'previous_response_id');
      return true;
    });
    // Another key of the owner's account reaches it.
    const sibling = await account({ accountId: owner.accountId });
    assert.equal((await sibling.sdk.responses.retrieve(made.id)).id, made.id);
  });

  test('a key of the same account that may not use the model gets a 404, not a 403', async () => {
    const owner = await account();
    const made = await owner.sdk.responses.create({ model: 'nat', input: 'Hi' });
    const narrow = await account({ accountId: owner.accountId, models: ['tr'] });
    await assert.rejects(narrow.sdk.responses.retrieve(made.id), notFound);
    await assert.rejects(narrow.sdk.responses.delete(made.id), notFound);
  });

  test("a translated response's id is a 404: the gateway keeps no state for it", async () => {
    const a = await account();
    chat.setBehavior({ kind: 'ok', text: 'Translated.', usage: { prompt_tokens: 5, completion_tokens: 2 } });
    const made = await a.sdk.responses.create({ model: 'tr', input: 'Hi' });
    assert.equal(made.output_text, 'Translated.');
    await assert.rejects(a.sdk.responses.retrieve(made.id), notFound);
    await assert.rejects(a.sdk.responses.delete(made.id), notFound);
  });

  test('free: nothing held, billed or recorded, and not counted by the rate limit', async () => {
    const a = await account({ limits: { rpm: 1 } });
    const made = await a.sdk.responses.create({ model: 'nat', input: 'Hi' });
    for (let i = 0; i < 3; i++) assert.equal((await a.sdk.responses.retrieve(made.id)).id, made.id);
    await a.sdk.responses.delete(made.id);
    await assert.rejects(a.sdk.responses.retrieve(made.id), notFound);
    const recs = await records(a.keyId);
    assert.equal(recs.length, 1, 'the create alone');
    assert.equal(parseUsd(recs[0]!['cost'] as string), cost(7, 2));
    assert.equal(await balance(a.accountId), 10_000_000_000n - cost(7, 2));
    // The one request a minute went to the create: another create is refused, reads were not counted.
    await assert.rejects(a.sdk.responses.create({ model: 'nat', input: 'Again' }), OpenAI.RateLimitError);
  });

  test('no key is a 401; other methods are a 405 naming GET and DELETE; stream=true is a 400', async () => {
    const a = await account();
    const made = await a.sdk.responses.create({ model: 'nat', input: 'Hi' });
    const anon = await gw.http('GET', `/v1/responses/${made.id}`);
    assert.equal(anon.status, 401);
    const post = await gw.http('POST', `/v1/responses/${made.id}`, { key: a.key, body: {} });
    assert.equal(post.status, 405);
    assert.equal(post.headers['allow'], 'GET, DELETE');
    const streamed = await gw.http('GET', `/v1/responses/${made.id}?stream=true`, { key: a.key });
    assert.equal(streamed.status, 400);
    assert.equal(streamed.json.error.param, 'stream');
  });

  test("the upstream's failures: 5xx is a 502, 429 a 503, and its own 404 a 404 with its message cleaned", async () => {
    const a = await account();
    const made = await a.sdk.responses.create({ model: 'nat', input: 'Hi' });
    const up = natA.stored.has(made.id) ? natA : natB;
    try {
      up.failReads = { status: 500, message: `Backend db-7.internal.example.com failed for ${up.apiKey}` };
      const broken = await gw.http('GET', `/v1/responses/${made.id}`, { key: a.key });
      assert.equal(broken.status, 502);
      assert.equal(broken.json.error.type, 'api_error');
      assert.doesNotMatch(broken.text, /internal\.example|sk-upstream/);
      up.failReads = { status: 429, message: 'Slow down.' };
      const busy = await gw.http('DELETE', `/v1/responses/${made.id}`, { key: a.key });
      assert.equal(busy.status, 503);
      assert.ok(busy.headers['retry-after'] !== undefined);
      up.failReads = { status: 404, message: `Response ${made.id} expired at https://api.internal.example.com/v1 (key ${up.apiKey})` };
      await assert.rejects(a.sdk.responses.retrieve(made.id), (e: unknown) => {
        notFound(e);
        const message = (e as InstanceType<typeof OpenAI.NotFoundError>).message;
        // The upstream's words, without its host and key (the cleaner takes long ids for secrets too).
        assert.match(message, /Response \S+ expired at \[url\]/);
        assert.doesNotMatch(message, /internal\.example|sk-upstream/);
        return true;
      });
    } finally {
      up.failReads = null;
    }
    assert.equal((await a.sdk.responses.retrieve(made.id)).id, made.id);
  });
});
