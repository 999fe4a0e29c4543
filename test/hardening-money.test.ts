// Money under a hostile or broken upstream: a request is never charged more than its hold,
// whatever usage the upstream claims and however long it streams; a client always sees what it
// was billed; and a response the client received whole has been billed before its last byte left.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { countTokens } from 'gpt-tokenizer';
import OpenAI from 'openai';
import { parseUsd } from '../src/billing/money.js';
import { ADMIN_KEY, startTestGateway, type TestGateway } from './helpers/gateway.js';
import { exited, freePort, spawnGateway } from './helpers/process.js';
import { startFakeUpstream, type FakeUpstream, type UpstreamUsage } from './helpers/upstream.js';

const units = (usd: string): bigint => parseUsd(usd)!;
const CREDIT = '1';
/** Prices of the `up` model, USD per 1M tokens: input 1, output 2. */
const PRICE = { input: 1, output: 2 };

/** The most a request of `prompt` estimated tokens and `maxTokens` output can cost (SPEC §4), in nano-USD. */
function holdOf(prompt: number, maxTokens: number): bigint {
  const ceilDiv = (a: bigint, b: bigint) => (a + b - 1n) / b;
  const p = BigInt(prompt + Math.ceil(prompt / 10));
  const nano = 1_000_000_000n;
  return ceilDiv(p * BigInt(PRICE.input) * nano, 1_000_000n) + ceilDiv(BigInt(maxTokens) * BigInt(PRICE.output) * nano, 1_000_000n);
}

async function usageOf(gw: TestGateway, accountId: string): Promise<Record<string, any>[]> {
  return (await gw.admin('GET', `/usage?account_id=${accountId}&limit=1000`)).json.data;
}

async function balanceOf(gw: TestGateway, accountId: string): Promise<Record<string, string>> {
  return (await gw.admin('GET', `/accounts/${accountId}`)).json;
}

/** Counts that no upstream may bill by: absurd, negative, fractional, not a number. */
const ABSURD: [string, UpstreamUsage][] = [
  ['10^15 completion tokens', { prompt_tokens: 10, completion_tokens: 1e15 }],
  ['1e300 completion tokens', { prompt_tokens: 10, completion_tokens: 1e300 }],
  ['1e300 prompt tokens', { prompt_tokens: 1e300, completion_tokens: 5 }],
  ['negative completion tokens', { prompt_tokens: 10, completion_tokens: -5 }],
  ['fractional completion tokens', { prompt_tokens: 10, completion_tokens: 3.5 }],
  ['completion tokens as a string', { prompt_tokens: 10, completion_tokens: '100' as unknown as number }],
  ['cached tokens beyond the prompt', { prompt_tokens: 10, completion_tokens: 5, cached_tokens: 1e9 }],
];

describe('money: a request is never charged more than its hold', () => {
  let gw: TestGateway;
  let up: FakeUpstream;
  before(async () => {
    up = await startFakeUpstream();
    gw = await startTestGateway({
      providers: { up: { type: 'openai', base_url: up.url, api_key: 'sk-up', timeout_ms: 5000, first_byte_timeout_ms: 5000, idle_timeout_ms: 5000 } },
      models: { up: { pricing: PRICE, max_output_tokens: 4096, deployments: [{ provider: 'up', model: 'u' }] } },
    });
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  for (const [name, usage] of ABSURD) {
    test(`non-streamed, upstream reports ${name}: billed the delivered text, at most the hold, and the client sees that`, async () => {
      const k = await gw.createKey({ credit: CREDIT, limits: { tpm: 100_000 } });
      up.setBehavior({ kind: 'ok', text: 'Four words of reply.', usage });
      const res = await gw.client(k.key).chat.completions.create({ model: 'up', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] });
      const [record] = await usageOf(gw, k.accountId);
      const cost = units(record!['cost']);
      assert.ok(cost > 0n && cost <= holdOf(record!['prompt_tokens'], 100), `charged ${cost}, within the hold`);
      assert.equal(record!['completion_tokens'], countTokens('Four words of reply.'), 'the delivered text, counted');
      assert.equal(res.usage?.completion_tokens, record!['completion_tokens'], 'the client sees what was billed');
      assert.equal(res.usage?.prompt_tokens, record!['prompt_tokens']);
      assert.equal((res.usage as unknown as { cost: number }).cost, Number(cost) / 1e9);
      assert.equal(units((await balanceOf(gw, k.accountId))['balance']!), units(CREDIT) - cost);
      // Limits count what was charged: the key is not locked out by a claim of 10^15 tokens.
      up.setBehavior({ kind: 'ok' });
      const again = await gw.http('POST', '/v1/chat/completions', { key: k.key, body: { model: 'up', max_tokens: 100, messages: [{ role: 'user', content: 'again' }] } });
      assert.equal(again.status, 200, again.text);
    });

    test(`streamed, upstream reports ${name}: billed the delivered text, at most the hold, usage chunk shows it`, async () => {
      const k = await gw.createKey({ credit: CREDIT, limits: { tpm: 100_000 } });
      up.setBehavior({ kind: 'stream', chunks: ['Four', ' words', ' of', ' reply.'], usage });
      const stream = await gw.client(k.key).chat.completions.create({
        model: 'up', max_tokens: 100, stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'hi' }],
      });
      let shown: Record<string, number> | null = null;
      for await (const chunk of stream) if (chunk.usage) shown = chunk.usage as unknown as Record<string, number>;
      const [record] = await usageOf(gw, k.accountId);
      const cost = units(record!['cost']);
      assert.ok(cost > 0n && cost <= holdOf(record!['prompt_tokens'], 100));
      assert.equal(record!['completion_tokens'], countTokens('Four words of reply.'));
      assert.ok(shown !== null, 'a usage chunk');
      assert.equal(shown['completion_tokens'], record!['completion_tokens']);
      assert.equal(shown['cost'], Number(cost) / 1e9);
      up.setBehavior({ kind: 'ok' });
      const again = await gw.http('POST', '/v1/chat/completions', { key: k.key, body: { model: 'up', max_tokens: 100, messages: [{ role: 'user', content: 'again' }] } });
      assert.equal(again.status, 200, again.text);
    });
  }

  test('believable usage is billed as reported, with the upstream\'s own details shown', async () => {
    const k = await gw.createKey({ credit: CREDIT });
    up.setBehavior({ kind: 'ok', usage: { prompt_tokens: 30, completion_tokens: 40, cached_tokens: 10 } });
    const res = await gw.client(k.key).chat.completions.create({ model: 'up', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] });
    const [record] = await usageOf(gw, k.accountId);
    assert.equal(record!['prompt_tokens'], 30);
    assert.equal(record!['completion_tokens'], 40);
    assert.equal(record!['cached_tokens'], 10);
    assert.equal(res.usage?.prompt_tokens_details?.cached_tokens, 10);
  });

  test('an upstream that ignores max_tokens and streams on is cut at the cap with finish_reason "length", billed at most the hold', async () => {
    const k = await gw.createKey({ credit: CREDIT });
    // Paced, so that the upstream is still sending when the gateway stops reading it.
    up.setBehavior({ kind: 'stream', chunks: Array.from({ length: 20_000 }, () => ' word'), usage: null, chunkDelayMs: 1 });
    const stream = await gw.client(k.key).chat.completions.create({
      model: 'up', max_tokens: 50, stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'go on forever' }],
    });
    let text = '';
    let finish: string | null = null;
    let shown: Record<string, number> | null = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) shown = chunk.usage as unknown as Record<string, number>;
    }
    const delivered = countTokens(text);
    assert.ok(delivered >= 50 && delivered <= 66, `relayed ${delivered} tokens: the cap of 50 with its documented allowance (10 %, at least 16)`);
    assert.equal(finish, 'length');
    await up.waitForClientAbort();
    const [record] = await usageOf(gw, k.accountId);
    assert.equal(record!['status'], 200);
    assert.equal(record!['completion_tokens'], delivered);
    assert.ok(units(record!['cost']) <= holdOf(record!['prompt_tokens'], 50));
    assert.equal(shown?.['completion_tokens'], delivered);
  });

  test('without max_tokens the cap is what the balance affords: the stream stops there and the balance never goes below zero', async () => {
    // 0.0001 USD affords 50 output tokens at 2 USD per 1M, after the prompt.
    const k = await gw.createKey({ credit: '0.0001' });
    up.setBehavior({ kind: 'stream', chunks: Array.from({ length: 20_000 }, () => ' word'), usage: { prompt_tokens: 10, completion_tokens: 20_000 } });
    const res = await gw.http('POST', '/v1/chat/completions', { key: k.key, body: { model: 'up', stream: true, messages: [{ role: 'user', content: 'go' }] } });
    assert.equal(res.status, 200);
    assert.ok(res.text.includes('"finish_reason":"length"'));
    assert.ok(res.text.endsWith('data: [DONE]\n\n'));
    const account = await balanceOf(gw, k.accountId);
    assert.equal(account['held'], '0.000000000');
    const [record] = await usageOf(gw, k.accountId);
    assert.ok(units(account['balance']!) >= 0n);
    assert.equal(units(account['balance']!), units('0.0001') - units(record!['cost']));
    const sent = up.requests.at(-1)!.body as Record<string, number>;
    assert.ok(sent['max_tokens']! > 0 && record!['completion_tokens'] <= sent['max_tokens']! + Math.max(16, Math.ceil(sent['max_tokens']! / 10)));
  });

  test('tool-call arguments count toward the cap too', async () => {
    const k = await gw.createKey({ credit: CREDIT });
    up.setBehavior({
      kind: 'stream',
      usage: null,
      deltas: [
        { role: 'assistant', tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'f', arguments: '' } }] },
        ...Array.from({ length: 20_000 }, () => ({ tool_calls: [{ index: 0, function: { arguments: ' "x",' } }] })),
      ],
    });
    const res = await gw.http('POST', '/v1/chat/completions', { key: k.key, body: { model: 'up', stream: true, max_tokens: 40, messages: [{ role: 'user', content: 'call' }] } });
    assert.equal(res.status, 200);
    assert.ok(res.text.includes('"finish_reason":"length"'));
    const [record] = await usageOf(gw, k.accountId);
    assert.ok(record!['completion_tokens'] <= 40 + 16);
    assert.ok(units(record!['cost']) <= holdOf(record!['prompt_tokens'], 40));
  });

  test('an upstream that sends no usage: the client is shown what was billed, streamed and not', async () => {
    const k = await gw.createKey({ credit: CREDIT });
    up.setBehavior({
      kind: 'status',
      status: 200,
      body: { id: 'chatcmpl-x', object: 'chat.completion', created: 1, model: 'u', choices: [{ index: 0, message: { role: 'assistant', content: 'No usage here.' }, finish_reason: 'stop' }] },
    });
    const res = await gw.client(k.key).chat.completions.create({ model: 'up', messages: [{ role: 'user', content: 'hi' }] });
    const [record] = await usageOf(gw, k.accountId);
    assert.equal(res.usage?.completion_tokens, countTokens('No usage here.'));
    assert.equal(res.usage?.prompt_tokens, record!['prompt_tokens']);
    assert.equal((res.usage as unknown as { cost: number }).cost, Number(units(record!['cost'])) / 1e9);

    up.setBehavior({ kind: 'stream', chunks: ['No', ' usage', ' here.'], usage: null });
    const stream = await gw.client(k.key).chat.completions.create({
      model: 'up', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'hi' }],
    });
    let shown: Record<string, number> | null = null;
    for await (const chunk of stream) if (chunk.usage) shown = chunk.usage as unknown as Record<string, number>;
    const records = await usageOf(gw, k.accountId);
    assert.equal(records.length, 2);
    assert.equal(shown?.['completion_tokens'], countTokens('No usage here.'));
    assert.equal(shown?.['cost'], Number(units(records[0]!['cost'])) / 1e9);
  });

  test('embeddings: usage beyond the hold is not billed; the input counted is', async () => {
    const k = await gw.createKey({ credit: CREDIT });
    up.setBehavior({
      kind: 'status',
      status: 200,
      body: { object: 'list', data: [{ object: 'embedding', index: 0, embedding: [0.1] }], model: 'u', usage: { prompt_tokens: 1e15, total_tokens: 1e15 } },
    });
    const res = await gw.client(k.key).embeddings.create({ model: 'up', input: 'three words here', encoding_format: 'float' });
    const [record] = await usageOf(gw, k.accountId);
    assert.equal(record!['prompt_tokens'], countTokens('three words here'));
    assert.equal(res.usage.prompt_tokens, record!['prompt_tokens']);
    assert.ok(units(record!['cost']) <= holdOf(countTokens('three words here'), 0));
  });
});

describe('money: the settlement journal stays small', () => {
  test('hundreds of answered requests leave a journal emptied as its settlements commit, and none after close', async () => {
    const gw = await startTestGateway();
    const path = gw.database.slice('sqlite:'.length);
    const journals = () => readdirSync(dirname(path)).filter((n) => n.startsWith(basename(path) + '-settle-') && n.endsWith('.jnl'));
    try {
      const { key } = await gw.createKey();
      for (let i = 0; i < 400; i++) {
        const r = await gw.http('POST', '/v1/chat/completions', { key, body: { model: 'demo', messages: [{ role: 'user', content: `request ${i}` }] } });
        assert.equal(r.status, 200);
      }
      const files = journals();
      assert.equal(files.length, 1, 'one journal, this process\'s');
      const size = statSync(join(dirname(path), files[0]!)).size;
      assert.ok(size < 128 * 1024, `journal of ${size} bytes after 400 requests of about 600 bytes each`);
    } finally {
      await gw.running.close();
    }
    assert.deepEqual(journals(), [], 'removed on close: everything in it committed');
    rmSync(dirname(path), { recursive: true, force: true });
  });
});

describe('money: a response the client received whole is billed even if the process dies the next moment', () => {
  let up: FakeUpstream;
  before(async () => {
    up = await startFakeUpstream();
  });
  after(async () => {
    await up.close();
  });

  /** A config file for a gateway process in a fresh directory, with one model `up` on the fake upstream. */
  function processConfig(prefix: string): { dir: string; config: string; db: string } {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    const config = join(dir, 'token360.yaml');
    const db = join(dir, 'db.sqlite');
    const yaml = [
      `database: sqlite:${db}`,
      `admin_key: ${ADMIN_KEY}`,
      'log_level: info',
      'providers:',
      `  up: { type: openai, base_url: "${up.url}", api_key: sk-up }`,
      'models:',
      '  up: { pricing: { input: 1, output: 2 }, deployments: [{ provider: up, model: u }] }',
    ];
    writeFileSync(config, yaml.join('\n'));
    return { dir, config, db };
  }

  for (const stream of [true, false]) {
    test(`${stream ? 'a stream' : 'a completion'} read to its end, then SIGKILL while the database was busy: billed after the restart`, async () => {
      const { dir, config, db } = processConfig('token360-durable-');
      const port = await freePort();
      const base = `http://127.0.0.1:${port}`;
      const adminCall = (path: string, body?: unknown) =>
        fetch(base + path, { method: body === undefined ? 'GET' : 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) }).then((r) => r.json() as Promise<any>);
      let child = await spawnGateway(config, port);
      let lock: Database.Database | null = null;
      try {
        const acct = await adminCall('/admin/accounts', { name: 'd', credit: '1' });
        const key = (await adminCall('/admin/keys', { account_id: acct.id })).key as string;
        // The upstream answers only once the test holds the database's write lock, as a backup or the CLI would.
        let release!: () => void;
        const gate = new Promise<void>((r) => (release = r));
        up.setBehavior(() => ({ kind: 'stream', chunks: ['Paid', ' for', ' in', ' full.'], firstByteDelayMs: 0, gate }));
        if (!stream) up.setBehavior(() => ({ kind: 'ok', text: 'Paid for in full.', gate }));
        const client = new OpenAI({ apiKey: key, baseURL: `${base}/v1`, maxRetries: 0 });
        const seen = { traceId: '', whole: false };
        const done = (async () => {
          if (stream) {
            const s = await client.chat.completions.create({ model: 'up', stream: true, messages: [{ role: 'user', content: 'hi' }] }).withResponse();
            seen.traceId = s.response.headers.get('x-request-id')!;
            for await (const _ of s.data) void _;
          } else {
            const r = await client.chat.completions.create({ model: 'up', messages: [{ role: 'user', content: 'hi' }] }).withResponse();
            seen.traceId = r.response.headers.get('x-request-id')!;
          }
          seen.whole = true;
          // The client has everything: the process dies without warning.
          child.kill('SIGKILL');
        })();
        // Once the hold is in the database, another connection takes the write lock for a while.
        const probe = new Database(db, { readonly: true });
        for (let i = 0; i < 500 && (probe.prepare('SELECT COUNT(*) AS n FROM holds').get() as { n: number }).n < 1; i++) await new Promise((r) => setTimeout(r, 10));
        probe.close();
        lock = new Database(db);
        lock.exec('BEGIN IMMEDIATE');
        release();
        // Hold the lock for a while; a gateway that sends the end before its settlement is durable has already sent it.
        await new Promise((r) => setTimeout(r, 1500));
        lock.exec('COMMIT');
        lock.close();
        lock = null;
        await done;
        assert.ok(seen.whole);
        await exited(child);

        child = await spawnGateway(config, port);
        const usage = (await adminCall(`/admin/usage?account_id=${acct.id}`)).data as Record<string, any>[];
        assert.equal(usage.length, 1);
        assert.equal(usage[0]!['trace_id'], seen.traceId);
        assert.equal(usage[0]!['status'], 200, 'billed as a completed request, not recorded as interrupted');
        assert.ok(units(usage[0]!['cost']) > 0n);
        const account = await adminCall(`/admin/accounts/${acct.id}`);
        assert.equal(units(account.balance), units('1') - units(usage[0]!['cost']));
      } finally {
        if (lock !== null) lock.close();
        child.kill('SIGKILL');
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  test('untrusted usage leaves a warning with the traceId in the log', async () => {
    const { dir, config } = processConfig('token360-warn-');
    const port = await freePort();
    const child = await spawnGateway(config, port);
    let log = '';
    child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
    try {
      const base = `http://127.0.0.1:${port}`;
      const post = (path: string, body: unknown, key = ADMIN_KEY) =>
        fetch(base + path, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const acct = (await (await post('/admin/accounts', { name: 'w', credit: '1' })).json()) as { id: string };
      const key = ((await (await post('/admin/keys', { account_id: acct.id })).json()) as { key: string }).key;
      up.setBehavior({ kind: 'ok', usage: { prompt_tokens: 10, completion_tokens: 1e15 } });
      const res = await post('/v1/chat/completions', { model: 'up', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }, key);
      assert.equal(res.status, 200);
      const traceId = res.headers.get('x-request-id')!;
      for (let i = 0; i < 200 && !log.includes(traceId); i++) await new Promise((r) => setTimeout(r, 10));
      const line = log.split('\n').find((l) => l.includes(traceId));
      assert.ok(line !== undefined, 'a log line names the request');
      const entry = JSON.parse(line) as Record<string, unknown>;
      assert.equal(entry['level'], 40, 'a warning');
      assert.match(String(entry['msg']), /usage/);
      assert.ok(!line.includes('sk-up') && !line.includes(key), 'no secret in the line');
    } finally {
      child.kill('SIGKILL');
      await exited(child);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
