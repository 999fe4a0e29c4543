// Token counts feed holds and bills, and run on the event loop: they must stay linear in the text.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { countTokens } from 'gpt-tokenizer';
import { countText } from '../src/billing/estimate.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';

describe('countText', () => {
  test('short texts count exactly as the tokenizer does', () => {
    for (const s of ['', 'Hello, world!', '你好，世界', 'a'.repeat(1000), 'emoji 😀😀 and code `x => x * 2`']) {
      assert.equal(countText(s), countTokens(s));
    }
  });

  test('long ordinary text counts within 1 % of the tokenizer', () => {
    const text = Array.from({ length: 3000 }, (_, i) => `Sentence number ${i} says something about the weather.`).join(' ');
    const exact = countTokens(text);
    assert.ok(Math.abs(countText(text) - exact) <= exact / 100, `${countText(text)} vs ${exact}`);
  });

  test('a surrogate pair is never split', () => {
    const text = '😀'.repeat(5000);
    assert.equal(countText(text), countTokens('😀'.repeat(1000)) * 5);
  });
});

describe('a prompt without whitespace does not stall the gateway', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startTestGateway();
  });
  after(async () => {
    await gw.close();
  });

  // The tokenizer alone takes minutes on 200k characters without a space; counted in pieces it is linear.
  for (const [name, text] of [['200k CJK characters', '你好世界'.repeat(50_000)], ['100k letters', 'a'.repeat(100_000)]] as const) {
    test(`${name} in one message: answered, not stuck`, { timeout: 20_000 }, async () => {
      const k = await gw.createKey();
      const res = await gw.http('POST', '/v1/chat/completions', { key: k.key, body: { model: 'demo', max_tokens: 5, messages: [{ role: 'user', content: text }] } });
      assert.equal(res.status, 200, res.text);
      assert.ok(res.json.usage.prompt_tokens > 0);
    });
  }
});
