// Pure pricing: each kind of token at its own price (SPEC §1, §4), rounded up to the unit once.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { bill, outputAllowance } from '../src/billing/bill.js';
import { costOfUsage } from '../src/billing/cost.js';
import type { TokenUsage } from '../src/providers/types.js';
import type { Price } from '../src/routing/catalog.js';

// USD per 1M tokens in nano-USD: input 3, output 15, cache read 0.30, cache write 3.75.
const PRICE: Price = { input: 3_000_000_000n, output: 15_000_000_000n, cachedInput: 300_000_000n, cacheWrite: 3_750_000_000n };
const usage = (u: Partial<TokenUsage>): TokenUsage => ({ promptTokens: 0, completionTokens: 0, cachedTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0, ...u });

describe('costOfUsage', () => {
  test('cache reads, cache writes and the rest of the prompt each at their price; reasoning is output', () => {
    // 1000 prompt = 600 uncached + 300 read + 100 written; 200 output of which 50 reasoning.
    const cost = costOfUsage(usage({ promptTokens: 1000, cachedTokens: 300, cacheWriteTokens: 100, completionTokens: 200, reasoningTokens: 50 }), PRICE);
    const expected = (600n * 3_000_000_000n + 300n * 300_000_000n + 100n * 3_750_000_000n + 200n * 15_000_000_000n) / 1_000_000n;
    assert.equal(cost, expected);
  });

  test('rounds up to the unit once, not per kind', () => {
    // 1 token at each of two prices of 0.5 units per token: 1 unit, not 2.
    const half: Price = { input: 500_000n, output: 500_000n, cachedInput: 0n, cacheWrite: 0n };
    assert.equal(costOfUsage(usage({ promptTokens: 1, completionTokens: 1 }), half), 1n);
  });

  test('cache counts beyond the prompt never make a negative uncached part', () => {
    assert.equal(costOfUsage(usage({ promptTokens: 10, cachedTokens: 8, cacheWriteTokens: 8 }), PRICE), (8n * 300_000_000n + 2n * 3_750_000_000n + 999_999n) / 1_000_000n);
  });
});

describe('bill', () => {
  const counted = usage({ promptTokens: 10, completionTokens: 5 });
  const base = { counted: () => counted, price: PRICE, hold: 10n ** 12n, outputCap: 100 };

  test('believable usage with cache and reasoning is billed as reported', () => {
    const reported = usage({ promptTokens: 100, cachedTokens: 40, cacheWriteTokens: 20, completionTokens: 50, reasoningTokens: 30 });
    const b = bill({ ...base, reported });
    assert.equal(b.reported, true);
    assert.deepEqual(b.usage, reported);
    assert.equal(b.cost, costOfUsage(reported, PRICE));
  });

  for (const [name, bad] of [
    ['cache reads and writes beyond the prompt', { promptTokens: 10, cachedTokens: 8, cacheWriteTokens: 8, completionTokens: 1 }],
    ['reasoning beyond the output', { promptTokens: 10, completionTokens: 5, reasoningTokens: 6 }],
    ['output beyond the cap and its allowance', { promptTokens: 10, completionTokens: outputAllowance(100) + 1 }],
    ['a negative cache write', { promptTokens: 10, completionTokens: 5, cacheWriteTokens: -1 }],
  ] as const) {
    test(`not believed: ${name}`, () => {
      const b = bill({ ...base, reported: usage(bad) });
      assert.equal(b.distrusted, true);
      assert.deepEqual(b.usage, counted);
    });
  }

  test('never more than the hold', () => {
    const b = bill({ ...base, hold: 7n, reported: null });
    assert.equal(b.cost, 7n);
  });
});
