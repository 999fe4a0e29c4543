import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { configSchema } from '../src/config/schema.js';
import { isGatewayError } from '../src/errors.js';
import { openStore } from '../src/store/open.js';
import { PG_MIGRATIONS } from '../src/store/postgres/migrations.js';
import type { Hold, NewHold, Store } from '../src/store/types.js';
import { backgroundDone, startTestGateway } from './helpers/gateway.js';
import { createTestDatabase, startPgRelay, type PgRelay, type TestDatabase } from './helpers/postgres.js';
import { CLI, exited, freePort } from './helpers/process.js';
import { storeContract } from './helpers/store-contract.js';

const databases: TestDatabase[] = [];
/** A fresh database of this run's own, dropped when the file's tests end. */
async function freshDatabase(): Promise<TestDatabase> {
  const db = await createTestDatabase();
  databases.push(db);
  return db;
}
after(async () => {
  for (const db of databases) await db.drop();
});

let contractDb: TestDatabase;
before(async () => {
  contractDb = await freshDatabase();
});

// Every call opens another store on the same database: the second-connection tests run too.
storeContract('PostgreSQL', () => openStore(contractDb.url), { sharedDatabase: true });

const storeUnavailable = (e: unknown): boolean => isGatewayError(e) && e.code === 'store_unavailable' && e.status === 503;

async function until(what: string, ok: () => Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function query<T extends pg.QueryResultRow>(url: string, sql: string, values: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<T>(sql, values)).rows;
  } finally {
    await c.end();
  }
}

function newHold(accountId: string, keyId: string): NewHold {
  return { id: `trace-${randomUUID()}`, accountId, keyId, model: 'demo', stream: false, createdAt: Date.now() };
}

async function fixture(store: Store, credit: bigint): Promise<{ accountId: string; keyId: string }> {
  const a = await store.createAccount({ name: 'pg', credit });
  const k = await store.createKey({ accountId: a.id, name: null, prefix: 'sk-test', hash: randomUUID(), models: null, limits: null, expiresAt: null });
  return { accountId: a.id, keyId: k.id };
}

/** A store reaching the contract database through a relay, with an account of 100 units and a hold of 40 on it; both closed after `body`. */
async function throughRelay(
  opts: { lockTimeoutMs?: number; connectTimeoutMs: number },
  body: (t: { store: Store; relay: PgRelay; accountId: string; keyId: string; h: Hold }) => Promise<void>,
): Promise<void> {
  const relay = await startPgRelay();
  const store = await openStore(relay.url(contractDb.name), opts);
  try {
    const { accountId, keyId } = await fixture(store, 100n);
    const h: Hold = { ...newHold(accountId, keyId), amount: 40n };
    assert.equal(await store.placeHold(h), true);
    await body({ store, relay, accountId, keyId, h });
  } finally {
    await store.close();
    await relay.close();
  }
}

describe('PostgreSQL specifics', () => {
  test('three stores opening a fresh database together apply each migration exactly once; opening again applies nothing', async () => {
    const db = await freshDatabase();
    const stores = await Promise.all([0, 1, 2].map(() => openStore(db.url)));
    try {
      const applied = (await Promise.all(stores.map((s) => s.migrate()))).flat();
      assert.deepEqual(
        applied.map((m) => m.version).sort((a, b) => a - b),
        PG_MIGRATIONS.map((m) => m.version),
        'each version applied by exactly one of the three',
      );
      const rows = await query<{ version: number }>(db.url, 'SELECT version FROM schema_migrations ORDER BY version');
      assert.deepEqual(rows.map((r) => r.version), PG_MIGRATIONS.map((m) => m.version));
    } finally {
      for (const s of stores) await s.close();
    }
    const again = await openStore(db.url);
    try {
      assert.deepEqual(await again.migrate(), []);
      assert.equal((await query(db.url, 'SELECT version FROM schema_migrations')).length, PG_MIGRATIONS.length);
    } finally {
      await again.close();
    }
  });

  test('store.pool_size and store.connect_timeout_ms: defaults 10 and 5000, positive whole numbers', () => {
    const store = configSchema.parse({}).store;
    assert.equal(store.pool_size, 10);
    assert.equal(store.connect_timeout_ms, 5000);
    assert.equal(configSchema.parse({ store: { pool_size: 40, connect_timeout_ms: 250 } }).store.pool_size, 40);
    for (const bad of [{ pool_size: 0 }, { pool_size: 2.5 }, { connect_timeout_ms: 0 }, { connect_timeout_ms: 'soon' }]) {
      assert.throws(() => configSchema.parse({ store: bad }), JSON.stringify(bad));
    }
  });

  test('migration versions are unique and ascending', () => {
    const versions = PG_MIGRATIONS.map((m) => m.version);
    assert.deepEqual(versions, [...versions].sort((x, y) => x - y));
    assert.equal(new Set(versions).size, versions.length);
  });

  describe('three replicas on one database', () => {
    let stores: Store[];
    before(async () => {
      stores = await Promise.all([0, 1, 2].map(() => openStore(contractDb.url)));
    });
    after(async () => {
      for (const s of stores) await s.close();
    });

    test('planned holds racing through three stores never hold more than the balance', async () => {
      const { accountId, keyId } = await fixture(stores[0]!, 1000n);
      const results = await Promise.all(
        Array.from({ length: 150 }, (_, i) => stores[i % 3]!.placePlannedHold(newHold(accountId, keyId), (a) => (a >= 10n ? 10n : null))),
      );
      assert.equal(results.filter((r) => r !== null && 'amount' in r).length, 100);
      assert.ok(results.every((r) => r !== null && ('amount' in r ? r.amount === 10n : r.available === 0n)));
      const a = await stores[1]!.getAccount(accountId);
      assert.equal(a!.held, 1000n);
      assert.equal(a!.balance, 1000n);
    });

    test('"half of what is left" through three stores: every plan saw every hold placed before it', async () => {
      const { accountId, keyId } = await fixture(stores[0]!, 1n << 20n);
      const results = await Promise.all(
        Array.from({ length: 12 }, (_, i) => stores[i % 3]!.placePlannedHold(newHold(accountId, keyId), (a) => (a >= 2n ? a / 2n : null))),
      );
      const amounts = results.map((r) => (r !== null && 'amount' in r ? r.amount : -1n)).sort((x, y) => (x > y ? -1 : x < y ? 1 : 0));
      assert.deepEqual(amounts, Array.from({ length: 12 }, (_, i) => (1n << 20n) >> BigInt(i + 1)));
    });

    test('fixed holds, settlements and credits racing through three stores keep the books exact', async () => {
      const { accountId, keyId } = await fixture(stores[0]!, 5000n);
      const ops = Array.from({ length: 60 }, async (_, i) => {
        const s = stores[i % 3]!;
        const h: Hold = { ...newHold(accountId, keyId), amount: 100n };
        if (!(await s.placeHold(h))) return 0n;
        if (i % 10 === 0) await stores[(i + 1) % 3]!.credit({ accountId, amount: 7n, note: null, idempotencyKey: null });
        return stores[(i + 2) % 3]!.settle({ hold: h, cost: BigInt(i), usage: usageOf(h, BigInt(i)) });
      });
      const charged = (await Promise.all(ops)).reduce((x, y) => x + y, 0n);
      const a = (await stores[0]!.getAccount(accountId))!;
      const t = await stores[1]!.ledgerTotals(accountId);
      assert.equal(a.held, 0n);
      assert.equal(t.debits, charged);
      assert.equal(t.credits - t.debits, a.balance);
      const recs = await stores[2]!.listUsage({ accountId, limit: 1000 });
      assert.equal(recs.data.reduce((x, u) => x + u.cost, 0n), charged, 'usage costs sum to the debits');
    });
  });

  test('a replica killed with a hold out: its hold stays while its lease is renewed, then is released as interrupted once, by another replica', async () => {
    const store = await openStore(contractDb.url, { leaseMs: 300 });
    const { accountId, keyId } = await fixture(store, 100n);
    const mine: Hold = { ...newHold(accountId, keyId), amount: 20n };
    assert.equal(await store.placeHold(mine), true);
    const theirs = `trace-${randomUUID()}`;
    const script = fileURLToPath(new URL('./fixtures/postgres/hold-and-wait.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', script, contractDb.url, accountId, keyId, theirs, '50', '300'], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const said = await new Promise<string>((resolve, reject) => {
        child.stdout!.once('data', (d: Buffer) => resolve(d.toString().trim()));
        child.once('exit', (code) => reject(new Error(`replica exited ${code}`)));
      });
      assert.equal(said, 'held');
      const lease = async (): Promise<bigint | null> => {
        const rows = await query<{ expires_at: string }>(contractDb.url, 'SELECT l.expires_at FROM leases l JOIN holds h ON h.owner = l.owner WHERE h.id = $1', [theirs]);
        return rows.length === 0 ? null : BigInt(rows[0]!.expires_at);
      };
      const first = await lease();
      assert.ok(first !== null, 'the replica holds a lease');
      await until('the replica to renew its lease', async () => ((await lease()) ?? 0n) > first);
      assert.equal(await store.recoverHolds(), 0, 'a live replica keeps its hold');
      assert.equal((await store.getAccount(accountId))!.held, 70n);
    } finally {
      child.kill('SIGKILL');
      await exited(child);
    }
    // Its lease runs out within 300 ms; this store's own sweep (every 100 ms) or a recoverHolds releases the hold.
    await until('the dead replica’s hold to be released', async () => {
      await store.recoverHolds();
      return (await store.getAccount(accountId))!.held === 20n;
    });
    const recs = (await store.listUsage({ accountId, limit: 10 })).data;
    assert.equal(recs.length, 1, 'one record for the interrupted request');
    assert.equal(recs[0]!.traceId, theirs);
    assert.equal(recs[0]!.errorType, 'interrupted');
    assert.equal(recs[0]!.status, 500);
    assert.equal(recs[0]!.cost, 0n);
    assert.equal(recs[0]!.stream, true);
    assert.equal(await store.settle({ hold: mine, cost: 5n, usage: usageOf(mine, 5n) }), 5n, 'the live hold settles as usual');
    assert.deepEqual(await store.ledgerTotals(accountId), { credits: 100n, debits: 5n });
    await store.close();
  });

  test('a server nobody listens at: opening answers store_unavailable (503) within the connect timeout, without hanging', async () => {
    const port = await freePort();
    const started = Date.now();
    await assert.rejects(
      openStore(`postgres://postgres:secret-pw@127.0.0.1:${port}/test`, { connectTimeoutMs: 1000 }),
      (e: unknown) => storeUnavailable(e) && /PostgreSQL cannot be reached: .*ECONNREFUSED/.test((e as Error).message) && !(e as Error).message.includes('secret-pw'),
    );
    assert.ok(Date.now() - started < 5000);
  });

  test('the database taken away and given back: 503 meanwhile, the settlement made meanwhile is kept and written once it is back', async () => {
    await throughRelay({ connectTimeoutMs: 1000 }, async ({ store, relay, accountId, keyId, h }) => {
      await relay.cut();
      await assert.rejects(store.getAccount(accountId), storeUnavailable);
      await assert.rejects(store.placeHold({ ...newHold(accountId, keyId), amount: 1n }), storeUnavailable);
      await assert.rejects(store.settle({ hold: h, cost: 30n, usage: usageOf(h, 30n) }), storeUnavailable);
      // Changes by others cannot be heard now: the revision moves on every read, so nothing stays cached.
      await until('the change feed to notice', async () => store.revision() !== store.revision());

      await relay.restore();
      await until('the kept settlement to be written', async () => {
        const a = await store.getAccount(accountId).catch(() => null);
        return a !== null && a.held === 0n;
      });
      assert.deepEqual(await store.ledgerTotals(accountId), { credits: 100n, debits: 30n });
      const recs = (await store.listUsage({ accountId, limit: 10 })).data;
      assert.deepEqual(recs.map((r) => [r.traceId, r.cost]), [[h.id, 30n]], 'written once');
      await until('the change feed to listen again', async () => store.revision() === store.revision());
    });
  });

  test('a network partition (the server stops answering): 503 within lock_timeout_ms + connect_timeout_ms, not a hang; the settlement is written after it', async () => {
    await throughRelay({ lockTimeoutMs: 300, connectTimeoutMs: 300 }, async ({ store, relay, accountId, keyId, h }) => {
      relay.freeze();
      const started = Date.now();
      await assert.rejects(store.placeHold({ ...newHold(accountId, keyId), amount: 1n }), storeUnavailable);
      await assert.rejects(store.settle({ hold: h, cost: 30n, usage: usageOf(h, 30n) }), storeUnavailable);
      await assert.rejects(store.getAccount(accountId), storeUnavailable);
      assert.ok(Date.now() - started < 5000, `refused after ${Date.now() - started} ms`);
      // The listening connection finds out too (its heartbeat): nothing stays cached.
      await until('the change feed to notice the partition', async () => store.revision() !== store.revision());

      relay.thaw();
      await until('the kept settlement to be written', async () => {
        const a = await store.getAccount(accountId).catch(() => null);
        return a !== null && a.held === 0n;
      });
      assert.deepEqual(await store.ledgerTotals(accountId), { credits: 100n, debits: 30n });
      assert.deepEqual((await store.listUsage({ accountId, limit: 10 })).data.map((r) => [r.traceId, r.cost]), [[h.id, 30n]]);
    });
  });

  test('answers lost after the server did the work: the hold it placed is released, the settlement it made is not made twice', async () => {
    await throughRelay({ lockTimeoutMs: 300, connectTimeoutMs: 300 }, async ({ store, relay, accountId, keyId, h: h1 }) => {
      relay.deafen();
      const h2: Hold = { ...newHold(accountId, keyId), amount: 20n };
      const [settled, placed] = await Promise.allSettled([store.settle({ hold: h1, cost: 30n, usage: usageOf(h1, 30n) }), store.placeHold(h2)]);
      assert.ok(settled.status === 'rejected' && storeUnavailable(settled.reason));
      assert.ok(placed.status === 'rejected' && storeUnavailable(placed.reason));
      // The server did both: the settlement is in the books and the hold is out, unknown to the store's callers.
      const direct = await query<{ held: string; balance: string }>(contractDb.url, 'SELECT held, balance FROM accounts WHERE id = $1', [accountId]);
      assert.deepEqual(direct[0], { held: '20', balance: '70' });

      relay.thaw();
      await until('the refused hold to be released', async () => ((await store.getAccount(accountId).catch(() => null))?.held ?? -1n) === 0n);
      // Closing tries what is kept once more, if its timer has not yet.
      await store.close();
      const books = await query<{ credits: string; debits: string }>(
        contractDb.url,
        "SELECT SUM(amount) FILTER (WHERE kind = 'credit')::text AS credits, COALESCE(SUM(amount) FILTER (WHERE kind = 'debit'), 0)::text AS debits FROM ledger WHERE account_id = $1",
        [accountId],
      );
      assert.deepEqual(books[0], { credits: '100', debits: '30' }, 'debited once');
      const recs = await query<{ trace_id: string; cost: string }>(contractDb.url, 'SELECT trace_id, cost::text FROM usage WHERE account_id = $1', [accountId]);
      assert.deepEqual(recs, [{ trace_id: h1.id, cost: '30' }], 'one record');
    });
  });

  test('the gateway on PostgreSQL: a chat completion through the OpenAI SDK is held, charged and recorded', async () => {
    const db = await freshDatabase();
    const gw = await startTestGateway({ database: db.url });
    try {
      assert.equal(gw.running.gateway.store.kind, 'postgres');
      const key = await gw.createKey({ credit: '1' });
      const res = await gw
        .client(key.key)
        .chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'hello there' }], max_tokens: 20 }, { headers: { 'x-client-request-id': 'pg-e2e.1' } });
      assert.ok(res.usage !== undefined && res.usage.total_tokens > 0);
      await backgroundDone(gw);
      const acct = await gw.admin('GET', `/accounts/${key.accountId}`);
      assert.equal(acct.status, 200);
      assert.equal(acct.json.held, '0.000000000');
      const usage = await gw.admin('GET', `/usage?account_id=${key.accountId}`);
      assert.equal(usage.json.data.length, 1);
      const rec = usage.json.data[0];
      assert.equal(rec.status, 200);
      assert.equal(rec.client_request_id, 'pg-e2e.1');
      assert.equal(rec.prompt_tokens, res.usage!.prompt_tokens);
      assert.equal(rec.completion_tokens, res.usage!.completion_tokens);
      // demo is priced 1 USD per million input tokens and 2 per million output: the balance went down by exactly the record's cost.
      const cost = BigInt(rec.prompt_tokens) * 1000n + BigInt(rec.completion_tokens) * 2000n;
      assert.equal(rec.cost, usd(cost));
      assert.equal(acct.json.balance, usd(1_000_000_000n - cost));
      const summary = await gw.admin('GET', `/usage/summary?group_by=model&account_id=${key.accountId}`);
      assert.equal(summary.status, 200);
      assert.deepEqual(
        summary.json.data.map((r: { group: string; requests: number; cost: string }) => [r.group, r.requests, r.cost]),
        [['demo', 1, usd(cost)]],
      );
    } finally {
      await gw.close();
    }
  });
});

/** The built `token360` with TOKEN360_DATABASE_URL set (no config file in the temporary working directory). */
function cli(database: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('TOKEN360_')) env[k] = v;
  env['TOKEN360_DATABASE_URL'] = database;
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd: tmpdir(), env, timeout: 30_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr });
    });
  });
}

describe('three gateways on one PostgreSQL database', () => {
  test('requests spread across them against an account that affords a part of them: no overspend, one record each, the books balance, nothing left held', async () => {
    const db = await freshDatabase();
    const gws = [await startTestGateway({ database: db.url })];
    gws.push(...(await Promise.all([0, 1].map(() => startTestGateway({ database: db.url })))));
    try {
      // Each request holds about 0.0002 USD (max_tokens 100 at 2 USD per million) and costs less.
      const key = await gws[0]!.createKey({ credit: '0.005' });
      const results = await Promise.all(
        Array.from({ length: 120 }, (_, i) =>
          gws[i % 3]!.http('POST', '/v1/chat/completions', {
            key: key.key,
            body: { model: 'demo', messages: [{ role: 'user', content: `request ${i}` }], max_tokens: 100, ...(i % 2 === 0 ? {} : { stream: true }) },
          }),
        ),
      );
      const statuses = results.map((r) => r.status);
      assert.ok(statuses.every((s) => s === 200 || s === 402), `statuses: ${[...new Set(statuses)].join(', ')}`);
      assert.ok(statuses.includes(200) && statuses.includes(402), 'some served, some refused for the balance');
      for (const gw of gws) await backgroundDone(gw);
      const acct = (await gws[1]!.admin('GET', `/accounts/${key.accountId}`)).json;
      assert.equal(acct.held, '0.000000000', 'nothing left held');
      assert.ok(!acct.balance.startsWith('-'));
      const store = gws[2]!.running.gateway.store;
      const books = await store.ledgerTotals(key.accountId);
      const balance = (await store.getAccount(key.accountId))!.balance;
      assert.equal(books.credits - books.debits, balance, 'credits - debits = balance, to the unit');
      const records = (await store.listUsage({ accountId: key.accountId, limit: 1000 })).data;
      assert.equal(records.length, results.length, 'one usage record per request');
      assert.equal(new Set(records.map((r) => r.traceId)).size, results.length);
      assert.equal(records.reduce((x, r) => x + r.cost, 0n), books.debits, 'usage costs sum to the debits');
      assert.equal(records.filter((r) => r.status === 200).length, statuses.filter((s) => s === 200).length);
    } finally {
      for (const gw of gws) await gw.close();
    }
  });
});

describe('the CLI on PostgreSQL', () => {
  test('token360 migrate applies the migrations once, names the database without its password, and then says it is up to date', async () => {
    const db = await freshDatabase();
    const url = db.url.replace('postgres@', 'postgres:not-a-real-password@');
    const first = await cli(url, 'migrate', '--json');
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual(JSON.parse(first.stdout).applied.map((m: { version: number }) => m.version), PG_MIGRATIONS.map((m) => m.version));
    assert.ok(!first.stderr.includes('not-a-real-password') && !first.stdout.includes('not-a-real-password'));
    const second = await cli(url, 'migrate');
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /is up to date/);
  });

  test('a key frozen with the CLI is refused by a running gateway on the same database within a second', async () => {
    const db = await freshDatabase();
    const gw = await startTestGateway({ database: db.url });
    try {
      const key = await gw.createKey({ credit: '1' });
      const ask = (): Promise<number> => gw.http('POST', '/v1/chat/completions', { key: key.key, body: { model: 'demo', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 } }).then((r) => r.status);
      assert.equal(await ask(), 200);
      const frozen = await cli(db.url, 'keys', 'freeze', key.id, '--json');
      assert.equal(frozen.code, 0, frozen.stderr);
      const at = Date.now();
      await until('the gateway to refuse the frozen key', async () => (await ask()) === 403, 1000);
      assert.ok(Date.now() - at <= 1000);
      await backgroundDone(gw);
    } finally {
      await gw.close();
    }
  });
});

function usd(units: bigint): string {
  return `${units / 1_000_000_000n}.${(units % 1_000_000_000n).toString().padStart(9, '0')}`;
}

function usageOf(h: Hold, cost: bigint) {
  return {
    traceId: h.id, accountId: h.accountId, keyId: h.keyId, model: h.model, provider: 'demo', upstreamModel: 'demo-upstream',
    promptTokens: 1, completionTokens: 1, cachedTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0, cost, status: 200,
    errorType: null, stream: false, latencyMs: 1, ttftMs: null, createdAt: Date.now(), attempts: 1, clientRequestId: null,
  };
}
