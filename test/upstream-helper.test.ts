import { test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { startFakeUpstream, type FakeUpstream } from './helpers/upstream.js';

function post(up: FakeUpstream, path: string, body: unknown, signal?: AbortSignal): Promise<Response> {
  return fetch(`${up.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer sk-test' },
    body: JSON.stringify(body),
    signal,
  });
}

/** Parses an SSE body into its `data:` payloads. */
function sseData(text: string): string[] {
  return text
    .split('\n\n')
    .filter((e) => e.startsWith('data: '))
    .map((e) => e.slice('data: '.length));
}

const chat = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] };

test('ok: non-streamed chat completion has the OpenAI shape and the request is recorded', async (t) => {
  const up = await startFakeUpstream();
  t.after(() => up.close());
  const res = await post(up, '/chat/completions', { ...chat, tools: [{ type: 'function', function: { name: 'f' } }] });
  assert.equal(res.status, 200);
  const body = (await res.json()) as Record<string, unknown>;
  assert.match(String(body.id), /^chatcmpl-/);
  assert.equal(body.object, 'chat.completion');
  assert.equal(typeof body.created, 'number');
  assert.equal(body.model, 'gpt-4o-mini');
  assert.deepEqual(body.choices, [
    { index: 0, message: { role: 'assistant', content: 'Hello from the fake upstream.', refusal: null }, logprobs: null, finish_reason: 'stop' },
  ]);
  assert.deepEqual(body.usage, { prompt_tokens: 10, completion_tokens: 7, total_tokens: 17, prompt_tokens_details: { cached_tokens: 0 } });

  assert.equal(up.requests.length, 1);
  const [rec] = up.requests;
  assert.equal(rec?.method, 'POST');
  assert.equal(rec?.path, '/v1/chat/completions');
  assert.equal(rec?.headers.authorization, 'Bearer sk-test');
  assert.deepEqual((rec?.body as { tools: unknown }).tools, [{ type: 'function', function: { name: 'f' } }]);
});

test('stream: chunks end in [DONE]; usage chunk only with include_usage', async (t) => {
  const up = await startFakeUpstream({ behavior: { kind: 'stream', usage: { prompt_tokens: 3, completion_tokens: 5, cached_tokens: 2 } } });
  t.after(() => up.close());

  const plain = await post(up, '/chat/completions', { ...chat, stream: true });
  assert.equal(plain.headers.get('content-type'), 'text/event-stream');
  const events = sseData(await plain.text());
  assert.equal(events.at(-1), '[DONE]');
  const parsed = events.slice(0, -1).map((e) => JSON.parse(e) as { choices: { delta: { content?: string; role?: string }; finish_reason: string | null }[]; usage?: unknown });
  assert.equal(parsed.map((c) => c.choices[0]?.delta.content ?? '').join(''), 'Hello from the fake upstream.');
  assert.equal(parsed[0]?.choices[0]?.delta.role, 'assistant');
  assert.equal(parsed[1]?.choices[0]?.delta.role, undefined);
  assert.equal(parsed.at(-1)?.choices[0]?.finish_reason, 'stop');
  assert.ok(parsed.every((c) => c.usage === undefined));

  const withUsage = await post(up, '/chat/completions', { ...chat, stream: true, stream_options: { include_usage: true } });
  const events2 = sseData(await withUsage.text());
  assert.equal(events2.at(-1), '[DONE]');
  const last = JSON.parse(events2.at(-2) ?? '') as { choices: unknown[]; usage: unknown };
  assert.deepEqual(last.choices, []);
  assert.deepEqual(last.usage, { prompt_tokens: 3, completion_tokens: 5, total_tokens: 8, prompt_tokens_details: { cached_tokens: 2 } });
});

test('status: returns the status, headers and an OpenAI error body', async (t) => {
  const up = await startFakeUpstream({ behavior: { kind: 'status', status: 429, headers: { 'retry-after': '2' } } });
  t.after(() => up.close());
  const res = await post(up, '/chat/completions', chat);
  assert.equal(res.status, 429);
  assert.equal(res.headers.get('retry-after'), '2');
  const body = (await res.json()) as { error: { type: string; code: string } };
  assert.equal(body.error.code, 'rate_limit_exceeded');

  up.setBehavior((req) => ({ kind: 'status', status: 400, body: { error: { message: `bad ${req.path}` } } }));
  const res2 = await post(up, '/chat/completions', chat);
  assert.equal(res2.status, 400);
  assert.deepEqual(await res2.json(), { error: { message: 'bad /v1/chat/completions' } });
});

test('reset: the client sees a connection error, not a client abort', async (t) => {
  const up = await startFakeUpstream({ behavior: { kind: 'reset' } });
  t.after(() => up.close());
  await assert.rejects(post(up, '/chat/completions', chat), TypeError);
  await assert.rejects(up.waitForClientAbort(100), /no client abort/);
});

test('waitForClientAbort: resolves when the client aborts a hanging stream', async (t) => {
  const up = await startFakeUpstream({ behavior: { kind: 'stream', hangAfter: 1 } });
  t.after(() => up.close());
  const ac = new AbortController();
  const res = await post(up, '/chat/completions', { ...chat, stream: true }, ac.signal);
  const reader = res.body!.getReader();
  const first = await reader.read();
  assert.match(new TextDecoder().decode(first.value), /"content":"Hello"/);

  const abortedAt = performance.now();
  ac.abort();
  const seen = await up.waitForClientAbort(2000);
  assert.ok(seen >= abortedAt, `server saw the abort (${seen}) before the client aborted (${abortedAt})`);
});

test('embeddings, models and unknown paths', async (t) => {
  const up = await startFakeUpstream();
  t.after(() => up.close());
  const emb = (await (await post(up, '/embeddings', { model: 'text-embedding-3-small', input: ['a b', 'c'] })).json()) as {
    data: { index: number; embedding: number[] }[];
    usage: { prompt_tokens: number; total_tokens: number };
  };
  assert.deepEqual(emb.data.map((d) => d.index), [0, 1]);
  assert.deepEqual(emb.data[0]?.embedding, [0.1, 0.2, 0.3]);
  assert.equal(emb.usage.prompt_tokens, emb.usage.total_tokens);

  const models = (await (await fetch(`${up.url}/models`)).json()) as { object: string; data: unknown[] };
  assert.equal(models.object, 'list');
  assert.ok(models.data.length > 0);

  const missing = await fetch(`${up.url}/nope`);
  assert.equal(missing.status, 404);
  assert.equal(((await missing.json()) as { error: { type: string } }).error.type, 'invalid_request_error');
});
