import assert from 'node:assert/strict';
import { execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { Agent, request } from 'undici';
import { CLI, exited, freePort, spawnGateway } from './helpers/process.js';
import { createTestDatabase, type TestDatabase } from './helpers/postgres.js';

// SPEC §9 with real processes: three `token360 serve` on one PostgreSQL database and one Redis,
// started together on an empty database, as an operator deploys replicas behind a load balancer.

const ADMIN = 'sk-admin-replicas-0123456789abcdefgh';
const dir = mkdtempSync(join(tmpdir(), 'token360-replicas-'));
const config = join(dir, 'token360.yaml');
let db: TestDatabase;
const ports: number[] = [];
const procs: ChildProcess[] = [];
const agents = [0, 1, 2].map(() => new Agent({ connections: 32 }));

interface Res {
  status: number;
  traceId: string;
  text: string;
}

async function call(replica: number, method: string, path: string, opts: { key?: string; body?: unknown } = {}): Promise<Res> {
  const r = await request(`http://127.0.0.1:${ports[replica]}${path}`, {
    method: method as 'GET',
    dispatcher: agents[replica],
    headers: { authorization: `Bearer ${opts.key ?? ADMIN}`, 'content-type': 'application/json' },
    ...(opts.body === undefined ? {} : { body: JSON.stringify(opts.body) }),
  });
  return { status: r.statusCode, traceId: String(r.headers['x-request-id']), text: await r.body.text() };
}

async function newKey(credit: string, limits?: Record<string, number>): Promise<{ id: string; key: string; accountId: string }> {
  const account = JSON.parse((await call(0, 'POST', '/admin/accounts', { body: { name: 'r', credit } })).text) as { id: string };
  const key = JSON.parse((await call(1, 'POST', '/admin/keys', { body: { account_id: account.id, ...(limits ? { limits } : {}) } })).text) as { id: string; key: string };
  return { id: key.id, key: key.key, accountId: account.id };
}

const chat = (i: number, extra: Record<string, unknown> = {}) => ({ model: 'm', max_tokens: 100, messages: [{ role: 'user', content: `request ${i}` }], ...extra });

/** The books of an account, straight from PostgreSQL. */
async function books(accountId: string): Promise<{ balance: bigint; held: bigint; credits: bigint; debits: bigint; records: { trace_id: string; status: number; cost: string }[] }> {
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    const a = (await c.query('SELECT balance::text AS balance, held::text AS held FROM accounts WHERE id = $1', [accountId])).rows[0] as { balance: string; held: string };
    const l = (
      await c.query(
        "SELECT COALESCE(SUM(amount) FILTER (WHERE kind = 'credit'), 0)::text AS credits, COALESCE(SUM(amount) FILTER (WHERE kind = 'debit'), 0)::text AS debits FROM ledger WHERE account_id = $1",
        [accountId],
      )
    ).rows[0] as { credits: string; debits: string };
    const records = (await c.query('SELECT trace_id, status, cost::text AS cost FROM usage WHERE account_id = $1', [accountId])).rows as { trace_id: string; status: number; cost: string }[];
    return { balance: BigInt(a.balance), held: BigInt(a.held), credits: BigInt(l.credits), debits: BigInt(l.debits), records };
  } finally {
    await c.end();
  }
}

async function pollUntil(what: string, ms: number, check: () => Promise<boolean>): Promise<number> {
  const t0 = Date.now();
  while (!(await check())) {
    if (Date.now() - t0 > ms) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - t0;
}

before(async () => {
  db = await createTestDatabase();
  writeFileSync(
    config,
    [
      `database: ${db.url}`,
      'redis: redis://127.0.0.1:6379',
      `admin_key: ${ADMIN}`,
      'log_level: warn',
      // A dead replica's holds are released once its lease has run out: short, so the test need not wait long.
      'store: { lease_ms: 1500 }',
      'server: { host: 127.0.0.1, shutdown_timeout_ms: 1000 }',
      'providers: { slow: { type: demo, latency_ms: 20, tokens_per_second: 400 } }',
      'models:',
      '  m: { pricing: { input: 1000, output: 2000 }, deployments: [{ provider: slow, model: m }] }',
    ].join('\n'),
  );
  for (let i = 0; i < 3; i++) ports.push(await freePort());
  // All three at once on the empty database: migrations and the first start race.
  procs.push(...(await Promise.all(ports.map((p) => spawnGateway(config, p)))));
});

after(async () => {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  await Promise.all(procs.map((p) => exited(p)));
  await Promise.all(agents.map((a) => a.close()));
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

describe('three replicas on one PostgreSQL and one Redis (separate processes)', () => {
  test('started together on an empty database: each migration applied once, one demo account', async () => {
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      const versions = (await c.query('SELECT version FROM schema_migrations ORDER BY version')).rows.map((r: { version: number }) => Number(r.version));
      assert.ok(versions.length > 0);
      assert.equal(new Set(versions).size, versions.length, `each version once: ${versions.join(',')}`);
      assert.equal((await c.query("SELECT COUNT(*)::int AS n FROM accounts WHERE name = 'demo'")).rows[0].n, 1);
    } finally {
      await c.end();
    }
  });

  test('500 concurrent requests across the three, an account that affords about a third and an rpm limit: no overspend, the limit holds globally, one record each, the books balance, nothing held', async () => {
    // Each request costs about its 10 output tokens (the cap) at 2000 USD per million, 0.02 USD, plus
    // its prompt: 5 USD covers about a third of 500.
    const k = await newKey('5', { rpm: 400 });
    const results = await Promise.all(Array.from({ length: 500 }, (_, i) => call(i % 3, 'POST', '/v1/chat/completions', { key: k.key, body: chat(i, { max_tokens: 10 }) })));
    const count = (s: number): number => results.filter((r) => r.status === s).length;
    assert.equal(count(200) + count(402) + count(429), 500, `statuses: ${[...new Set(results.map((r) => r.status))].join(',')}`);
    assert.equal(count(429), 100, 'rpm 400 is one limit across the replicas: exactly 100 refused');
    assert.ok(count(200) > 0 && count(402) > 0, `served ${count(200)}, refused for the balance ${count(402)}`);
    const b = await books(k.accountId);
    assert.ok(b.balance >= 0n, 'never below zero');
    assert.equal(b.held, 0n, 'nothing left held');
    assert.equal(b.credits - b.debits, b.balance, 'credits - debits = balance, to the unit');
    assert.equal(b.records.length, 500, 'one usage record per request');
    assert.deepEqual(new Set(b.records.map((r) => r.trace_id)), new Set(results.map((r) => r.traceId)));
    assert.equal(b.records.reduce((s, r) => s + BigInt(r.cost), 0n), b.debits);
  });

  test('a key frozen or revoked through one replica, or frozen with the CLI, is refused by all three within a second', async () => {
    const ask = (replica: number, key: string) => call(replica, 'POST', '/v1/chat/completions', { key, body: chat(0, { max_tokens: 5 }) }).then((r) => r.status);
    const refusedEverywhere = async (key: string, status: number): Promise<number> =>
      pollUntil(`every replica answers ${status}`, 1000, async () => (await Promise.all([0, 1, 2].map((i) => ask(i, key)))).every((s) => s === status));

    const a = await newKey('1');
    for (const i of [0, 1, 2]) assert.equal(await ask(i, a.key), 200, 'cached as live on every replica');
    assert.equal((await call(0, 'PATCH', `/admin/keys/${a.id}`, { body: { frozen: true } })).status, 200);
    await refusedEverywhere(a.key, 403);

    const b = await newKey('1');
    for (const i of [0, 1, 2]) assert.equal(await ask(i, b.key), 200);
    assert.equal((await call(2, 'DELETE', `/admin/keys/${b.id}`)).status, 204);
    await refusedEverywhere(b.key, 401);

    const c = await newKey('1');
    for (const i of [0, 1, 2]) assert.equal(await ask(i, c.key), 200);
    const cli = await new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile(process.execPath, [CLI, '--config', config, 'keys', 'freeze', c.id], { timeout: 30_000 }, (err, _o, stderr) =>
        resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stderr }),
      ),
    );
    assert.equal(cli.code, 0, cli.stderr);
    await refusedEverywhere(c.key, 403);
  });

  test('SIGKILL of one replica under load: the others go on; after its restart nothing is held and nothing is missing from the books', async () => {
    const k = await newKey('500');
    // Streams of about 100 tokens at 400 per second: in flight when the replica dies.
    const inflight = Array.from({ length: 60 }, (_, i) =>
      call(i % 3, 'POST', '/v1/chat/completions', { key: k.key, body: chat(i, { stream: true }) }).catch((e: unknown) => ({ status: -1, traceId: '', text: String(e) })),
    );
    await pollUntil('requests in flight on the replica to kill', 5000, async () => (await books(k.accountId)).held > 0n);
    procs[1]!.kill('SIGKILL');
    await exited(procs[1]!);
    const results = await Promise.all(inflight);
    const survivors = results.filter((_, i) => i % 3 !== 1);
    assert.ok(survivors.every((r) => r.status === 200 && r.text.includes('[DONE]')), 'the other two finish every stream');
    // The others keep serving new requests.
    assert.equal((await call(0, 'POST', '/v1/chat/completions', { key: k.key, body: chat(1) })).status, 200);
    assert.equal((await call(2, 'POST', '/v1/chat/completions', { key: k.key, body: chat(2) })).status, 200);

    procs[1] = await spawnGateway(config, ports[1]!);
    // The dead replica's holds: released (as interrupted, cost 0) once its lease has run out.
    await pollUntil('nothing held', 15_000, async () => (await books(k.accountId)).held === 0n);
    const b = await books(k.accountId);
    assert.equal(b.credits - b.debits, b.balance);
    assert.equal(b.records.reduce((s, r) => s + BigInt(r.cost), 0n), b.debits, 'what was debited is what the records say');
    // Every request the survivors answered has its record; the killed replica's accepted requests too (interrupted, or settled before it died).
    const recorded = new Set(b.records.map((r) => r.trace_id));
    for (const r of survivors) assert.ok(recorded.has(r.traceId), `record of ${r.traceId}`);
    assert.equal(new Set(b.records.map((r) => r.trace_id)).size, b.records.length, 'one record per request');
    const killed = results.filter((_, i) => i % 3 === 1 && _.traceId !== '' && _.traceId !== 'undefined');
    for (const r of killed) assert.ok(recorded.has(r.traceId), `the killed replica's request ${r.traceId} is in the books`);
    assert.equal((await call(1, 'POST', '/v1/chat/completions', { key: k.key, body: chat(3) })).status, 200, 'the restarted replica serves');
  });
});
