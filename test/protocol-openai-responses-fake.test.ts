// The fake Responses upstream is faithful: the openai SDK, pointed straight at it, reads its
// answers and streams as it reads OpenAI's (typed events, the SDK's output_text, its stream
// helper's final response), and gets its errors as the SDK's error classes.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import OpenAI from 'openai';
import { ResponsesUpstream } from './helpers/responses-upstream.js';

let up: ResponsesUpstream;
let sdk: OpenAI;

before(async () => {
  up = await ResponsesUpstream.start('sk-fake-responses-0123456789');
  sdk = new OpenAI({ baseURL: up.url, apiKey: up.apiKey, maxRetries: 0 });
});
after(() => up.close());

test('create: output items, output_text and usage as the SDK types them', async () => {
  up.script = () => ({ kind: 'answer', reasoning: 'Hmm.', text: 'Hi there.', calls: [{ name: 'f', arguments: '{}' }], usage: { input: 3, output: 4, reasoning: 1 } });
  const r = await sdk.responses.create({ model: 'gpt-x', input: 'Hi' });
  assert.equal(r.output_text, 'Hi there.');
  assert.deepEqual(r.output.map((o) => o.type), ['reasoning', 'message', 'function_call']);
  assert.equal(r.usage?.output_tokens_details.reasoning_tokens, 1);
});

test('stream helper: events in order and the final response assembled by the SDK', async () => {
  up.script = () => ({ kind: 'answer', text: 'One two.', calls: [{ name: 'f', arguments: '{"a":1}' }] });
  const stream = sdk.responses.stream({ model: 'gpt-x', input: 'Hi' });
  const types: string[] = [];
  for await (const ev of stream) types.push(ev.type);
  const final = await stream.finalResponse();
  assert.equal(types[0], 'response.created');
  assert.equal(types.at(-1), 'response.completed');
  assert.equal(final.output_text, 'One two.');
  const call = final.output.find((o) => o.type === 'function_call');
  assert.equal(call?.type === 'function_call' && call.arguments, '{"a":1}');
});

test('previous_response_id: known ids continue, unknown ones are a 400 naming the field; a bad key is a 401', async () => {
  up.script = () => ({ kind: 'answer', text: 'ok' });
  const first = await sdk.responses.create({ model: 'gpt-x', input: 'Hi' });
  const next = await sdk.responses.create({ model: 'gpt-x', input: 'More', previous_response_id: first.id });
  assert.equal(next.previous_response_id, first.id);
  await assert.rejects(sdk.responses.create({ model: 'gpt-x', input: 'x', previous_response_id: 'resp_nope' }), (e: unknown) => {
    assert.ok(e instanceof OpenAI.BadRequestError);
    assert.equal(e.param, 'previous_response_id');
    return true;
  });
  const bad = new OpenAI({ baseURL: up.url, apiKey: 'sk-wrong', maxRetries: 0 });
  await assert.rejects(bad.responses.create({ model: 'gpt-x', input: 'x' }), OpenAI.AuthenticationError);
});

test('retrieve and delete: the stored Response, then {deleted}; afterwards and for unknown ids a 404 (NotFoundError)', async () => {
  up.script = () => ({ kind: 'answer', text: 'Keep me.' });
  const made = await sdk.responses.create({ model: 'gpt-x', input: 'Hi' });
  const got = await sdk.responses.retrieve(made.id, { include: ['reasoning.encrypted_content'] });
  assert.equal(got.id, made.id);
  assert.equal(got.output_text, 'Keep me.');
  const get = up.received.at(-1)!;
  assert.equal(get.method, 'GET');
  assert.equal(new URL(get.path, 'http://x').searchParams.get('include[]'), 'reasoning.encrypted_content');
  await sdk.responses.delete(made.id);
  assert.equal(up.received.at(-1)!.method, 'DELETE');
  assert.equal(up.stored.has(made.id), false);
  await assert.rejects(sdk.responses.retrieve(made.id), OpenAI.NotFoundError);
  await assert.rejects(sdk.responses.delete('resp_nope'), OpenAI.NotFoundError);
});
