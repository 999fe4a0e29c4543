// OpenAI-compatible providers that differ in how they are addressed (SPEC §1): Azure OpenAI puts
// `?api-version=…` on every request and takes the key in an `api-key` header.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ConfigError, parseConfigText } from '../src/config/load.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/upstream.js';

const AZURE_KEY = 'azure-secret-key-0123456789';

describe('Azure OpenAI: base_url query string and api_key_header', () => {
  let gw: TestGateway;
  let up: FakeUpstream;
  before(async () => {
    up = await startFakeUpstream();
    gw = await startTestGateway({
      providers: {
        azure: { type: 'openai', base_url: `${up.url}?api-version=2024-10-21`, api_key: AZURE_KEY, api_key_header: 'api-key' },
      },
      models: { az: { pricing: { input: 1, output: 2 }, deployments: [{ provider: 'azure', model: 'gpt-4o-deployment' }] } },
    });
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  test('chat, streamed chat and embeddings each carry the query string and the key in api-key, not Authorization', async () => {
    const { key } = await gw.createKey();
    const client = gw.client(key);
    const res = await client.chat.completions.create({ model: 'az', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(res.choices[0]?.message.content, 'Hello from the fake upstream.');
    const stream = await client.chat.completions.create({ model: 'az', stream: true, messages: [{ role: 'user', content: 'hi' }] });
    let text = '';
    for await (const c of stream) text += c.choices[0]?.delta?.content ?? '';
    assert.equal(text, 'Hello from the fake upstream.');
    const emb = await client.embeddings.create({ model: 'az', input: 'hi', encoding_format: 'float' });
    assert.equal(emb.data.length, 1);

    assert.equal(up.requests.length, 3);
    assert.deepEqual(
      up.requests.map((r) => r.path),
      ['/v1/chat/completions?api-version=2024-10-21', '/v1/chat/completions?api-version=2024-10-21', '/v1/embeddings?api-version=2024-10-21'],
    );
    for (const r of up.requests) {
      assert.equal(r.headers['api-key'], AZURE_KEY);
      assert.equal(r.headers['authorization'], undefined);
    }
  });

  test('an invalid api_key_header is a config error naming the field', () => {
    const yaml = `providers:\n  bad: { type: openai, base_url: "http://127.0.0.1:1/v1", api_key_header: "api key" }\n`;
    assert.throws(() => parseConfigText(yaml), (e: Error) => e instanceof ConfigError && /providers\.bad\.api_key_header: expected a header name/.test(e.message));
  });
});
