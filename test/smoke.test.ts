import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';

let gw: TestGateway;
before(async () => {
  gw = await startTestGateway();
});
after(() => gw.close());

test('a key gets a completion from the demo model through the OpenAI SDK', async () => {
  const { key } = await gw.createKey();
  const res = await gw.client(key).chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'ping' }] });
  assert.equal(res.model, 'demo');
  assert.match(res.choices[0]!.message.content ?? '', /You said: "ping"/);
});
