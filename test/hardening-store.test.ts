import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { parseUsd } from '../src/billing/money.js';
import { SqliteStore } from '../src/store/sqlite/index.js';
import { journalsOf } from '../src/store/sqlite/journal.js';
import { SQLITE_MIGRATIONS } from '../src/store/sqlite/migrations.js';
import { startTestGateway, type HttpResult, type TestGateway } from './helpers/gateway.js';
import { CLI } from './helpers/process.js';

// The SQLite store on a bad day (issue 8): a full disk, amounts past what the database holds,
// file permissions, and another process holding the write lock. Each test drives the real
// gateway over HTTP; faults are real SQLite conditions on the gateway's own connection.

const units = (usd: string): bigint => parseUsd(usd)!;
const pathOf = (gw: TestGateway): string => gw.database.slice('sqlite:'.length);
const mode = (p: string): number => statSync(p).mode & 0o777;

async function pollUntil<T>(what: string, fn: () => Promise<T | null | undefined | false>, deadlineMs = 15_000): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const v = await fn();
    if (v !== null && v !== undefined && v !== false) return v;
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const chat = (gw: TestGateway, key: string, content: string, extra: Record<string, unknown> = {}): Promise<HttpResult> =>
  gw.http('POST', '/v1/chat/completions', { key, body: { model: 'demo', messages: [{ role: 'user', content }], max_tokens: 20, ...extra } });

function assertUnavailable(r: HttpResult, what: string): void {
  assert.equal(r.status, 503, `${what}: ${r.text}`);
  assert.equal(r.json.error.type, 'api_error');
  assert.equal(r.json.error.code, '503');
  assert.match(r.json.error.message, /database/);
  assert.ok(Number(r.headers['retry-after']) >= 1, 'retry-after');
  assert.ok(Number(r.headers['retry-after-ms']) >= 1, 'retry-after-ms');
  assert.equal(r.json.error.traceId, r.headers['x-request-id']);
}

async function usageOf(gw: TestGateway, accountId: string): Promise<Record<string, any>[]> {
  const r = await gw.admin('GET', `/usage?account_id=${accountId}&limit=10000`);
  assert.equal(r.status, 200, r.text);
  return r.json.data as Record<string, any>[];
}

/** Balance = credits − recorded costs, nothing held, and one usage record per trace id. */
async function assertBooks(gw: TestGateway, accountId: string, credited: string): Promise<Record<string, any>[]> {
  const acct = (await gw.admin('GET', `/accounts/${accountId}`)).json;
  const usage = await usageOf(gw, accountId);
  const costs = usage.reduce((s, u) => s + units(u['cost']), 0n);
  assert.equal(acct.held, '0.000000000', 'nothing held');
  assert.equal(units(acct.balance), units(credited) - costs, 'balance = credits - recorded costs');
  const ledger = await gw.running.store.ledgerTotals(accountId);
  assert.equal(ledger.credits - ledger.debits, units(acct.balance), 'the ledger balances');
  assert.equal(new Set(usage.map((u) => u['trace_id'])).size, usage.length, 'one usage record per request');
  return usage;
}

describe('amounts out of range', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startTestGateway();
  });
  after(() => gw.close());

  test('a credit past what an account may hold is a 400 naming amount, and nothing changes', async () => {
    const { accountId } = await gw.createKey({ credit: '999999999' });
    for (const amount of ['100000000000', 1e11, '9223372036.854775808', '1000000000.000000001', '99999999999999999999']) {
      const r = await gw.admin('POST', `/accounts/${accountId}/credit`, { amount });
      assert.equal(r.status, 400, `${amount}: ${r.text}`);
      assert.equal(r.json.error.type, 'invalid_request_error');
      assert.equal(r.json.error.param, 'amount');
      assert.match(r.json.error.message, /1000000000/, 'the message says the maximum');
    }
    // In range alone, but the balance would pass the maximum; with an idempotency key, which stays unused.
    const over = await gw.admin('POST', `/accounts/${accountId}/credit`, { amount: '2' }, { 'idempotency-key': 'inv-1' });
    assert.equal(over.status, 400, over.text);
    assert.equal(over.json.error.type, 'invalid_request_error');
    assert.equal(over.json.error.param, 'amount');
    const acct = (await gw.admin('GET', `/accounts/${accountId}`)).json;
    assert.equal(acct.balance, '999999999.000000000');
    assert.deepEqual(await gw.running.store.ledgerTotals(accountId), { credits: units('999999999'), debits: 0n });
    // Up to the maximum is fine.
    const ok = await gw.admin('POST', `/accounts/${accountId}/credit`, { amount: '1' }, { 'idempotency-key': 'inv-1' });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.balance, '1000000000.000000000');
  });

  test('an account created with a credit past the maximum is a 400 naming credit, and no account is made', async () => {
    const before = await gw.running.store.countAccounts();
    for (const credit of ['100000000000', 1e11, '1000000000.5']) {
      const r = await gw.admin('POST', '/accounts', { name: 'too rich', credit });
      assert.equal(r.status, 400, r.text);
      assert.equal(r.json.error.type, 'invalid_request_error');
      assert.equal(r.json.error.param, 'credit');
    }
    const limit = await gw.admin('POST', '/accounts', { name: 'quota', limits: { daily_spend: '100000000000' } });
    assert.equal(limit.status, 400, limit.text);
    assert.equal(limit.json.error.param, 'limits.daily_spend');
    assert.equal(await gw.running.store.countAccounts(), before);
  });

  test("a key's daily_spend past the maximum (PATCH) is a 400 naming limits.daily_spend, and the key is unchanged", async () => {
    const { id } = await gw.createKey({ limits: { rpm: 7, daily_spend: '3' } });
    const before = (await gw.admin('GET', `/keys/${id}`)).json;
    assert.deepEqual(before.limits, { rpm: 7, daily_spend: '3.000000000' });
    for (const daily_spend of ['1e11', '100000000000', 1e11]) {
      // With other changes beside it: none of them is made either.
      const r = await gw.admin('PATCH', `/keys/${id}`, { name: 'renamed', frozen: true, limits: { rpm: 1, daily_spend } });
      assert.equal(r.status, 400, `${daily_spend}: ${r.text}`);
      assert.equal(r.json.error.type, 'invalid_request_error');
      assert.equal(r.json.error.param, 'limits.daily_spend');
    }
    assert.deepEqual((await gw.admin('GET', `/keys/${id}`)).json, before);
  });

  test('the CLI refuses the same amounts with one clean line, and nothing changes', async () => {
    const { accountId } = await gw.createKey({ credit: '5' });
    const dir = mkdtempSync(join(tmpdir(), 'token360-cli-range-'));
    try {
      const config = join(dir, 'token360.yaml');
      writeFileSync(config, `database: ${gw.database}\nlog_level: silent\n`);
      const run = (...args: string[]) =>
        new Promise<{ code: number; stderr: string }>((resolve) =>
          execFile(process.execPath, [CLI, '--config', config, ...args], { cwd: dir, encoding: 'utf8', timeout: 30_000 }, (err, _out, stderr) =>
            resolve({ code: err === null ? 0 : Number((err as { code?: unknown }).code), stderr }),
          ),
        );
      const before = await gw.running.store.countAccounts();
      for (const [args, param] of [
        [['accounts', 'credit', accountId, '--amount', '100000000000'], /amount/],
        [['accounts', 'credit', accountId, '--amount', '999999999'], /amount/],
        [['accounts', 'create', '--name', 'x', '--credit', '100000000000'], /credit/],
      ] as const) {
        const r = await run(...args);
        assert.notEqual(r.code, 0, `${args.join(' ')} must fail`);
        assert.match(r.stderr, param);
        assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
      }
      assert.equal((await gw.admin('GET', `/accounts/${accountId}`)).json.balance, '5.000000000');
      assert.equal(await gw.running.store.countAccounts(), before);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('database file permissions', () => {
  test('directories the gateway creates are 0700 and the database files 0600; the directory it was given keeps its mode', async () => {
    const root = mkdtempSync(join(tmpdir(), 'token360-perm-'));
    chmodSync(root, 0o755);
    const db = join(root, 'data', 'nested', 'token360.db');
    const gw = await startTestGateway({ database: `sqlite:${db}` });
    try {
      const { key } = await gw.createKey();
      assert.equal((await chat(gw, key, 'hi')).status, 200);
      assert.equal(mode(join(root, 'data')), 0o700);
      assert.equal(mode(join(root, 'data', 'nested')), 0o700);
      assert.equal(mode(root), 0o755, "the operator's directory is left alone");
      for (const f of [db, `${db}-wal`, `${db}-shm`]) assert.equal(mode(f), 0o600, f);
      // The settlement journal (store/sqlite/journal.ts) holds usage records and amounts as well.
      const journals = journalsOf(db);
      assert.equal(journals.length, 1, 'the settled request was journaled');
      for (const j of journals) assert.equal(mode(j.file), 0o600, j.file);
    } finally {
      await gw.close();
      rmSync(root, { recursive: true, force: true });
    }
  });

  test('database files made earlier with a wider mode are narrowed to 0600', async () => {
    const root = mkdtempSync(join(tmpdir(), 'token360-perm-'));
    chmodSync(root, 0o755);
    const db = join(root, 'token360.db');
    const pre = new Database(db);
    pre.pragma('journal_mode = WAL');
    pre.exec('CREATE TABLE unrelated (x)');
    for (const f of [db, `${db}-wal`, `${db}-shm`]) chmodSync(f, 0o644);
    pre.close();
    const gw = await startTestGateway({ database: `sqlite:${db}` });
    try {
      const { key } = await gw.createKey();
      assert.equal((await chat(gw, key, 'hi')).status, 200);
      for (const f of [db, `${db}-wal`, `${db}-shm`]) assert.equal(mode(f), 0o600, f);
      assert.equal(mode(root), 0o755);
    } finally {
      await gw.close();
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('another process holding the write lock', () => {
  /** GET /health latencies, one probe after another until `until` settles. */
  async function probeHealth(gw: TestGateway, until: Promise<unknown>): Promise<number[]> {
    let done = false;
    void until.finally(() => (done = true));
    const latencies: number[] = [];
    while (!done || latencies.length === 0) {
      const t = performance.now();
      const r = await gw.http('GET', '/health');
      latencies.push(performance.now() - t);
      assert.equal(r.status, 200);
      await sleep(20);
    }
    return latencies;
  }

  test('while a backup holds the lock briefly, /health stays fast and writes wait without blocking, then succeed', async () => {
    const gw = await startTestGateway({ store: { lock_timeout_ms: 10_000 } });
    const locker = new Database(pathOf(gw));
    try {
      const { key, accountId } = await gw.createKey({ credit: '10' });
      locker.exec('BEGIN IMMEDIATE');
      const lockedAt = performance.now();
      const writes = Promise.all([
        ...Array.from({ length: 5 }, (_, i) => chat(gw, key, `during the backup ${i}`, { stream: i % 2 === 0 })),
        gw.admin('POST', `/accounts/${accountId}/credit`, { amount: '1' }),
      ]);
      // The backup takes 1.5 s, then commits; meanwhile the gateway must go on answering.
      const released = sleep(1500).then(() => locker.exec('COMMIT'));
      const latencies = await probeHealth(gw, released);
      await released;
      const results = await writes;
      assert.ok(performance.now() - lockedAt >= 1500);
      assert.ok(Math.max(...latencies) < 1000, `/health answered in ${latencies.map((l) => l.toFixed(0)).join(', ')} ms`);
      assert.ok(latencies.length >= 5, `probes: ${latencies.length}`);
      for (const r of results) assert.equal(r.status, 200, r.text);
      await pollUntil('5 usage records', async () => (await usageOf(gw, accountId)).length === 5);
      await assertBooks(gw, accountId, '11');
    } finally {
      if (locker.inTransaction) locker.exec('ROLLBACK');
      locker.close();
      await gw.close();
    }
  });

  test('a lock held past store.lock_timeout_ms is a 503 with retry-after, never a 500, and the refused requests are recorded once it is gone', async () => {
    const gw = await startTestGateway({ store: { lock_timeout_ms: 400 } });
    const locker = new Database(pathOf(gw));
    try {
      const { key, accountId } = await gw.createKey({ credit: '10' });
      locker.exec('BEGIN IMMEDIATE');
      const writes = Promise.all([
        ...Array.from({ length: 5 }, (_, i) => chat(gw, key, `locked out ${i}`, { stream: i % 2 === 0 })),
        gw.admin('POST', `/accounts/${accountId}/credit`, { amount: '1' }),
      ]);
      const latencies = await probeHealth(gw, writes);
      const results = await writes;
      assert.ok(locker.inTransaction, 'the lock was held all along');
      for (const [i, r] of results.entries()) assertUnavailable(r, `request ${i}`);
      assert.ok(Math.max(...latencies) < 1000, `/health answered in ${latencies.map((l) => l.toFixed(0)).join(', ')} ms`);
      locker.exec('COMMIT');

      assert.equal((await chat(gw, key, 'after the backup')).status, 200);
      // Each refusal leaves its usage record (cost 0) once the database can be written: 5 + 1.
      const usage = await pollUntil('6 usage records', async () => {
        const u = await usageOf(gw, accountId);
        return u.length === 6 ? u : null;
      });
      assert.equal(usage.filter((u) => u['status'] === 503).length, 5);
      await assertBooks(gw, accountId, '10');
    } finally {
      if (locker.inTransaction) locker.exec('ROLLBACK');
      locker.close();
      await gw.close();
    }
  });
});

describe('a full disk', () => {
  test('holds that cannot be written are 503 with retry-after; streams served meanwhile are billed once the disk is back; one record each', async () => {
    const gw = await startTestGateway({
      providers: { slow: { type: 'demo', latency_ms: 1000 } },
      models: { slow: { pricing: { input: 1, output: 2 }, deployments: [{ provider: 'slow', model: 'slow' }] } },
    });
    const store = gw.running.store;
    assert.ok(store instanceof SqliteStore);
    const { key, accountId } = await gw.createKey({ credit: '100' });
    let results: { status: number; text: string; traceId: string; retryAfter: string | null }[] = [];
    try {
      store.capSize('current');
      // Admin writes that need space fail cleanly too.
      let refused: HttpResult | null = null;
      for (let i = 0; i < 1000 && refused === null; i++) {
        const r = await gw.admin('POST', '/accounts', { name: `filler ${i} `.padEnd(180, 'x') });
        if (r.status !== 201) refused = r;
      }
      assert.ok(refused !== null, 'the capped database filled up');
      assertUnavailable(refused, 'POST /admin/accounts');

      const stream = async (i: number) => {
        const res = await fetch(`${gw.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'slow', stream: true, max_tokens: 30, messages: [{ role: 'user', content: `stream ${i}` }] }),
        });
        const text = await res.text();
        return { status: res.status, text, traceId: res.headers.get('x-request-id')!, retryAfter: res.headers.get('retry-after') };
      };
      results = await Promise.all(Array.from({ length: 80 }, (_, i) => stream(i)));
      const served = results.filter((r) => r.status === 200);
      const refusedHolds = results.filter((r) => r.status !== 200);
      for (const r of served) assert.ok(r.text.endsWith('data: [DONE]\n\n'), 'received whole');
      for (const r of refusedHolds) {
        assert.equal(r.status, 503, r.text);
        assert.equal(JSON.parse(r.text).error.type, 'api_error');
        assert.ok(Number(r.retryAfter) >= 1);
      }
      assert.ok(refusedHolds.length > 0, 'some holds could not be written');
      assert.ok(served.length > 0, 'holds that fit were served');
      const billedSoFar = (await usageOf(gw, accountId)).length;
      assert.ok(billedSoFar < 80, `settlements wait for the disk (${billedSoFar} of 80 written)`);
      // The disk is back: everything served is billed, every refusal recorded, each exactly once.
      store.capSize(null);
      const usage = await pollUntil('80 usage records', async () => {
        const u = await usageOf(gw, accountId);
        return u.length >= 80 ? u : null;
      });
      assert.equal(usage.length, 80);
      await assertBooks(gw, accountId, '100');
      for (const r of results) {
        const rec = usage.find((u) => u['trace_id'] === r.traceId);
        assert.ok(rec, `a usage record for ${r.traceId}`);
        assert.equal(rec['status'], r.status);
        if (r.status === 200) assert.ok(units(rec['cost']) > 0n, 'a served stream is charged');
      }
    } finally {
      store.capSize(null);
      await gw.close();
    }
  });
});

describe('upgrading a database made before holds had owners', () => {
  test('holds left by the previous version are released at the first start, once each, as interrupted', async () => {
    const root = mkdtempSync(join(tmpdir(), 'token360-upgrade-'));
    const db = join(root, 'old.db');
    const old = new Database(db);
    old.pragma('journal_mode = WAL');
    old.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
    old.exec(SQLITE_MIGRATIONS[0]!.sql);
    old.prepare('INSERT INTO schema_migrations VALUES (1, ?, 0)').run(SQLITE_MIGRATIONS[0]!.name);
    old.prepare("INSERT INTO accounts (id, name, balance, held, limits, created_at) VALUES ('acct_old', 'old', 1000, 300, NULL, 0)").run();
    old.prepare("INSERT INTO ledger (account_id, kind, amount, created_at) VALUES ('acct_old', 'credit', 1000, 0)").run();
    old.prepare("INSERT INTO holds (id, account_id, key_id, model, amount, stream, created_at) VALUES ('req_old', 'acct_old', 'key_old', 'demo', 300, 1, 0)").run();
    old.close();
    const gw = await startTestGateway({ database: `sqlite:${db}` });
    try {
      const acct = (await gw.admin('GET', '/accounts/acct_old')).json;
      assert.equal(acct.held, '0.000000000');
      assert.equal(acct.balance, '0.000001000');
      const usage = await usageOf(gw, 'acct_old');
      assert.equal(usage.length, 1);
      assert.equal(usage[0]!['trace_id'], 'req_old');
      assert.equal(usage[0]!['error_type'], 'interrupted');
      assert.equal(await gw.running.store.recoverHolds(), 0);
    } finally {
      await gw.close();
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('stopping while settlements wait for the disk', () => {
  test('the journal keeps what the database could not take: the next start bills every request served, one record each', async () => {
    const root = mkdtempSync(join(tmpdir(), 'token360-full-stop-'));
    const db = `sqlite:${join(root, 'token360.db')}`;
    const first = await startTestGateway({ database: db });
    let second: TestGateway | null = null;
    try {
      const store = first.running.store;
      assert.ok(store instanceof SqliteStore);
      const { key, accountId } = await first.createKey({ credit: '10' });
      store.capSize('current');
      // Served requests whose settlements wait keep their holds, until holds no longer fit either.
      const served: string[] = [];
      let refused: string | null = null;
      for (let i = 0; i < 200; i++) {
        const r = await chat(first, key, `request ${i}`);
        if (r.status !== 200) {
          assertUnavailable(r, `request ${i}`);
          refused = r.headers['x-request-id']!;
          break;
        }
        served.push(r.headers['x-request-id']!);
      }
      const written = (await usageOf(first, accountId)).length;
      assert.ok(served.length >= 20 && written < served.length, `settlements wait for the disk (${written} of ${served.length} written)`);
      // Shutdown tries once more; the disk is still full, so what is left goes with the process.
      await first.close();

      second = await startTestGateway({ database: db });
      const all = await assertBooks(second, accountId, '10');
      // The refused request's own record (cost 0) is kept in memory and written if the disk makes
      // room before the process stops, which depends on where the last pages filled: either is right.
      const usage = all.filter((u) => u['trace_id'] !== refused || u['cost'] !== '0.000000000');
      assert.deepEqual(new Set(usage.map((u) => u['trace_id'])), new Set(served), 'each request served has its one record');
      // The responses went out once their settlements were journaled; the restart replays the journal.
      assert.equal(usage.filter((u) => u['status'] === 200 && u['cost'] !== '0.000000000').length, served.length);
      assert.equal(usage.filter((u) => u['error_type'] === 'interrupted').length, 0);
    } finally {
      await first.close();
      await second?.close();
      rmSync(root, { recursive: true, force: true });
    }
  });
});
