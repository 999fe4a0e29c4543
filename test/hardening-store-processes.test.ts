import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { linkSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { ADMIN_KEY } from './helpers/gateway.js';
import { CLI, exited, freePort } from './helpers/process.js';

// Gateway processes sharing one SQLite file (SPEC §9), and the file itself going away under a
// running gateway. Real `token360 serve` processes; the test reads their logs and the file.

interface Proc {
  child: ChildProcess;
  base: string;
  /** Everything the process logged so far (pino JSON lines). */
  log: () => string;
}

async function serve(config: string): Promise<Proc> {
  const port = await freePort();
  const child = spawn(process.execPath, [CLI, 'serve', '--config', config, '--port', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`gateway exited ${child.exitCode}: ${out}`);
    if (await fetch(`${base}/health`).then((r) => r.ok, () => false)) return { child, base, log: () => out };
    await sleep(50);
  }
  child.kill('SIGKILL');
  throw new Error(`gateway did not start: ${out}`);
}

async function call(p: Proc, method: string, path: string, body?: unknown, key = ADMIN_KEY): Promise<{ status: number; json: any; headers: Headers }> {
  const res = await fetch(p.base + path, {
    method,
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json, headers: res.headers };
}

async function pollUntil<T>(what: string, fn: () => Promise<T | null | false>, deadlineMs = 20_000): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const v = await fn();
    if (v !== null && v !== false) return v;
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function writeConfig(dir: string, db: string, extra: string[] = []): string {
  const config = join(dir, 'token360.yaml');
  writeFileSync(
    config,
    [
      `database: sqlite:${db}`,
      `admin_key: ${ADMIN_KEY}`,
      'log_level: info',
      ...extra,
      'providers:',
      '  fast: { type: demo }',
      '  slow: { type: demo, latency_ms: 6000 }',
      'models:',
      '  fast: { pricing: { input: 1, output: 2 }, deployments: [{ provider: fast, model: fast }] }',
      '  slow: { pricing: { input: 1, output: 2 }, deployments: [{ provider: slow, model: slow }] }',
    ].join('\n'),
  );
  return config;
}

/** Reads the shared file as an operator would, from outside every gateway. */
function inspect(db: string) {
  const probe = new Database(db, { readonly: true, fileMustExist: true });
  probe.defaultSafeIntegers(true);
  return {
    holds: (accountId: string): number => Number(probe.prepare('SELECT COUNT(*) FROM holds WHERE account_id = ?').pluck().get(accountId) as bigint),
    records: (accountId: string): { trace_id: string; status: bigint; error_type: string | null; cost: bigint }[] =>
      probe.prepare('SELECT trace_id, status, error_type, cost FROM usage WHERE account_id = ? ORDER BY seq').all(accountId) as never,
    books: (accountId: string) => {
      const a = probe.prepare('SELECT balance, held FROM accounts WHERE id = ?').get(accountId) as { balance: bigint; held: bigint };
      const l = probe
        .prepare("SELECT COALESCE(SUM(CASE WHEN kind='credit' THEN amount ELSE 0 END), 0) AS c, COALESCE(SUM(CASE WHEN kind='debit' THEN amount ELSE 0 END), 0) AS d FROM ledger WHERE account_id = ?")
        .get(accountId) as { c: bigint; d: bigint };
      const costs = probe.prepare('SELECT COALESCE(SUM(cost), 0) FROM usage WHERE account_id = ?').pluck().get(accountId) as bigint;
      return { ...a, ledger: l.c - l.d, costs, credits: l.c };
    },
    close: () => probe.close(),
  };
}

/** One record per request, the ledger and the balance agree, nothing held. */
function assertBooks(probe: ReturnType<typeof inspect>, accountId: string, requests: number): void {
  const recs = probe.records(accountId);
  assert.equal(recs.length, requests, 'one usage record per request');
  assert.equal(new Set(recs.map((r) => r.trace_id)).size, recs.length, 'no request recorded twice');
  const b = probe.books(accountId);
  assert.equal(b.held, 0n, 'nothing held');
  assert.equal(b.ledger, b.balance, 'the ledger balances');
  assert.equal(b.credits - b.costs, b.balance, 'balance = credits - recorded costs');
}

describe('processes sharing one SQLite file: a hold belongs to the process that placed it', () => {
  let dir: string;
  let db: string;
  let config: string;
  const procs: ChildProcess[] = [];
  let b: Proc;
  let probe: ReturnType<typeof inspect>;
  let key: string;
  let accountId: string;
  let requests = 0;

  const start = async (): Promise<Proc> => {
    const p = await serve(config);
    procs.push(p.child);
    return p;
  };
  const slow = (p: Proc, n: number) =>
    Array.from({ length: n }, (_, i) => {
      requests++;
      return call(p, 'POST', '/v1/chat/completions', { model: 'slow', stream: i % 2 === 0, max_tokens: 20, messages: [{ role: 'user', content: `slow ${i}` }] }, key).catch(
        () => null,
      );
    });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'token360-lease-'));
    db = join(dir, 'shared.db');
    config = writeConfig(dir, db, ['store: { lease_ms: 1500 }']);
    b = await start();
    accountId = (await call(b, 'POST', '/admin/accounts', { name: 'shared', credit: '10' })).json.id;
    key = (await call(b, 'POST', '/admin/keys', { account_id: accountId })).json.key;
    probe = inspect(db);
  });
  after(async () => {
    probe.close();
    for (const c of procs) {
      c.kill('SIGCONT');
      c.kill('SIGKILL');
      await exited(c);
    }
    rmSync(dir, { recursive: true, force: true });
  });

  test('a process starting on the file leaves the holds of a live one alone; each of its requests settles once', async () => {
    const a = await start();
    const inflight = slow(a, 20);
    await pollUntil('20 holds', async () => probe.holds(accountId) === 20);
    // Another process starts (its start-up recovery runs) and sweeps for a few lease periods while A works.
    const c = await start();
    assert.equal(probe.holds(accountId), 20, "the new process released none of A's holds");
    const results = await Promise.all(inflight);
    assert.ok(results.every((r) => r !== null && r.status === 200), 'every request of A was served');
    await pollUntil('20 records', async () => probe.records(accountId).length === 20);
    assert.ok(probe.records(accountId).every((r) => r.error_type === null && r.status === 200n), 'none recorded as interrupted');
    assertBooks(probe, accountId, requests);
    c.child.kill('SIGTERM');
    a.child.kill('SIGTERM');
    await Promise.all([exited(c.child), exited(a.child)]);
  });

  test("a SIGKILLed process's holds are released by the live one, each recorded as interrupted once", async () => {
    const a = await start();
    const before = probe.records(accountId).length;
    const inflight = slow(a, 10);
    await pollUntil('10 holds', async () => probe.holds(accountId) === 10);
    a.child.kill('SIGKILL');
    await exited(a.child);
    await Promise.all(inflight);
    // No restart: B, still running, releases them within a lease and a sweep or two.
    await pollUntil('the holds released', async () => probe.holds(accountId) === 0, 15_000);
    const recs = probe.records(accountId).slice(before);
    assert.equal(recs.length, 10);
    assert.ok(recs.every((r) => r.error_type === 'interrupted' && r.status === 500n && r.cost === 0n));
    await pollUntil('the line that says so', async () => /released holds of a process that stopped/.test(b.log()));
    assertBooks(probe, accountId, requests);
  });

  test('a process frozen past its lease loses its holds to the live one; when it resumes, each request still has one record', async () => {
    const a = await start();
    const before = probe.records(accountId).length;
    const inflight = slow(a, 10);
    await pollUntil('10 holds', async () => probe.holds(accountId) === 10);
    // SIGSTOP: the process is alive (its pid answers) but renews nothing, as a hung process or another machine would.
    a.child.kill('SIGSTOP');
    try {
      await pollUntil('the holds released', async () => probe.holds(accountId) === 0, 15_000);
      assert.ok(probe.records(accountId).slice(before).every((r) => r.error_type === 'interrupted'));
    } finally {
      a.child.kill('SIGCONT');
    }
    const results = await Promise.all(inflight);
    assert.ok(results.every((r) => r !== null && r.status === 200), 'the resumed process served its requests');
    // Their settlements take the place of the interrupted records: one record each, the real one.
    await pollUntil('the real records', async () => {
      const recs = probe.records(accountId).slice(before);
      return recs.length === 10 && recs.every((r) => r.status === 200n);
    });
    assertBooks(probe, accountId, requests);
  });
});

describe('the database file deleted or replaced under a running gateway', () => {
  test('is noticed: an error in the log, writes refused with 503 until the file is back, then everything recorded once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'token360-gone-'));
    const db = join(dir, 'token360.db');
    const p = await serve(writeConfig(dir, db));
    try {
      const accountId = (await call(p, 'POST', '/admin/accounts', { name: 'gone', credit: '10' })).json.id as string;
      const key = (await call(p, 'POST', '/admin/keys', { account_id: accountId })).json.key as string;
      let requests = 0;
      const chat = () => {
        requests++;
        return call(p, 'POST', '/v1/chat/completions', { model: 'fast', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }, key);
      };
      assert.equal((await chat()).status, 200);

      // Deleted (a second link keeps the inode, so that the very file can come back).
      linkSync(db, `${db}.kept`);
      unlinkSync(db);
      const refused = await pollUntil('a 503', async () => {
        const r = await chat();
        assert.ok(r.status === 200 || r.status === 503, `status ${r.status}`);
        return r.status === 503 ? r : null;
      });
      assert.equal(refused.json.error.type, 'api_error');
      assert.match(refused.json.error.message, /database/);
      assert.ok(Number(refused.headers.get('retry-after')) >= 1);
      assert.equal((await call(p, 'POST', `/admin/accounts/${accountId}/credit`, { amount: '1' })).status, 503, 'admin writes too');
      await pollUntil('the error line', async () => /"level":50[^\n]*database file was deleted/.test(p.log()));

      // Another file at the path is not the database: still refused, and said so.
      writeFileSync(db, '');
      await pollUntil('the replaced line', async () => /"level":50[^\n]*database file was replaced/.test(p.log()));
      assert.equal((await chat()).status, 503);

      // The original is back: writes resume, and what was refused meanwhile is recorded.
      unlinkSync(db);
      linkSync(`${db}.kept`, db);
      await pollUntil('a 200', async () => (await chat()).status === 200);
      await pollUntil('the line that says the file is back', async () => /database file is back/.test(p.log()));
      const probe = inspect(db);
      try {
        await pollUntil('a record per request', async () => probe.records(accountId).length === requests);
        assertBooks(probe, accountId, requests);
        assert.ok(probe.records(accountId).some((r) => r.status === 503n));
      } finally {
        probe.close();
      }
    } finally {
      p.child.kill('SIGKILL');
      await exited(p.child);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
