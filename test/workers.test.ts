import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { request } from 'undici';
import { openStore } from '../src/store/open.js';
import { CLI, exited, freePort } from './helpers/process.js';

// `token360 serve --workers 3` as an operator runs it: one port, three processes, one SQLite
// file, no Redis (the primary keeps the limiter). What one process promises holds across them.

const ADMIN = 'sk-admin-workers-0123456789abcdefghij';
const dir = mkdtempSync(join(tmpdir(), 'token360-workers-'));
const database = `sqlite:${join(dir, 'db.sqlite')}`;
let child: ChildProcess;
let url: string;
/** Everything the primary and the workers print, one JSON line each. */
const lines: Record<string, unknown>[] = [];

function until<T>(what: string, find: () => T | undefined, ms = 20_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const deadline = setTimeout(() => (clearInterval(poll), reject(new Error(`timed out waiting for ${what}`))), ms);
    const poll = setInterval(() => {
      const v = find();
      if (v !== undefined) {
        clearInterval(poll);
        clearTimeout(deadline);
        resolve(v);
      }
    }, 10);
  });
}

const workerPids = (): number[] => lines.filter((l) => l['msg'] === 'worker listening').map((l) => l['pid'] as number);

async function admin(method: string, path: string, body?: unknown): Promise<Record<string, any>> {
  const r = await request(`${url}/admin${path}`, {
    method: method as 'GET',
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await r.body.text();
  assert.ok(r.statusCode < 300, text);
  return JSON.parse(text) as Record<string, any>;
}

before(async () => {
  const config = join(dir, 'token360.yaml');
  writeFileSync(
    config,
    [
      `database: ${database}`,
      `admin_key: ${ADMIN}`,
      'server: { host: 127.0.0.1 }',
      'providers: { slow: { type: demo, latency_ms: 150 } }',
      'models:',
      '  paid: { pricing: { input: 1000, output: 2000 }, max_output_tokens: 50, deployments: [{ provider: slow, model: paid }] }',
    ].join('\n'),
  );
  const port = await freePort();
  child = spawn(process.execPath, [CLI, 'serve', '--config', config, '--port', String(port), '--workers', '3'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.startsWith('{')) lines.push(JSON.parse(line) as Record<string, unknown>);
    }
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  url = await until('the primary to say it listens', () => {
    assert.equal(child.exitCode, null, stderr);
    const l = lines.find((x) => x['msg'] === 'token360 listening');
    return l === undefined ? undefined : (l['url'] as string);
  });
});

after(async () => {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const pid of workerPids()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('serve --workers 3 (SQLite file, no Redis)', () => {
  test('three workers listen on the one port; the primary says so once', async () => {
    // Log lines are buffered (up to 100 ms): a worker's own line may follow the primary's.
    await until('three workers to say they listen', () => (workerPids().length === 3 ? true : undefined));
    assert.equal(new Set(workerPids()).size, 3);
    assert.equal(lines.filter((l) => l['msg'] === 'token360 listening').length, 1);
    assert.equal(lines.find((l) => l['msg'] === 'workers listening')?.['limits'], 'primary process');
  });

  test('an rpm limit is one limit across the workers, the balance never goes below zero, every request has one record', async () => {
    // Afford about a third of the requests: each costs ~0.02 USD (10 prompt tokens at 1000/M, up to 50 output at 2000/M... held at the cap).
    const acct = await admin('POST', '/accounts', { name: 'w', credit: '0.05' });
    const limited = await admin('POST', '/keys', { account_id: acct['id'], limits: { rpm: 12 } });
    // Concurrent requests open a connection each, and the cluster hands them to every worker in turn.
    const client = new OpenAI({ apiKey: limited['key'], baseURL: `${url}/v1`, maxRetries: 0 });
    const results = await Promise.all(
      Array.from({ length: 36 }, () =>
        client.chat.completions
          .create({ model: 'paid', messages: [{ role: 'user', content: 'hello there' }] })
          .then(() => 200, (e: unknown) => (e instanceof OpenAI.APIError ? (e.status ?? 0) : -1)),
      ),
    );
    const ok = results.filter((s) => s === 200).length;
    const limitedOut = results.filter((s) => s === 429).length;
    const poor = results.filter((s) => s === 402).length;
    assert.equal(ok + limitedOut + poor, 36, `statuses: ${results.join(',')}`);
    assert.ok(ok + poor <= 12, `rpm 12 across three workers: ${ok} served and ${poor} refused for balance got past it`);
    assert.equal(ok + poor, 12, 'exactly the limit is admitted');
    assert.ok(poor > 0, 'the balance ran out for some');
    // Every worker served some: each request's log line names the process that wrote it.
    const served = await until('a request line per request', () => {
      const mine = lines.filter((l) => l['msg'] === 'request' && l['key'] === limited['prefix']);
      return mine.length === 36 ? mine : undefined;
    });
    assert.equal(new Set(served.map((l) => l['pid'])).size, 3, 'the three workers shared the requests');

    // The books, read from the database the workers share.
    const store = await openStore(database);
    try {
      const account = (await store.getAccount(acct['id'] as string))!;
      assert.ok(account.balance >= 0n);
      assert.equal(account.held, 0n);
      const t = await store.ledgerTotals(account.id);
      assert.equal(t.credits - t.debits, account.balance);
      const usage = await store.listUsage({ keyId: limited['id'] as string, limit: 100 });
      assert.equal(usage.data.length, 36, 'one usage record per request, refusals included');
      assert.equal(new Set(usage.data.map((u) => u.traceId)).size, 36);
    } finally {
      await store.close();
    }
  });

  test('/metrics on any worker counts every worker’s requests', async () => {
    const scrape = async (): Promise<number> => {
      const r = await request(`${url}/metrics`, { headers: { authorization: `Bearer ${ADMIN}`, connection: 'close' } });
      const text = await r.body.text();
      let n = 0;
      for (const m of text.matchAll(/^token360_requests_total\{[^}]*\} (\d+)$/gm)) n += Number(m[1]);
      return n;
    };
    // Three scrapes on three new connections: three different workers answer, all with the total.
    for (let i = 0; i < 3; i++) assert.equal(await scrape(), 36);
  });

  test('a worker that dies is replaced; the others serve meanwhile', async () => {
    const [victim] = workerPids();
    process.kill(victim!, 'SIGKILL');
    const replacement = await until('a fourth worker', () => (workerPids().length === 4 ? workerPids()[3] : undefined));
    assert.notEqual(replacement, victim);
    await until('the primary to say why', () => (lines.some((l) => l['msg'] === 'a worker exited; starting another') ? true : undefined));
    const r = await request(`${url}/readyz`, { headers: { connection: 'close' } });
    assert.equal(r.statusCode, 200);
    await r.body.text();
  });

  test('SIGTERM to the primary stops every worker and exits 0', async () => {
    const done = exited(child);
    child.kill('SIGTERM');
    await done;
    assert.equal(child.exitCode, 0);
    for (const pid of workerPids()) {
      assert.throws(() => process.kill(pid, 0), /ESRCH/, `worker ${pid} is gone`);
    }
  });
});
