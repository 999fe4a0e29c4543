import assert from 'node:assert/strict';
import { test } from 'node:test';
import { configSchema } from '../src/config/schema.js';
import { openStore } from '../src/store/open.js';
import { startRetention } from '../src/store/retention.js';
import type { UsageRecord } from '../src/store/types.js';

const DAY = 86_400_000;

test('retention.usage_days: the sweep deletes records older than that in batches, keeps the rest and the ledger, and says how many it deleted', async () => {
  const store = await openStore('sqlite::memory:');
  try {
    const account = await store.createAccount({ name: 'r', credit: 5_000_000_000n });
    const key = await store.createKey({ accountId: account.id, name: 'k', prefix: 'sk-r', hash: 'h'.repeat(64), models: null, limits: null, expiresAt: null });
    const now = 1_800_000_000_000;
    const rec = (i: number, createdAt: number): UsageRecord => ({
      traceId: `req_${i}`, accountId: account.id, keyId: key.id, model: 'm', provider: 'p', upstreamModel: 'u', promptTokens: 1, completionTokens: 1,
      cachedTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0, cost: 1n, status: 200, errorType: null, stream: false, latencyMs: 1, ttftMs: null, createdAt, attempts: 1, clientRequestId: null,
    });
    // 2,500 records older than 30 days (more than two batches), 10 within them.
    for (let i = 0; i < 2500; i++) await store.recordUsage(rec(i, now - 31 * DAY - i));
    for (let i = 0; i < 10; i++) await store.recordUsage(rec(10_000 + i, now - 29 * DAY + i));
    const ledger = await store.ledgerTotals(account.id);

    let said!: (o: Record<string, unknown>) => void;
    const deleted = new Promise<Record<string, unknown>>((resolve) => (said = resolve));
    const log = { info: (o: object) => said(o as Record<string, unknown>), warn: () => undefined, error: () => undefined };
    const stop = startRetention(store, 30, log, () => now);
    const line = await deleted;
    await stop();
    assert.equal(line['deleted'], 2500);
    const left = await store.listUsage({ accountId: account.id, limit: 100 });
    assert.equal(left.data.length, 10);
    assert.ok(left.data.every((r) => r.createdAt > now - 30 * DAY));
    assert.deepEqual(await store.ledgerTotals(account.id), ledger);
  } finally {
    await store.close();
  }
});

test('retention.usage_days is a whole number of days from 1; absent keeps everything', () => {
  assert.equal(configSchema.parse({}).retention.usage_days, undefined);
  assert.equal(configSchema.parse({ retention: { usage_days: 90 } }).retention.usage_days, 90);
  for (const bad of [0, 1.5, -3, 'ninety']) assert.throws(() => configSchema.parse({ retention: { usage_days: bad } }));
  assert.throws(() => configSchema.parse({ retention: { ledger_days: 5 } }), 'unknown fields are refused');
});
