import assert from 'node:assert/strict';
import { test } from 'node:test';
import { request } from 'undici';
import { ADMIN_KEY, backgroundDone, startTestGateway } from './helpers/gateway.js';
import { startFakeUpstream } from './helpers/upstream.js';
import { configSchema } from '../src/config/schema.js';

/** `name{labels} value` lines of the Prometheus text, labels parsed. */
function samples(text: string, name: string): { labels: Record<string, string>; value: number }[] {
  const out: { labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null || m[1] !== name) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ labels, value: Number(m[3]) });
  }
  return out;
}

function sum(text: string, name: string, match: Record<string, string>): number {
  return samples(text, name)
    .filter((s) => Object.entries(match).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}

test('metrics: a known mix of requests is counted by value as the usage records say, with bounded labels; /metrics needs the admin key, metrics.port none', async () => {
  const good = await startFakeUpstream({ behavior: { kind: 'ok', usage: { prompt_tokens: 30, completion_tokens: 12, cached_tokens: 10 } } });
  const bad = await startFakeUpstream({ behavior: { kind: 'status', status: 500 } });
  // Two chunks, then the stream stays open: only the client going away ends it.
  const hanging = await startFakeUpstream({ behavior: { kind: 'stream', chunks: ['Hello', ' there', ' and more'], hangAfter: 2 } });
  const gw = await startTestGateway({
    metrics: { port: 0 },
    providers: {
      good: { type: 'openai', base_url: good.url, api_key: 'sk-upstream' },
      bad: { type: 'openai', base_url: bad.url, api_key: 'sk-upstream' },
      hanging: { type: 'openai', base_url: hanging.url, api_key: 'sk-upstream' },
    },
    models: {
      up: { pricing: { input: 3, output: 6, cached_input: 1 }, deployments: [{ provider: 'good', model: 'u' }] },
      // One failure opens this deployment's circuit.
      broken: { pricing: { input: 1, output: 2 }, routing: { attempts: 1, circuit: { failures: 1 } }, deployments: [{ provider: 'bad', model: 'b' }] },
      // Fails over: the first deployment answers 500, the second serves.
      flaky: { pricing: { input: 1, output: 2 }, deployments: [{ provider: 'bad', model: 'fb' }, { provider: 'good', model: 'fg', priority: 1 }] },
      cut: { pricing: { input: 1, output: 2 }, deployments: [{ provider: 'hanging', model: 'h' }] },
    },
  });
  try {
    const rich = await gw.createKey({ limits: { rpm: 100 } });
    const limited = await gw.createKey({ limits: { rpm: 1 } });
    const poor = await gw.createKey({ credit: '0' });
    const chat = (key: string, model: string) => gw.http('POST', '/v1/chat/completions', { key, body: { model, messages: [{ role: 'user', content: 'hello there' }] } });
    assert.equal((await chat(rich.key, 'demo')).status, 200);
    assert.equal((await chat(rich.key, 'demo')).status, 200);
    assert.equal((await chat(rich.key, 'up')).status, 200);
    assert.equal((await chat(rich.key, 'no-such-model-xyz')).status, 404);
    assert.equal((await chat(rich.key, 'broken')).status, 502);
    assert.equal((await chat(limited.key, 'demo')).status, 200);
    assert.equal((await chat(limited.key, 'demo')).status, 429);
    assert.equal((await chat(poor.key, 'demo')).status, 402);
    const flaky = await chat(rich.key, 'flaky');
    assert.equal(flaky.status, 200);
    assert.equal(flaky.headers['x-token360-attempts'], '2');

    // A stream the client cuts after its first chunk.
    const cutter = await gw.createKey();
    const ac = new AbortController();
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${cutter.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'cut', stream: true, messages: [{ role: 'user', content: 'hello there' }] }),
      signal: ac.signal,
    });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    assert.ok((await reader.read()).value!.length > 0);
    ac.abort();
    await reader.read().catch(() => undefined);

    const records: Record<string, any>[] = [];
    // Records of refusals are written in the background: wait for those writes.
    await backgroundDone(gw);
    for (const k of [rich, limited, poor, cutter]) {
      const want = k === rich ? 6 : k === limited ? 2 : 1;
      // The cut stream is recorded once the gateway has seen the client go: poll with a deadline.
      let data: Record<string, any>[] = [];
      for (const deadline = Date.now() + 5000; data.length < want && Date.now() < deadline; await backgroundDone(gw)) {
        data = (await gw.admin('GET', `/usage?key_id=${k.id}`)).json.data;
      }
      assert.equal(data.length, want);
      records.push(...data);
    }
    assert.equal(records.find((r) => r['model'] === 'cut')?.['status'], 499);

    assert.equal((await gw.http('GET', '/metrics')).status, 401);
    assert.equal((await gw.http('GET', '/metrics', { key: rich.key })).status, 401);
    const scraped = await gw.http('GET', '/metrics', { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    assert.equal(scraped.status, 200);
    assert.match(scraped.headers['content-type']!, /^text\/plain/);
    const text = scraped.text;

    const known = new Set(['demo', 'up', 'broken', 'flaky', 'cut']);
    const label = (m: string) => (known.has(m) ? m : 'unknown');
    for (const r of records) {
      const expected = records.filter((x) => label(x['model']) === label(r['model']) && x['status'] === r['status'] && (x['error_type'] ?? '') === (r['error_type'] ?? '')).length;
      assert.equal(sum(text, 'token360_requests_total', { route: 'chat', model: label(r['model']), status: String(r['status']), error_type: r['error_type'] ?? '' }), expected, `${r['model']} ${r['status']}`);
    }
    assert.equal(sum(text, 'token360_requests_total', {}), records.length);
    assert.equal(sum(text, 'token360_requests_total', { model: 'unknown' }), 1);
    for (const status of ['429', '402', '502', '404', '499']) assert.equal(sum(text, 'token360_requests_total', { status }), 1, status);
    assert.equal(sum(text, 'token360_requests_total', { status: '499', error_type: 'client_closed', model: 'cut' }), 1);
    assert.equal(sum(text, 'token360_requests_total', { status: '200' }), 5);
    for (const m of ['demo', 'up', 'flaky', 'cut']) {
      const mine = records.filter((r) => r['model'] === m);
      const tot = (f: string) => mine.reduce((a, r) => a + (r[f] as number), 0);
      assert.equal(sum(text, 'token360_tokens_total', { model: m, type: 'input' }), tot('prompt_tokens') - tot('cached_tokens') - tot('cache_write_tokens'));
      assert.equal(sum(text, 'token360_tokens_total', { model: m, type: 'output' }), tot('completion_tokens'));
      assert.equal(sum(text, 'token360_tokens_total', { model: m, type: 'cached_input' }), tot('cached_tokens'));
      const cost = mine.reduce((a, r) => a + Number(r['cost']), 0);
      assert.ok(cost > 0);
      assert.ok(Math.abs(sum(text, 'token360_cost_usd_total', { model: m }) - cost) < 1e-9, `cost of ${m}`);
    }
    assert.equal(sum(text, 'token360_tokens_total', { model: 'up', type: 'cached_input' }), 10);
    assert.equal(sum(text, 'token360_requests_in_flight', {}), 0);
    assert.equal(sum(text, 'token360_holds_outstanding', {}), 0, 'every hold placed was given back');
    // Refusals by limit: the rpm 429 and the 402; the unknown model and the upstream failure are no limit's doing.
    assert.equal(sum(text, 'token360_limit_refusals_total', { limit: 'rpm' }), 1);
    assert.equal(sum(text, 'token360_limit_refusals_total', { limit: 'balance' }), 1);
    assert.equal(sum(text, 'token360_limit_refusals_total', {}), 2);
    // Upstream attempts by deployment and outcome: one per upstream request, the failover's two included.
    assert.equal(sum(text, 'token360_upstream_attempts_total', { deployment: 'bad/b', outcome: 'http_500' }), 1);
    assert.equal(sum(text, 'token360_upstream_attempts_total', { deployment: 'bad/fb', outcome: 'http_500' }), 1);
    assert.equal(sum(text, 'token360_upstream_attempts_total', { deployment: 'good/fg', outcome: 'ok' }), 1);
    assert.equal(sum(text, 'token360_upstream_attempts_total', { deployment: 'good/u', outcome: 'ok' }), 1);
    assert.equal(sum(text, 'token360_upstream_attempts_total', { deployment: 'hanging/h', outcome: 'ok' }), 1, 'the stream that the client later cut had answered');
    const attempts = records.reduce((a, r) => a + (r['attempts'] as number), 0);
    assert.equal(sum(text, 'token360_upstream_attempts_total', {}), attempts, 'as many attempts as the usage records say');
    // Circuits: the deployment whose one failure opened it is 2 (open); the others 0 (closed).
    assert.equal(sum(text, 'token360_circuit_state', { deployment: 'bad/b' }), 2);
    assert.equal(sum(text, 'token360_circuit_state', { deployment: 'good/u' }), 0);
    assert.equal(sum(text, 'token360_circuit_state', { deployment: 'bad/fb' }), 0);
    assert.ok(sum(text, 'gen_ai_server_request_duration_seconds_count', { gen_ai_request_model: 'up', gen_ai_provider_name: 'good' }) === 1);
    assert.ok(sum(text, 'token360_gateway_overhead_seconds_count', { route: 'chat' }) >= 4);
    assert.ok(samples(text, 'process_cpu_user_seconds_total').length === 1, 'default process metrics');

    // Bounded labels: nothing that names a key or a request.
    const secrets = records.flatMap((r) => [r['key_id'], r['trace_id']]).concat([rich, limited, poor].flatMap((k) => [k.key, k.key.slice(0, 12)]));
    for (const line of text.split('\n').filter((l) => l.includes('{'))) {
      for (const s of secrets) assert.ok(!line.includes(s), `label leaks ${s}: ${line}`);
    }
    assert.ok(!text.includes('no-such-model-xyz'), "the client's unknown model name is not a label");

    // metrics.port: the same text with no key, on 127.0.0.1.
    const port = gw.running.metricsPort;
    assert.ok(port !== null && port > 0);
    const plain = await request(`http://127.0.0.1:${port}/metrics`);
    assert.equal(plain.statusCode, 200);
    const body = await plain.body.text();
    assert.equal(sum(body, 'token360_requests_total', {}), records.length);
  } finally {
    await gw.close();
    await good.close();
    await bad.close();
    await hanging.close();
  }
});

test('metrics.enabled: false: no /metrics (404 in our shape, admin key or not), requests served and recorded as before; metrics.port without metrics is a config error', async () => {
  const gw = await startTestGateway({ metrics: { enabled: false } });
  try {
    const k = await gw.createKey();
    const r = await gw.http('POST', '/v1/chat/completions', { key: k.key, body: { model: 'demo', messages: [{ role: 'user', content: 'hi' }] } });
    assert.equal(r.status, 200);
    const m = await gw.http('GET', '/metrics', { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    assert.equal(m.status, 404);
    assert.equal((m.json as { error: { type: string } }).error.type, 'not_found_error');
    assert.equal(gw.running.metricsPort, null);
    await backgroundDone(gw);
    const usage = await gw.admin('GET', '/usage?limit=10');
    assert.equal((usage.json as { data: unknown[] }).data.length, 1, 'the request is recorded as ever');
  } finally {
    await gw.close();
  }
  assert.throws(() => configSchema.parse({ metrics: { enabled: false, port: 9400 } }), /metrics\.port needs metrics\.enabled/);
  assert.deepEqual(configSchema.parse({}).metrics, { enabled: true });
});
