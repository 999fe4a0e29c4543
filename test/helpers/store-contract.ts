import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { MAX_BALANCE } from '../../src/billing/money.js';
import type { Hold, NewHold, NewKey, Store, UsageRecord, UsageSummaryQuery, UsageSummaryRow } from '../../src/store/types.js';

// The behaviour every Store implementation owes the gateway (src/store/types.ts), written against
// the interface only: no SQL, no table names. SQLite runs it now; PostgreSQL must pass it as is.
//
// The suite does not assume an empty database: every test creates its own accounts and looks only
// at them, so an implementation may hand back one shared database for all of it.

export interface StoreContractOptions {
  /**
   * True when two calls of `open` reach the same database (a file, a server). Enables the tests
   * that need a second connection: data survives a reopen, and a write through one store moves
   * the other's revision() (the CLI and a running server are two processes).
   */
  sharedDatabase?: boolean;
}

const USD = 1_000_000_000n;

let seq = 0;
const uniq = (p: string): string => `${p}-${process.pid}-${++seq}-${randomUUID().slice(0, 8)}`;

function newKeyInput(accountId: string, over: Partial<NewKey> = {}): NewKey {
  const secret = `sk-${randomUUID().replaceAll('-', '')}${randomUUID().replaceAll('-', '')}`;
  return {
    accountId,
    name: null,
    prefix: secret.slice(0, 10),
    hash: createHash('sha256').update(secret).digest('hex'),
    models: null,
    limits: null,
    expiresAt: null,
    ...over,
  };
}

function hold(accountId: string, keyId: string, amount: bigint, over: Partial<Hold> = {}): Hold {
  return { id: uniq('trace'), accountId, keyId, model: 'demo', amount, stream: false, createdAt: Date.now(), ...over };
}

function usage(h: { id: string; accountId: string; keyId: string }, over: Partial<UsageRecord> = {}): UsageRecord {
  return {
    traceId: h.id,
    accountId: h.accountId,
    keyId: h.keyId,
    model: 'demo',
    provider: 'demo',
    upstreamModel: 'demo-upstream',
    promptTokens: 10,
    completionTokens: 20,
    cachedTokens: 2,
    cacheWriteTokens: 3,
    reasoningTokens: 4,
    cost: 0n,
    status: 200,
    errorType: null,
    stream: false,
    latencyMs: 12,
    ttftMs: null,
    createdAt: Date.now(),
    attempts: 2,
    clientRequestId: 'client-req_1.a',
    ...over,
  };
}

const DAY = 86_400_000;

/** What summarizeUsage owes, computed from the records themselves (src/store/types.ts). */
function expectedSummary(recs: readonly UsageRecord[], q: UsageSummaryQuery): UsageSummaryRow[] {
  const groups = new Map<string, UsageSummaryRow>();
  for (const r of recs) {
    if (r.createdAt < q.from || r.createdAt >= q.to) continue;
    if ((q.accountId !== undefined && r.accountId !== q.accountId) || (q.keyId !== undefined && r.keyId !== q.keyId)) continue;
    const g = { day: new Date(r.createdAt).toISOString().slice(0, 10), model: r.model, key: r.keyId, account: r.accountId }[q.groupBy];
    let row = groups.get(g);
    if (row === undefined) {
      row = { group: g, requests: 0, errors: 0, promptTokens: 0, completionTokens: 0, cachedTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0, cost: 0n };
      groups.set(g, row);
    }
    row.requests++;
    if (r.status >= 400) row.errors++;
    row.promptTokens += r.promptTokens;
    row.completionTokens += r.completionTokens;
    row.cachedTokens += r.cachedTokens;
    row.cacheWriteTokens += r.cacheWriteTokens;
    row.reasoningTokens += r.reasoningTokens;
    row.cost += r.cost;
  }
  const byName = (a: UsageSummaryRow, b: UsageSummaryRow): number => (a.group < b.group ? -1 : a.group > b.group ? 1 : 0);
  return [...groups.values()].sort(
    q.groupBy === 'day' ? byName : (a, b) => (a.cost !== b.cost ? (b.cost > a.cost ? 1 : -1) : b.requests - a.requests || byName(a, b)),
  );
}

/** A stretch of time no other test writes records in: unfiltered summaries over it see only the records of the test that took it. */
let windows = 0;
const quietWindow = (days: number): number => Date.UTC(2001, 0, 1) + (windows++ * (days + 2)) * DAY;

/** Registers the contract suite for one Store implementation. `open` gives a migrated store. */
export function storeContract(name: string, open: () => Promise<Store>, opts: StoreContractOptions = {}): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;
    before(async () => {
      store = await open();
    });
    after(async () => {
      await store.close();
    });

    /** A fresh account and a live key on it. */
    async function fixture(credit: bigint): Promise<{ accountId: string; keyId: string }> {
      const a = await store.createAccount({ name: uniq('acct'), credit });
      const k = await store.createKey(newKeyInput(a.id));
      return { accountId: a.id, keyId: k.id };
    }

    /** The money invariants that must hold for an account after every operation. */
    async function assertBooks(accountId: string, expect?: { balance?: bigint; held?: bigint }): Promise<void> {
      const a = await store.getAccount(accountId);
      assert.ok(a, 'account exists');
      const t = await store.ledgerTotals(accountId);
      assert.equal(t.credits - t.debits, a.balance, 'ledger credits - debits == balance');
      assert.ok(a.balance >= 0n, 'balance never below zero');
      assert.ok(a.held >= 0n, 'held never below zero');
      assert.ok(a.held <= a.balance, 'held never exceeds balance');
      if (expect?.balance !== undefined) assert.equal(a.balance, expect.balance, 'balance');
      if (expect?.held !== undefined) assert.equal(a.held, expect.held, 'held');
    }

    describe('accounts', () => {
      test('createAccount credits at creation; amounts are bigint; getAccount reads it back', async () => {
        const before = await store.countAccounts();
        const a = await store.createAccount({ name: 'alice', credit: 12n * USD + USD / 2n });
        assert.equal(typeof a.id, 'string');
        assert.ok(a.id.length > 0);
        assert.equal(a.name, 'alice');
        assert.equal(typeof a.balance, 'bigint');
        assert.equal(typeof a.held, 'bigint');
        assert.equal(a.balance, 12_500_000_000n);
        assert.equal(a.held, 0n);
        assert.equal(typeof a.createdAt, 'number');
        assert.ok(Math.abs(a.createdAt - Date.now()) < 60_000, 'createdAt is epoch ms, now');
        assert.deepEqual(await store.getAccount(a.id), a);
        assert.equal(await store.countAccounts(), before + 1);
        assert.deepEqual(await store.ledgerTotals(a.id), { credits: 12_500_000_000n, debits: 0n });
      });

      test('an account created with no credit has balance 0 and an empty ledger', async () => {
        const a = await store.createAccount({ name: 'zero', credit: 0n });
        assert.equal(a.balance, 0n);
        assert.deepEqual(await store.ledgerTotals(a.id), { credits: 0n, debits: 0n });
      });

      test('account limits round-trip, daily_spend as bigint', async () => {
        const a = await store.createAccount({ name: 'lim', credit: 0n, limits: { rpm: 5, daily_spend: 3n * USD } });
        assert.deepEqual(a.limits, { rpm: 5, daily_spend: 3n * USD });
        assert.deepEqual((await store.getAccount(a.id))!.limits, { rpm: 5, daily_spend: 3n * USD });
        const b = await store.createAccount({ name: 'nolim', credit: 0n });
        assert.equal(b.limits, null);
      });

      test('balances beyond 2^53 units stay exact', async () => {
        const big = 2n ** 59n + 7n;
        const a = await store.createAccount({ name: 'rich', credit: big });
        assert.equal((await store.getAccount(a.id))!.balance, big);
        const r = await store.credit({ accountId: a.id, amount: 1n, note: null, idempotencyKey: null });
        assert.equal(r.kind, 'credited');
        assert.equal((await store.getAccount(a.id))!.balance, big + 1n);
        await assertBooks(a.id);
      });

      test('a credit that would take the balance past MAX_BALANCE is refused and changes nothing', async () => {
        const a = await store.createAccount({ name: 'full', credit: MAX_BALANCE - 5n });
        assert.deepEqual(await store.credit({ accountId: a.id, amount: 6n, note: null, idempotencyKey: 'over' }), { kind: 'over_max', balance: MAX_BALANCE - 5n });
        assert.equal((await store.getAccount(a.id))!.balance, MAX_BALANCE - 5n);
        assert.deepEqual(await store.ledgerTotals(a.id), { credits: MAX_BALANCE - 5n, debits: 0n });
        // The refused idempotency key was not used up; up to the maximum is fine.
        assert.equal((await store.credit({ accountId: a.id, amount: 5n, note: null, idempotencyKey: 'over' })).kind, 'credited');
        assert.equal((await store.getAccount(a.id))!.balance, MAX_BALANCE);
      });

      test('updateAccount renames and replaces limits; the revision moves (account limits are cached with keys)', async () => {
        const a = await store.createAccount({ name: 'before', credit: 9n, limits: { rpm: 3 } });
        let r = store.revision();
        const renamed = await store.updateAccount(a.id, { name: 'after' });
        assert.equal(renamed!.name, 'after');
        assert.deepEqual(renamed!.limits, { rpm: 3 }, 'limits untouched');
        assert.equal(renamed!.balance, 9n, 'balance untouched');
        assert.notEqual(store.revision(), r);
        r = store.revision();
        const limited = await store.updateAccount(a.id, { limits: { concurrency: 2, daily_spend: 5n } });
        assert.deepEqual(limited!.limits, { concurrency: 2, daily_spend: 5n });
        assert.equal(limited!.name, 'after');
        assert.notEqual(store.revision(), r);
        const cleared = await store.updateAccount(a.id, { limits: null });
        assert.equal(cleared!.limits, null);
        assert.deepEqual(await store.getAccount(a.id), cleared);
        assert.equal(await store.updateAccount(uniq('acct_missing'), { name: 'x' }), null);
      });

      test('getAccount of an unknown id is null', async () => {
        assert.equal(await store.getAccount(uniq('acct_missing')), null);
      });
    });

    describe('credit', () => {
      test('credits add to the balance and the ledger', async () => {
        const a = await store.createAccount({ name: 'c', credit: 1n * USD });
        const r = await store.credit({ accountId: a.id, amount: 2n * USD, note: 'top-up', idempotencyKey: null });
        assert.equal(r.kind, 'credited');
        assert.equal(r.kind === 'credited' && r.account.balance, 3n * USD);
        assert.equal((await store.getAccount(a.id))!.balance, 3n * USD);
        assert.deepEqual(await store.ledgerTotals(a.id), { credits: 3n * USD, debits: 0n });
      });

      test('credits without an idempotency key are never deduplicated', async () => {
        const a = await store.createAccount({ name: 'c', credit: 0n });
        await store.credit({ accountId: a.id, amount: 5n, note: null, idempotencyKey: null });
        await store.credit({ accountId: a.id, amount: 5n, note: null, idempotencyKey: null });
        assert.equal((await store.getAccount(a.id))!.balance, 10n);
        await assertBooks(a.id);
      });

      test('the same idempotency key and amount twice credits once; the second is replayed', async () => {
        const a = await store.createAccount({ name: 'c', credit: 0n });
        const first = await store.credit({ accountId: a.id, amount: 7n * USD, note: null, idempotencyKey: 'pay-1' });
        assert.equal(first.kind, 'credited');
        const second = await store.credit({ accountId: a.id, amount: 7n * USD, note: null, idempotencyKey: 'pay-1' });
        assert.equal(second.kind, 'replayed');
        assert.equal(second.kind === 'replayed' && second.account.balance, 7n * USD);
        assert.equal((await store.getAccount(a.id))!.balance, 7n * USD);
        assert.deepEqual(await store.ledgerTotals(a.id), { credits: 7n * USD, debits: 0n });
      });

      test('the same idempotency key with another amount is a conflict and changes nothing', async () => {
        const a = await store.createAccount({ name: 'c', credit: 0n });
        await store.credit({ accountId: a.id, amount: 7n * USD, note: null, idempotencyKey: 'pay-2' });
        const r = await store.credit({ accountId: a.id, amount: 8n * USD, note: null, idempotencyKey: 'pay-2' });
        assert.deepEqual(r, { kind: 'conflict' });
        assert.equal((await store.getAccount(a.id))!.balance, 7n * USD);
        assert.deepEqual(await store.ledgerTotals(a.id), { credits: 7n * USD, debits: 0n });
      });

      test('idempotency keys are per account', async () => {
        const a = await store.createAccount({ name: 'c', credit: 0n });
        const b = await store.createAccount({ name: 'c', credit: 0n });
        assert.equal((await store.credit({ accountId: a.id, amount: 1n, note: null, idempotencyKey: 'shared' })).kind, 'credited');
        assert.equal((await store.credit({ accountId: b.id, amount: 2n, note: null, idempotencyKey: 'shared' })).kind, 'credited');
        assert.equal((await store.getAccount(a.id))!.balance, 1n);
        assert.equal((await store.getAccount(b.id))!.balance, 2n);
      });

      test('concurrent credits with one idempotency key credit exactly once', async () => {
        const a = await store.createAccount({ name: 'c', credit: 0n });
        const results = await Promise.all(
          Array.from({ length: 10 }, () => store.credit({ accountId: a.id, amount: 3n, note: null, idempotencyKey: 'race' })),
        );
        assert.equal(results.filter((r) => r.kind === 'credited').length, 1);
        assert.equal(results.filter((r) => r.kind === 'replayed').length, 9);
        assert.equal((await store.getAccount(a.id))!.balance, 3n);
        await assertBooks(a.id);
      });

      test('crediting an unknown account is no_account', async () => {
        assert.deepEqual(await store.credit({ accountId: uniq('acct_missing'), amount: 1n, note: null, idempotencyKey: null }), {
          kind: 'no_account',
        });
      });
    });

    describe('keys', () => {
      test('createKey, getKey and getKeyByHash return the same key', async () => {
        const a = await store.createAccount({ name: 'k', credit: 0n });
        const input = newKeyInput(a.id, {
          name: 'ci',
          models: ['demo', 'glm-*'],
          limits: { rpm: 10, tpm: 1000, concurrency: 2, daily_spend: 5n * USD },
          expiresAt: Date.now() + 86_400_000,
        });
        const k = await store.createKey(input);
        assert.equal(typeof k.id, 'string');
        assert.equal(k.accountId, a.id);
        assert.equal(k.name, 'ci');
        assert.equal(k.prefix, input.prefix);
        assert.equal(k.hash, input.hash);
        assert.deepEqual(k.models, ['demo', 'glm-*']);
        assert.deepEqual(k.limits, { rpm: 10, tpm: 1000, concurrency: 2, daily_spend: 5n * USD });
        assert.equal(k.frozen, false);
        assert.equal(k.expiresAt, input.expiresAt);
        assert.equal(k.revokedAt, null);
        assert.equal(typeof k.createdAt, 'number');
        assert.deepEqual(await store.getKey(k.id), k);
        assert.deepEqual(await store.getKeyByHash(input.hash), k);
      });

      test('a key without models or limits has null for both', async () => {
        const a = await store.createAccount({ name: 'k', credit: 0n });
        const k = await store.createKey(newKeyInput(a.id));
        assert.equal(k.models, null);
        assert.equal(k.limits, null);
        assert.equal(k.name, null);
        assert.equal(k.expiresAt, null);
      });

      test('unknown ids and hashes are null', async () => {
        assert.equal(await store.getKey(uniq('key_missing')), null);
        assert.equal(await store.getKeyByHash(createHash('sha256').update(uniq('nope')).digest('hex')), null);
      });

      test('listKeys lists the live keys of an account, or of all accounts, without revoked ones', async () => {
        const a = await store.createAccount({ name: 'k', credit: 0n });
        const b = await store.createAccount({ name: 'k', credit: 0n });
        const k1 = await store.createKey(newKeyInput(a.id));
        const k2 = await store.createKey(newKeyInput(a.id));
        const k3 = await store.createKey(newKeyInput(b.id));
        assert.deepEqual((await store.listKeys(a.id)).map((k) => k.id).sort(), [k1.id, k2.id].sort());
        assert.equal(await store.revokeKey(k1.id), true);
        assert.deepEqual((await store.listKeys(a.id)).map((k) => k.id), [k2.id]);
        const all = (await store.listKeys()).map((k) => k.id);
        assert.ok(all.includes(k2.id) && all.includes(k3.id), 'all accounts listed');
        assert.ok(!all.includes(k1.id), 'revoked key not listed');
        assert.deepEqual(await store.listKeys(uniq('acct_missing')), []);
      });

      test('updateKey applies each field and leaves the others', async () => {
        const a = await store.createAccount({ name: 'k', credit: 0n });
        const k = await store.createKey(newKeyInput(a.id, { name: 'orig', models: ['demo'], limits: { rpm: 1 } }));

        let u = await store.updateKey(k.id, { frozen: true });
        assert.equal(u!.frozen, true);
        assert.equal(u!.name, 'orig');
        assert.deepEqual(u!.models, ['demo']);
        assert.deepEqual(u!.limits, { rpm: 1 });

        u = await store.updateKey(k.id, { models: ['glm-*', 'demo'], name: 'renamed' });
        assert.deepEqual(u!.models, ['glm-*', 'demo']);
        assert.equal(u!.name, 'renamed');
        assert.equal(u!.frozen, true);

        u = await store.updateKey(k.id, { limits: { tpm: 500, daily_spend: 1n }, expiresAt: 1_900_000_000_000 });
        assert.deepEqual(u!.limits, { tpm: 500, daily_spend: 1n });
        assert.equal(u!.expiresAt, 1_900_000_000_000);

        u = await store.updateKey(k.id, { frozen: false, models: null, limits: null, expiresAt: null, name: null });
        assert.equal(u!.frozen, false);
        assert.equal(u!.models, null);
        assert.equal(u!.limits, null);
        assert.equal(u!.expiresAt, null);
        assert.equal(u!.name, null);

        assert.deepEqual(await store.getKeyByHash(k.hash), u);
        // An empty patch changes nothing and still returns the key.
        assert.deepEqual(await store.updateKey(k.id, {}), u);
      });

      test('updateKey of an unknown or revoked key is null', async () => {
        assert.equal(await store.updateKey(uniq('key_missing'), { frozen: true }), null);
        const a = await store.createAccount({ name: 'k', credit: 0n });
        const k = await store.createKey(newKeyInput(a.id));
        await store.revokeKey(k.id);
        assert.equal(await store.updateKey(k.id, { frozen: false }), null);
      });

      test('revokeKey: true once, then false; the key is never again usable', async () => {
        const a = await store.createAccount({ name: 'k', credit: 0n });
        const k = await store.createKey(newKeyInput(a.id));
        assert.equal(await store.revokeKey(k.id), true);
        assert.equal(await store.revokeKey(k.id), false);
        assert.equal(await store.revokeKey(uniq('key_missing')), false);
        // Authentication reads by hash: a revoked key is either gone or marked revoked.
        const byHash = await store.getKeyByHash(k.hash);
        assert.ok(byHash === null || byHash.revokedAt !== null, 'revoked key is not returned as live');
        const byId = await store.getKey(k.id);
        assert.ok(byId === null || (typeof byId.revokedAt === 'number' && Math.abs(byId.revokedAt - Date.now()) < 60_000));
      });

      test('two keys cannot share a hash', async () => {
        const a = await store.createAccount({ name: 'k', credit: 0n });
        const input = newKeyInput(a.id);
        await store.createKey(input);
        await assert.rejects(store.createKey({ ...input, prefix: 'sk-other' }));
      });

      test('revision() moves after every key or account change', async () => {
        const a = await store.createAccount({ name: 'k', credit: 0n });
        let r = store.revision();
        assert.equal(typeof r, 'number');
        const moved = (what: string): void => {
          const now = store.revision();
          assert.notEqual(now, r, `revision moved after ${what}`);
          r = now;
        };
        const k = await store.createKey(newKeyInput(a.id));
        moved('createKey');
        await store.updateKey(k.id, { frozen: true });
        moved('freeze');
        await store.updateKey(k.id, { frozen: false });
        moved('unfreeze');
        await store.updateKey(k.id, { models: ['x'] });
        moved('models change');
        await store.revokeKey(k.id);
        moved('revoke');
        await store.createAccount({ name: 'k2', credit: 0n });
        moved('createAccount');
        // Reading changes nothing.
        await store.getKey(k.id);
        await store.listKeys(a.id);
        assert.equal(store.revision(), r, 'reads leave the revision alone');
      });
    });

    describe('holds and settlement', () => {
      test('placeHold reserves up to the available balance (balance - held) and no further', async () => {
        const { accountId, keyId } = await fixture(100n);
        assert.equal(await store.placeHold(hold(accountId, keyId, 60n)), true);
        await assertBooks(accountId, { balance: 100n, held: 60n });
        assert.equal(await store.placeHold(hold(accountId, keyId, 41n)), false, '41 > 40 available');
        await assertBooks(accountId, { balance: 100n, held: 60n });
        assert.equal(await store.placeHold(hold(accountId, keyId, 40n)), true, 'exactly what is available');
        await assertBooks(accountId, { balance: 100n, held: 100n });
        assert.equal(await store.placeHold(hold(accountId, keyId, 1n)), false, 'nothing left');
        assert.equal(await store.placeHold(hold(accountId, keyId, 0n)), true, 'a zero hold always fits');
        await assertBooks(accountId, { balance: 100n, held: 100n });
      });

      test('placeHold on an empty or unknown account is refused', async () => {
        const { accountId, keyId } = await fixture(0n);
        assert.equal(await store.placeHold(hold(accountId, keyId, 1n)), false);
        assert.equal(await store.placeHold(hold(uniq('acct_missing'), keyId, 1n)), false);
      });

      test('concurrent holds never reserve more than the balance', async () => {
        const { accountId, keyId } = await fixture(255n);
        const results = await Promise.all(Array.from({ length: 50 }, () => store.placeHold(hold(accountId, keyId, 10n))));
        assert.equal(results.filter(Boolean).length, 25);
        await assertBooks(accountId, { balance: 255n, held: 250n });
      });

      test('settle releases the hold, debits the cost and writes the usage record with it', async () => {
        const { accountId, keyId } = await fixture(1000n);
        const h = hold(accountId, keyId, 300n);
        assert.equal(await store.placeHold(h), true);
        const charged = await store.settle({ hold: h, cost: 120n, usage: usage(h, { cost: 120n }) });
        assert.equal(charged, 120n);
        await assertBooks(accountId, { balance: 880n, held: 0n });
        assert.deepEqual(await store.ledgerTotals(accountId), { credits: 1000n, debits: 120n });
        const page = await store.listUsage({ accountId, limit: 10 });
        assert.equal(page.data.length, 1);
        assert.equal(page.data[0]!.traceId, h.id);
        assert.equal(page.data[0]!.cost, 120n);
      });

      test('settle may cost more than the hold, but charges at most what is free of other holds', async () => {
        const { accountId, keyId } = await fixture(100n);
        const a = hold(accountId, keyId, 60n);
        const b = hold(accountId, keyId, 30n);
        assert.equal(await store.placeHold(a), true);
        assert.equal(await store.placeHold(b), true);
        // a costs 80: 100 balance - 30 still held for b = 70 free; the record says what was charged.
        const charged = await store.settle({ hold: a, cost: 80n, usage: usage(a, { cost: 80n }) });
        assert.equal(charged, 70n);
        await assertBooks(accountId, { balance: 30n, held: 30n });
        // b costs 50 but only its own 30 is left.
        assert.equal(await store.settle({ hold: b, cost: 50n, usage: usage(b, { cost: 50n }) }), 30n);
        await assertBooks(accountId, { balance: 0n, held: 0n });
        const page = await store.listUsage({ accountId, limit: 10 });
        assert.deepEqual(page.data.map((u) => [u.traceId, u.cost]).sort(), [[a.id, 70n], [b.id, 30n]].sort());
        const totals = await store.ledgerTotals(accountId);
        assert.equal(totals.debits, 100n);
        assert.equal(page.data.reduce((s, u) => s + u.cost, 0n), totals.debits, 'usage costs sum to the debits');
      });

      test('settle with cost 0 releases the hold and debits nothing', async () => {
        const { accountId, keyId } = await fixture(50n);
        const h = hold(accountId, keyId, 50n);
        assert.equal(await store.placeHold(h), true);
        assert.equal(await store.settle({ hold: h, cost: 0n, usage: usage(h, { status: 502, errorType: 'api_error' }) }), 0n);
        await assertBooks(accountId, { balance: 50n, held: 0n });
        assert.deepEqual(await store.ledgerTotals(accountId), { credits: 50n, debits: 0n });
      });

      test('a credit while a hold is out makes room for a larger settle', async () => {
        const { accountId, keyId } = await fixture(10n);
        const h = hold(accountId, keyId, 10n);
        assert.equal(await store.placeHold(h), true);
        await store.credit({ accountId, amount: 100n, note: null, idempotencyKey: null });
        await assertBooks(accountId, { balance: 110n, held: 10n });
        assert.equal(await store.settle({ hold: h, cost: 25n, usage: usage(h, { cost: 25n }) }), 25n);
        await assertBooks(accountId, { balance: 85n, held: 0n });
      });

      test('a hold that fails (its id is taken) fails alone: the holds and settlements of the same moment go through', async () => {
        const { accountId, keyId } = await fixture(100n);
        const first = hold(accountId, keyId, 10n);
        assert.equal(await store.placeHold(first), true);
        const others = Array.from({ length: 5 }, () => hold(accountId, keyId, 10n));
        const results = await Promise.allSettled([
          store.placeHold({ ...first, amount: 5n }),
          ...others.map((h) => store.placeHold(h)),
          store.settle({ hold: first, cost: 4n, usage: usage(first, { cost: 4n }) }),
        ]);
        assert.equal(results[0]!.status, 'rejected', 'a second hold with the same id is an error');
        for (const r of results.slice(1, 6)) assert.deepEqual(r, { status: 'fulfilled', value: true });
        assert.deepEqual(results[6], { status: 'fulfilled', value: 4n });
        await assertBooks(accountId, { balance: 96n, held: 50n });
        assert.equal((await store.listUsage({ accountId, limit: 10 })).data.length, 1);
      });

      test('concurrent settles keep the books exact', async () => {
        const { accountId, keyId } = await fixture(1_000n);
        const holds = Array.from({ length: 20 }, () => hold(accountId, keyId, 50n));
        for (const h of holds) assert.equal(await store.placeHold(h), true);
        const charged = await Promise.all(holds.map((h, i) => store.settle({ hold: h, cost: BigInt(i * 2), usage: usage(h) })));
        const total = charged.reduce((s, c) => s + c, 0n);
        assert.equal(total, BigInt(2 * ((19 * 20) / 2)));
        await assertBooks(accountId, { balance: 1_000n - total, held: 0n });
      });

      test('property: credits - debits == balance and 0 <= held <= balance through any sequence', async () => {
        type Op =
          | { op: 'hold'; amount: number }
          | { op: 'settle'; which: number; cost: number }
          | { op: 'credit'; amount: number }
          | { op: 'record' };
        const opArb: fc.Arbitrary<Op> = fc.oneof(
          fc.record({ op: fc.constant('hold' as const), amount: fc.integer({ min: 0, max: 400 }) }),
          fc.record({ op: fc.constant('settle' as const), which: fc.nat(), cost: fc.integer({ min: 0, max: 600 }) }),
          fc.record({ op: fc.constant('credit' as const), amount: fc.integer({ min: 1, max: 300 }) }),
          fc.record({ op: fc.constant('record' as const) }),
        );
        await fc.assert(
          fc.asyncProperty(fc.integer({ min: 0, max: 500 }), fc.array(opArb, { maxLength: 25 }), async (initial, ops) => {
            const { accountId, keyId } = await fixture(BigInt(initial));
            const open: Hold[] = [];
            let settledCharges = 0n;
            for (const o of ops) {
              if (o.op === 'hold') {
                const before = (await store.getAccount(accountId))!;
                const h = hold(accountId, keyId, BigInt(o.amount));
                const ok = await store.placeHold(h);
                assert.equal(ok, BigInt(o.amount) <= before.balance - before.held, 'hold accepted iff it fits');
                if (ok) open.push(h);
              } else if (o.op === 'settle' && open.length > 0) {
                const h = open.splice(o.which % open.length, 1)[0]!;
                const before = (await store.getAccount(accountId))!;
                const free = before.balance - (before.held - h.amount);
                const charged = await store.settle({ hold: h, cost: BigInt(o.cost), usage: usage(h, { cost: BigInt(o.cost) }) });
                assert.equal(charged, BigInt(o.cost) < free ? BigInt(o.cost) : free, 'charged = min(cost, free)');
                settledCharges += charged;
              } else if (o.op === 'credit') {
                await store.credit({ accountId, amount: BigInt(o.amount), note: null, idempotencyKey: null });
              } else if (o.op === 'record') {
                await store.recordUsage(usage({ id: uniq('t'), accountId, keyId }, { status: 429, errorType: 'rate_limit_error' }));
              }
              await assertBooks(accountId, { held: open.reduce((s, h) => s + h.amount, 0n) });
            }
            const totals = await store.ledgerTotals(accountId);
            assert.equal(totals.debits, settledCharges);
            const all = await store.listUsage({ accountId, limit: 10_000 });
            assert.equal(all.data.reduce((s, u) => s + u.cost, 0n), totals.debits, 'sum of usage costs == debits');
          }),
          { numRuns: 40 },
        );
      });

      describe('placePlannedHold', () => {
        const newHold = (accountId: string, keyId: string): NewHold => {
          const { amount: _amount, ...rest } = hold(accountId, keyId, 0n);
          return rest;
        };

        test('the plan sees the available balance (balance - held) and its amount is held', async () => {
          const { accountId, keyId } = await fixture(1000n);
          assert.equal(await store.placeHold(hold(accountId, keyId, 300n)), true);
          const seen: bigint[] = [];
          const h = newHold(accountId, keyId);
          const r = await store.placePlannedHold(h, (available) => (seen.push(available), available / 2n));
          assert.deepEqual(seen, [700n]);
          assert.deepEqual(r, { amount: 350n });
          await assertBooks(accountId, { balance: 1000n, held: 650n });
          // The hold it placed settles like any other.
          assert.equal(await store.settle({ hold: { ...h, amount: 350n }, cost: 100n, usage: usage(h, { cost: 100n }) }), 100n);
          await assertBooks(accountId, { balance: 900n, held: 300n });
          await store.recoverHolds();
        });

        test('a plan that refuses (null) holds nothing and reports the available balance', async () => {
          const { accountId, keyId } = await fixture(40n);
          assert.deepEqual(await store.placePlannedHold(newHold(accountId, keyId), () => null), { available: 40n });
          await assertBooks(accountId, { balance: 40n, held: 0n });
        });

        test('the store never holds more than is available, whatever the plan says', async () => {
          const { accountId, keyId } = await fixture(40n);
          assert.deepEqual(await store.placePlannedHold(newHold(accountId, keyId), (a) => a + 1n), { available: 40n });
          assert.deepEqual(await store.placePlannedHold(newHold(accountId, keyId), () => -1n), { available: 40n });
          await assertBooks(accountId, { balance: 40n, held: 0n });
          assert.deepEqual(await store.placePlannedHold(newHold(accountId, keyId), (a) => a), { amount: 40n });
          assert.deepEqual(await store.placePlannedHold(newHold(accountId, keyId), (a) => (a === 0n ? 0n : null)), { amount: 0n });
          await assertBooks(accountId, { balance: 40n, held: 40n });
          await store.recoverHolds();
        });

        test('an unknown account is null', async () => {
          assert.equal(await store.placePlannedHold(newHold(uniq('acct_missing'), uniq('key')), () => 1n), null);
        });

        test('concurrent planned holds each see what the others left', async () => {
          const { accountId, keyId } = await fixture(255n);
          const fixed = await Promise.all(
            Array.from({ length: 50 }, () => store.placePlannedHold(newHold(accountId, keyId), (a) => (a >= 10n ? 10n : null))),
          );
          assert.equal(fixed.filter((r) => r !== null && 'amount' in r).length, 25);
          assert.deepEqual(fixed.filter((r) => r !== null && 'available' in r), Array(25).fill({ available: 5n }));
          await assertBooks(accountId, { balance: 255n, held: 250n });
          await store.recoverHolds();

          // "Half of what is left": each plan must see the holds placed before it.
          const { accountId: b, keyId: bk } = await fixture(1024n);
          const halves = await Promise.all(
            Array.from({ length: 8 }, () => store.placePlannedHold(newHold(b, bk), (a) => (a >= 2n ? a / 2n : null))),
          );
          const amounts = halves.map((r) => (r !== null && 'amount' in r ? r.amount : -1n)).sort((x, y) => (x > y ? -1 : x < y ? 1 : 0));
          assert.deepEqual(amounts, [512n, 256n, 128n, 64n, 32n, 16n, 8n, 4n]);
          await assertBooks(b, { balance: 1024n, held: 1020n });
          await store.recoverHolds();
        });
      });

      test("recoverHolds never touches the holds of a live store, this one's included", async () => {
        const x = await fixture(100n);
        const h = hold(x.accountId, x.keyId, 40n);
        assert.equal(await store.placeHold(h), true);
        await store.recoverHolds();
        await assertBooks(x.accountId, { balance: 100n, held: 40n });
        assert.equal((await store.listUsage({ accountId: x.accountId, limit: 10 })).data.length, 0);
        assert.equal(await store.settle({ hold: h, cost: 30n, usage: usage(h, { cost: 30n }) }), 30n);
        await assertBooks(x.accountId, { balance: 70n, held: 0n });
      });
    });

    describe('usage', () => {
      test('recordUsage stores every field as given', async () => {
        const { accountId, keyId } = await fixture(0n);
        const rec = usage({ id: uniq('trace'), accountId, keyId }, {
          model: 'org/model-x',
          provider: null,
          upstreamModel: null,
          promptTokens: 123,
          completionTokens: 0,
          cachedTokens: 45,
          cost: 0n,
          status: 403,
          errorType: 'model_access_denied',
          stream: true,
          latencyMs: 7,
          ttftMs: 3,
          createdAt: 1_700_000_000_123,
        });
        await store.recordUsage(rec);
        assert.deepEqual((await store.listUsage({ accountId, limit: 10 })).data, [rec]);
      });

      test('pruneUsage deletes records made before the cut, oldest first, at most `limit` at a time; the ledger stays', async () => {
        const { accountId, keyId } = await fixture(0n);
        // Far older than any other test's records, so that pruning touches only these.
        const old1 = usage({ id: uniq('trace'), accountId, keyId }, { createdAt: 1_000_000_000_000 });
        const old2 = usage({ id: uniq('trace'), accountId, keyId }, { createdAt: 1_000_000_000_500 });
        const kept = usage({ id: uniq('trace'), accountId, keyId }, { createdAt: 1_000_000_002_000 });
        for (const r of [old2, kept, old1]) await store.recordUsage(r);
        const totals = await store.ledgerTotals(accountId);
        assert.equal(await store.pruneUsage(1_000_000_001_000, 1), 1);
        assert.deepEqual((await store.listUsage({ accountId, limit: 10 })).data.map((r) => r.traceId).sort(), [old2.traceId, kept.traceId].sort(), 'the oldest went first');
        assert.equal(await store.pruneUsage(1_000_000_001_000, 10), 1);
        assert.equal(await store.pruneUsage(1_000_000_001_000, 10), 0);
        assert.deepEqual((await store.listUsage({ accountId, limit: 10 })).data, [kept]);
        assert.deepEqual(await store.ledgerTotals(accountId), totals);
        // Summaries count what is kept, over whole days (daily totals) and partial ones (records) alike.
        for (const [from, to] of [[0, 2_000_000_000_000], [999_999_999_000, 1_000_000_003_000]] as const) {
          const rows = await store.summarizeUsage({ groupBy: 'account', from, to, accountId });
          assert.deepEqual(rows.map((r) => r.requests), [1], `summary over [${from}, ${to})`);
        }
      });

      test('listUsage filters by account, key and time, newest first', async () => {
        const a = await fixture(0n);
        const a2 = await store.createKey(newKeyInput(a.accountId));
        const b = await fixture(0n);
        // Later than every record written so far, in insertion order: "newest first" means the same
        // whether an implementation orders by insertion or by createdAt.
        const t0 = Date.now() + 1000;
        const recs: UsageRecord[] = [];
        for (let i = 0; i < 9; i++) {
          const who = i % 3 === 0 ? a : i % 3 === 1 ? { accountId: a.accountId, keyId: a2.id } : b;
          const r = usage({ id: uniq('trace'), ...who }, { createdAt: t0 + i * 1000 });
          await store.recordUsage(r);
          recs.push(r);
        }
        const ids = (rs: UsageRecord[]): string[] => rs.map((r) => r.traceId);
        const newestFirst = (rs: UsageRecord[]): string[] => ids([...rs].reverse());

        const ofA = await store.listUsage({ accountId: a.accountId, limit: 100 });
        assert.deepEqual(ids(ofA.data), newestFirst(recs.filter((r) => r.accountId === a.accountId)));
        assert.equal(ofA.nextCursor, null);

        const ofKey = await store.listUsage({ keyId: a2.id, limit: 100 });
        assert.deepEqual(ids(ofKey.data), newestFirst(recs.filter((r) => r.keyId === a2.id)));

        const both = await store.listUsage({ accountId: a.accountId, keyId: a.keyId, limit: 100 });
        assert.deepEqual(ids(both.data), newestFirst(recs.filter((r) => r.keyId === a.keyId)));

        const mismatched = await store.listUsage({ accountId: b.accountId, keyId: a.keyId, limit: 100 });
        assert.deepEqual(mismatched.data, []);

        // from is inclusive, to is exclusive.
        const window = await store.listUsage({ accountId: a.accountId, from: t0 + 3000, to: t0 + 7000, limit: 100 });
        assert.deepEqual(
          ids(window.data),
          newestFirst(recs.filter((r) => r.accountId === a.accountId && r.createdAt >= t0 + 3000 && r.createdAt < t0 + 7000)),
        );
        assert.deepEqual(ids(window.data).length, 3); // i = 3, 4, 6

        const fromOnly = await store.listUsage({ keyId: b.keyId, from: t0 + 5000, limit: 100 });
        assert.deepEqual(ids(fromOnly.data), newestFirst(recs.filter((r) => r.keyId === b.keyId && r.createdAt >= t0 + 5000)));
        const toOnly = await store.listUsage({ keyId: b.keyId, to: t0 + 4000, limit: 100 });
        assert.deepEqual(ids(toOnly.data), newestFirst(recs.filter((r) => r.keyId === b.keyId && r.createdAt < t0 + 4000)));

        // Without filters the newest records of the whole store come first.
        const all = await store.listUsage({ limit: 3 });
        assert.deepEqual(ids(all.data), newestFirst(recs.slice(-3)));
      });

      test('listUsage pages with cursors: newest first, no duplicates, nothing missing, null cursor on the last page', async () => {
        const { accountId, keyId } = await fixture(0n);
        const recs: UsageRecord[] = [];
        const t0 = Date.now() + 20_000;
        for (let i = 0; i < 23; i++) {
          // Several records share a timestamp: paging must not depend on createdAt being unique.
          const r = usage({ id: uniq('trace'), accountId, keyId }, { createdAt: t0 + Math.floor(i / 4) });
          await store.recordUsage(r);
          recs.push(r);
        }
        const expected = recs.map((r) => r.traceId).reverse();
        for (const limit of [1, 5, 7, 22, 23, 24, 100]) {
          const seen: string[] = [];
          let cursor: string | undefined;
          let pages = 0;
          for (;;) {
            const page = await store.listUsage({ accountId, limit, ...(cursor === undefined ? {} : { cursor }) });
            pages++;
            assert.ok(page.data.length <= limit);
            seen.push(...page.data.map((r) => r.traceId));
            if (page.nextCursor === null) break;
            assert.equal(page.data.length, limit, 'only the last page may be short');
            assert.equal(typeof page.nextCursor, 'string');
            cursor = page.nextCursor;
            assert.ok(pages <= 30, 'paging terminates');
          }
          assert.deepEqual(seen, expected, `limit ${limit}: every record once, newest first`);
          assert.equal(pages, Math.max(1, Math.ceil(23 / limit)), `limit ${limit}: no empty trailing page`);
        }
      });

      test('a cursor keeps its place while new records arrive', async () => {
        const { accountId, keyId } = await fixture(0n);
        const old: string[] = [];
        for (let i = 0; i < 6; i++) {
          const r = usage({ id: uniq('trace'), accountId, keyId });
          await store.recordUsage(r);
          old.push(r.traceId);
        }
        const p1 = await store.listUsage({ accountId, limit: 3 });
        assert.deepEqual(p1.data.map((r) => r.traceId), old.slice(3).reverse());
        await store.recordUsage(usage({ id: uniq('trace'), accountId, keyId }));
        const p2 = await store.listUsage({ accountId, limit: 3, cursor: p1.nextCursor! });
        assert.deepEqual(p2.data.map((r) => r.traceId), old.slice(0, 3).reverse());
        assert.equal(p2.nextCursor, null);
      });

      test('cursors combine with the time filter', async () => {
        const { accountId, keyId } = await fixture(0n);
        const t0 = Date.now() + 40_000;
        const recs: UsageRecord[] = [];
        for (let i = 0; i < 10; i++) {
          const r = usage({ id: uniq('trace'), accountId, keyId }, { createdAt: t0 + i });
          await store.recordUsage(r);
          recs.push(r);
        }
        const want = recs.filter((r) => r.createdAt >= t0 + 2 && r.createdAt < t0 + 9).map((r) => r.traceId).reverse();
        const got: string[] = [];
        let cursor: string | undefined;
        do {
          const page = await store.listUsage({ accountId, from: t0 + 2, to: t0 + 9, limit: 3, ...(cursor ? { cursor } : {}) });
          got.push(...page.data.map((r) => r.traceId));
          cursor = page.nextCursor ?? undefined;
        } while (cursor !== undefined);
        assert.deepEqual(got, want);
      });

      test('spendSince sums the charged costs of an account, or of one key, since a time', async () => {
        const { accountId, keyId } = await fixture(10_000n);
        const other = await store.createKey(newKeyInput(accountId));
        const stranger = await fixture(10_000n);
        const now = Date.now();
        const charge = async (who: { accountId: string; keyId: string }, cost: bigint, createdAt: number): Promise<void> => {
          const h = hold(who.accountId, who.keyId, cost);
          assert.equal(await store.placeHold(h), true);
          await store.settle({ hold: h, cost, usage: usage(h, { cost, createdAt }) });
        };
        await charge({ accountId, keyId }, 100n, now - 3_600_000); // an hour ago
        await charge({ accountId, keyId }, 20n, now);
        await charge({ accountId, keyId: other.id }, 3n, now);
        await charge(stranger, 999n, now);
        await store.recordUsage(usage({ id: uniq('t'), accountId, keyId }, { createdAt: now, status: 429, errorType: 'rate_limit_error' }));

        assert.equal(await store.spendSince(accountId, now - 60_000), 23n);
        assert.equal(await store.spendSince(accountId, now - 7_200_000), 123n);
        assert.equal(await store.spendSince(accountId, now - 60_000, keyId), 20n);
        assert.equal(await store.spendSince(accountId, now - 60_000, other.id), 3n);
        assert.equal(await store.spendSince(accountId, now + 60_000), 0n);
        assert.equal(await store.spendSince(stranger.accountId, 0), 999n);
        assert.equal(typeof (await store.spendSince(uniq('acct_missing'), 0)), 'bigint');
        assert.equal(await store.spendSince(uniq('acct_missing'), 0), 0n);
      });

      test('spendSince counts what was charged, not what was asked', async () => {
        const { accountId, keyId } = await fixture(10n);
        const h = hold(accountId, keyId, 10n);
        assert.equal(await store.placeHold(h), true);
        assert.equal(await store.settle({ hold: h, cost: 500n, usage: usage(h, { cost: 500n }) }), 10n);
        assert.equal(await store.spendSince(accountId, 0), 10n);
        assert.equal((await store.listUsage({ accountId, limit: 1 })).data[0]!.cost, 10n);
      });
    });

    describe('usage summaries', () => {
      const GROUPINGS = ['day', 'model', 'key', 'account'] as const;

      test('summarizeUsage: from inclusive, to exclusive; UTC days ascending; others by cost; 499 and 500 count as errors; exact costs', async () => {
        const a = await fixture(0n);
        const k2 = await store.createKey(newKeyInput(a.accountId));
        const b = await fixture(0n);
        const t0 = quietWindow(3);
        const big = 2n ** 60n; // past 2^53: summed exactly
        const recs = [
          usage({ id: uniq('trace'), ...a }, { createdAt: t0, model: 'm-1', cost: big, status: 200 }),
          usage({ id: uniq('trace'), ...a }, { createdAt: t0 + DAY - 1, model: 'm-2', cost: 5n, status: 499, errorType: 'client_closed' }),
          usage({ id: uniq('trace'), accountId: a.accountId, keyId: k2.id }, { createdAt: t0 + DAY, model: 'm-1', cost: big + 1n, status: 500 }),
          usage({ id: uniq('trace'), ...b }, { createdAt: t0 + DAY + 5, model: 'm-2', cost: 7n, status: 402, errorType: 'insufficient_balance' }),
          usage({ id: uniq('trace'), ...b }, { createdAt: t0 + 2 * DAY, model: 'm-2', cost: 1n, status: 200 }),
        ];
        await Promise.all(recs.map((r) => store.recordUsage(r)));

        const byDay = await store.summarizeUsage({ groupBy: 'day', from: t0, to: t0 + 2 * DAY });
        const d0 = new Date(t0).toISOString().slice(0, 10);
        const d1 = new Date(t0 + DAY).toISOString().slice(0, 10);
        assert.deepEqual(byDay.map((r) => [r.group, r.requests, r.errors, r.cost]), [
          [d0, 2, 1, big + 5n],
          [d1, 2, 2, big + 8n],
        ]);
        assert.equal(byDay[0]!.promptTokens, 20);
        assert.equal(byDay[0]!.reasoningTokens, 8);

        const byModel = await store.summarizeUsage({ groupBy: 'model', from: t0 + 1, to: t0 + 3 * DAY });
        assert.deepEqual(byModel.map((r) => [r.group, r.requests, r.cost]), [['m-1', 1, big + 1n], ['m-2', 3, 13n]]);

        const byKey = await store.summarizeUsage({ groupBy: 'key', from: t0, to: t0 + 3 * DAY, accountId: a.accountId });
        assert.deepEqual(byKey.map((r) => [r.group, r.cost]), [[a.keyId, big + 5n], [k2.id, big + 1n]]);

        assert.deepEqual(await store.summarizeUsage({ groupBy: 'account', from: t0 + 3 * DAY, to: t0 + 4 * DAY }), []);
        assert.deepEqual(await store.summarizeUsage({ groupBy: 'day', from: t0 + DAY, to: t0 + DAY }), [], 'an empty range');
        assert.deepEqual(await store.summarizeUsage({ groupBy: 'day', from: t0 + DAY, to: t0 }), [], 'a reversed range');
        assert.deepEqual(await store.summarizeUsage({ groupBy: 'model', from: t0, to: t0 + 3 * DAY, accountId: b.accountId, keyId: a.keyId }), []);
      });

      test('property: summaries equal the sums of the records, for every grouping, filter and range, aligned to days or not', async () => {
        const statuses = [200, 200, 200, 400, 402, 403, 429, 499, 500, 502, 503];
        const record = fc.record({
          who: fc.integer({ min: 0, max: 2 }),
          model: fc.constantFrom('m-a', 'm-b', 'org/m-c'),
          at: fc.integer({ min: 0, max: 5 * DAY - 1 }),
          status: fc.constantFrom(...statuses),
          tokens: fc.array(fc.nat({ max: 1_000_000 }), { minLength: 5, maxLength: 5 }),
          cost: fc.bigInt({ min: 0n, max: 10n ** 15n }),
        });
        const bound = fc.oneof(fc.integer({ min: -1, max: 6 }).map((d) => d * DAY), fc.integer({ min: -DAY, max: 6 * DAY }));
        const query = fc.record({ groupBy: fc.constantFrom(...GROUPINGS), filter: fc.constantFrom('none', 'account', 'key', 'both'), from: bound, to: bound });
        await fc.assert(
          fc.asyncProperty(fc.array(record, { maxLength: 40 }), fc.array(query, { minLength: 1, maxLength: 8 }), async (specs, queries) => {
            const a = await fixture(0n);
            const a2 = await store.createKey(newKeyInput(a.accountId));
            const b = await fixture(0n);
            const owners = [a, { accountId: a.accountId, keyId: a2.id }, b];
            const t0 = quietWindow(6);
            const recs = specs.map((s) => {
              const [p, c, cached, write, reasoning] = s.tokens as [number, number, number, number, number];
              return usage({ id: uniq('trace'), ...owners[s.who]! }, {
                model: s.model, createdAt: t0 + s.at, status: s.status, cost: s.cost,
                promptTokens: p, completionTokens: c, cachedTokens: cached, cacheWriteTokens: write, reasoningTokens: reasoning,
              });
            });
            await Promise.all(recs.map((r) => store.recordUsage(r)));
            for (const x of queries) {
              const q: UsageSummaryQuery = {
                groupBy: x.groupBy,
                from: t0 + x.from,
                to: t0 + x.to,
                ...(x.filter === 'account' || x.filter === 'both' ? { accountId: a.accountId } : {}),
                ...(x.filter === 'key' || x.filter === 'both' ? { keyId: a2.id } : {}),
              };
              assert.deepEqual(await store.summarizeUsage(q), expectedSummary(recs, q), JSON.stringify(x));
            }
          }),
          { numRuns: 30 },
        );
      });
    });

    describe('settings', () => {
      test('getSetting is null until set; setSetting overwrites', async () => {
        const name = uniq('setting');
        assert.equal(await store.getSetting(name), null);
        await store.setSetting(name, 'one');
        assert.equal(await store.getSetting(name), 'one');
        await store.setSetting(name, 'two');
        assert.equal(await store.getSetting(name), 'two');
      });
    });

    describe('migrate', () => {
      test('migrate() on a migrated store is harmless', async () => {
        const a = await store.createAccount({ name: 'm', credit: 5n });
        await store.migrate();
        await store.migrate();
        assert.equal((await store.getAccount(a.id))!.balance, 5n);
      });
    });

    describe('response origins (previous_response_id routing)', () => {
      test('an id remembered is found with its deployment until it expires; an unknown id is not', async () => {
        const id = uniq('resp');
        const now = Date.now();
        await store.rememberResponse(id, { provider: 'native-a', upstreamModel: 'gpt-x', accountId: 'acct_a' }, now + 1000);
        assert.deepEqual(await store.findResponse(id, now), { provider: 'native-a', upstreamModel: 'gpt-x', accountId: 'acct_a' });
        assert.deepEqual(await store.findResponse(id, now + 999), { provider: 'native-a', upstreamModel: 'gpt-x', accountId: 'acct_a' });
        assert.equal(await store.findResponse(id, now + 1000), null);
        assert.equal(await store.findResponse(uniq('resp'), now), null);
      });

      test('remembering an id again replaces its deployment and expiry', async () => {
        const id = uniq('resp');
        const now = Date.now();
        await store.rememberResponse(id, { provider: 'a', upstreamModel: 'm1', accountId: 'acct_1' }, now + 10);
        await store.rememberResponse(id, { provider: 'b', upstreamModel: 'm2', accountId: 'acct_2' }, now + 100_000);
        assert.deepEqual(await store.findResponse(id, now + 50), { provider: 'b', upstreamModel: 'm2', accountId: 'acct_2' });
      });

      test('the account a response belongs to comes back with it; an entry without one comes back with null', async () => {
        const [mine, theirs, none] = [uniq('resp'), uniq('resp'), uniq('resp')];
        const until = Date.now() + 60_000;
        await store.rememberResponse(mine, { provider: 'p', upstreamModel: 'm', accountId: 'acct_mine' }, until);
        await store.rememberResponse(theirs, { provider: 'p', upstreamModel: 'm', accountId: 'acct_theirs' }, until);
        await store.rememberResponse(none, { provider: 'p', upstreamModel: 'm', accountId: null }, until);
        assert.equal((await store.findResponse(mine, Date.now()))?.accountId, 'acct_mine');
        assert.equal((await store.findResponse(theirs, Date.now()))?.accountId, 'acct_theirs');
        assert.deepEqual(await store.findResponse(none, Date.now()), { provider: 'p', upstreamModel: 'm', accountId: null });
      });

      test('ids remembered concurrently are each found', async () => {
        const ids = Array.from({ length: 20 }, () => uniq('resp'));
        const until = Date.now() + 60_000;
        await Promise.all(ids.map((id, i) => store.rememberResponse(id, { provider: `p${i}`, upstreamModel: 'm', accountId: `acct_${i}` }, until)));
        for (const [i, id] of ids.entries()) assert.deepEqual(await store.findResponse(id, Date.now()), { provider: `p${i}`, upstreamModel: 'm', accountId: `acct_${i}` });
      });
    });

    if (opts.sharedDatabase === true) {
      describe('a second connection to the same database', () => {
        let second: Store;
        before(async () => {
          second = await open();
        });
        after(async () => {
          await second.close();
        });

        test('sees what the first wrote, and the other way round', async () => {
          const a = await store.createAccount({ name: 'shared', credit: 42n });
          const k = await store.createKey(newKeyInput(a.id, { models: ['demo'] }));
          await store.setSetting('shared-setting', 'v');
          assert.deepEqual(await second.getAccount(a.id), await store.getAccount(a.id));
          assert.deepEqual(await second.getKeyByHash(k.hash), k);
          assert.equal(await second.getSetting('shared-setting'), 'v');
          await second.credit({ accountId: a.id, amount: 8n, note: null, idempotencyKey: 'x' });
          assert.equal((await store.getAccount(a.id))!.balance, 50n);
          assert.equal((await store.credit({ accountId: a.id, amount: 8n, note: null, idempotencyKey: 'x' })).kind, 'replayed');
        });

        /**
         * The first store's revision once it differs from `r`, or `r` after a second. A change by
         * another connection may reach a store asynchronously (PostgreSQL delivers NOTIFY after the
         * commit); a second is the most any replica may take to see a freeze (SPEC §9).
         */
        async function revisionAfter(r: number): Promise<number> {
          const deadline = Date.now() + 1000;
          while (store.revision() === r && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
          return store.revision();
        }

        test("a key change through one moves the other's revision (the CLI and a running server)", async () => {
          const a = await store.createAccount({ name: 'shared', credit: 0n });
          const k = await store.createKey(newKeyInput(a.id));
          const cases: [string, () => Promise<unknown>][] = [
            ['freeze', () => second.updateKey(k.id, { frozen: true })],
            ['unfreeze', () => second.updateKey(k.id, { frozen: false })],
            ['revoke', () => second.revokeKey(k.id)],
          ];
          for (const [what, change] of cases) {
            const r = store.revision();
            assert.equal(store.revision(), r, 'stable while nothing changes');
            await change();
            assert.notEqual(await revisionAfter(r), r, `revision moved after ${what} by the other connection`);
          }
          const live = await store.getKeyByHash(k.hash);
          assert.ok(live === null || live.revokedAt !== null);
          const r = store.revision();
          await second.updateAccount(a.id, { limits: { rpm: 1 } });
          assert.notEqual(await revisionAfter(r), r, 'revision moved after an account limit change by the other connection');
        });

        test('holds placed through both connections never exceed the balance', async () => {
          const { accountId, keyId } = await fixture(100n);
          const tries = Array.from({ length: 30 }, (_, i) => (i % 2 === 0 ? store : second).placeHold(hold(accountId, keyId, 7n)));
          const ok = (await Promise.all(tries)).filter(Boolean).length;
          assert.equal(ok, 14);
          await assertBooks(accountId, { balance: 100n, held: 98n });
          await store.recoverHolds();
        });

        test('planned holds through both connections see each other', async () => {
          const { accountId, keyId } = await fixture(100n);
          const tries = Array.from({ length: 30 }, (_, i) => {
            const { amount: _a, ...h } = hold(accountId, keyId, 0n);
            return (i % 2 === 0 ? store : second).placePlannedHold(h, (a) => (a >= 7n ? 7n : null));
          });
          const ok = (await Promise.all(tries)).filter((r) => r !== null && 'amount' in r).length;
          assert.equal(ok, 14);
          await assertBooks(accountId, { balance: 100n, held: 98n });
          await store.recoverHolds();
        });

        test('holds of a live second store are never released by recoverHolds; those of a closed one are, once each, as interrupted', async () => {
          const x = await fixture(100n);
          const y = await fixture(100n);
          const live = hold(y.accountId, y.keyId, 30n);
          assert.equal(await second.placeHold(live), true);
          const gone = await open();
          const h1 = hold(x.accountId, x.keyId, 40n, { model: 'glm-5.1', stream: true });
          const h2 = hold(x.accountId, x.keyId, 10n);
          const h3 = hold(y.accountId, y.keyId, 50n);
          for (const h of [h1, h2, h3]) assert.equal(await gone.placeHold(h), true);
          assert.equal(await store.recoverHolds(), 0, 'the owner of these holds is alive');
          await assertBooks(x.accountId, { balance: 100n, held: 50n });
          await gone.close();

          const n = await store.recoverHolds();
          assert.ok(n >= 3, `recovered ${n} holds, expected at least 3`);
          await assertBooks(x.accountId, { balance: 100n, held: 0n });
          await assertBooks(y.accountId, { balance: 100n, held: 30n }); // the live hold stays
          assert.deepEqual(await store.ledgerTotals(x.accountId), { credits: 100n, debits: 0n });
          const recs = [...(await store.listUsage({ accountId: x.accountId, limit: 100 })).data, ...(await store.listUsage({ accountId: y.accountId, limit: 100 })).data];
          assert.equal(recs.length, 3);
          for (const h of [h1, h2, h3]) {
            const r = recs.find((u) => u.traceId === h.id);
            assert.ok(r, `usage record for hold ${h.id}`);
            assert.equal(r.errorType, 'interrupted');
            assert.equal(r.cost, 0n);
            assert.equal(r.accountId, h.accountId);
            assert.equal(r.keyId, h.keyId);
            assert.equal(r.model, h.model);
            assert.equal(r.stream, h.stream);
            assert.ok(r.status >= 500, 'an interrupted request is a server-side failure');
          }
          assert.equal(await second.recoverHolds(), 0, 'nothing left to recover, from either connection');
          // The money is available again, and the live hold settles as usual.
          assert.equal(await store.placeHold(hold(x.accountId, x.keyId, 100n)), true);
          assert.equal(await second.settle({ hold: live, cost: 20n, usage: usage(live, { cost: 20n }) }), 20n);
          await assertBooks(y.accountId, { balance: 80n, held: 0n });
        });

        test('a settlement that comes after its hold was released as interrupted takes the place of the interrupted record', async () => {
          const x = await fixture(100n);
          const gone = await open();
          const h = hold(x.accountId, x.keyId, 40n);
          assert.equal(await gone.placeHold(h), true);
          await gone.close();
          assert.ok((await store.recoverHolds()) >= 1);
          // The request was still running after all (its process was only slow to renew): one record, the real one.
          assert.equal(await store.settle({ hold: h, cost: 25n, usage: usage(h, { cost: 25n }) }), 25n);
          const recs = (await store.listUsage({ accountId: x.accountId, limit: 10 })).data;
          assert.equal(recs.length, 1);
          assert.equal(recs[0]!.traceId, h.id);
          assert.equal(recs[0]!.errorType, null);
          assert.equal(recs[0]!.cost, 25n);
          await assertBooks(x.accountId, { balance: 75n, held: 0n });
          // The summary counts the request once, as settled, not as interrupted.
          const summary = await store.summarizeUsage({ groupBy: 'account', from: 0, to: Date.now() + DAY, accountId: x.accountId });
          assert.deepEqual(summary.map((r) => [r.group, r.requests, r.errors, r.cost]), [[x.accountId, 1, 0, 25n]]);
        });

        test('a response remembered through one connection is found through the other (another replica)', async () => {
          const id = uniq('resp');
          await store.rememberResponse(id, { provider: 'native-a', upstreamModel: 'gpt-x', accountId: 'acct_a' }, Date.now() + 60_000);
          assert.deepEqual(await second.findResponse(id, Date.now()), { provider: 'native-a', upstreamModel: 'gpt-x', accountId: 'acct_a' });
        });

        test('data survives closing and reopening', async () => {
          const a = await store.createAccount({ name: 'durable', credit: 77n });
          const k = await store.createKey(newKeyInput(a.id));
          const h = hold(a.id, k.id, 7n);
          assert.equal(await store.placeHold(h), true);
          await store.settle({ hold: h, cost: 7n, usage: usage(h, { cost: 7n }) });
          const reopened = await open();
          try {
            assert.deepEqual(await reopened.getAccount(a.id), await store.getAccount(a.id));
            assert.deepEqual(await reopened.getKey(k.id), k);
            assert.deepEqual(await reopened.ledgerTotals(a.id), { credits: 77n, debits: 7n });
            assert.deepEqual((await reopened.listUsage({ accountId: a.id, limit: 10 })).data.map((u) => u.traceId), [h.id]);
          } finally {
            await reopened.close();
          }
        });
      });
    }
  });
}

