import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { startTestGateway, type HttpResult, type TestGateway } from './helpers/gateway.js';

// The CLI (SPEC §5, last paragraph) as an operator runs it: the built `token360` command against
// the configured database, and a running server that sees its changes on the next request.

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'dist', 'cli', 'main.js');

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The caller's environment without any TOKEN360_* variable, so the config file alone decides. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('TOKEN360_')) env[k] = v;
  return env;
}

const dir = mkdtempSync(join(tmpdir(), 'token360-cli-'));
const dbPath = join(dir, 'data', 'db');
const configPath = join(dir, 'token360-cli.yaml');

/** `token360 --config <tmp> ...args`, run to completion; resolves with the exit code whatever it is. */
function cli(...args: string[]): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [CLI, '--config', configPath, ...args],
      { cwd: dir, env: cleanEnv(), timeout: 30_000, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err !== null && typeof (err as { code?: unknown }).code !== 'number') {
          reject(new Error(`token360 ${args.join(' ')}: ${err.message}\n${stderr}`));
          return;
        }
        resolve({ code: err === null ? 0 : (err as unknown as { code: number }).code, stdout, stderr });
      },
    );
  });
}

/** Runs a command that must succeed with --json output, and parses it. */
async function cliJson(...args: string[]): Promise<any> {
  const r = await cli(...args, '--json');
  assert.equal(r.code, 0, `token360 ${args.join(' ')} failed: ${r.stderr}`);
  try {
    return JSON.parse(r.stdout);
  } catch {
    assert.fail(`token360 ${args.join(' ')} --json printed no JSON:\n${r.stdout}`);
  }
}

/** An operator-facing failure: non-zero exit, one line on stderr, no stack trace. */
function assertCleanFailure(r: RunResult, mentions?: RegExp): void {
  assert.notEqual(r.code, 0, `expected a non-zero exit; stdout: ${r.stdout}`);
  assert.doesNotMatch(r.stderr, /^\s+at /m, `stack trace on stderr:\n${r.stderr}`);
  // Every command names its database on a line of its own first (see hardening-firstrun.test.ts).
  const lines = r.stderr.trim().split('\n').filter((l) => !l.startsWith('token360: database '));
  assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
  assert.ok(lines[0]!.length > 0 && lines[0]!.length < 300);
  if (mentions) assert.match(lines[0]!, mentions);
}

before(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npx tsc -p tsconfig.json\` first (npm test does)`);
  writeFileSync(configPath, `database: sqlite:${dbPath}\nlog_level: silent\n`);
  // Only `serve` and `migrate` create a database.
  const created = await cli('migrate');
  assert.equal(created.code, 0, created.stderr);
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('accounts', () => {
  let id: string;

  test('accounts create --name x --credit 5 --json', async () => {
    const a = await cliJson('accounts', 'create', '--name', 'x', '--credit', '5');
    assert.equal(typeof a.id, 'string');
    assert.equal(a.name, 'x');
    assert.equal(a.balance, '5.000000000');
    assert.equal(a.held, '0.000000000');
    assert.equal(typeof a.created_at, 'string');
    id = a.id;
    assert.ok(existsSync(dbPath), 'the configured database file was created');
  });

  test('accounts show prints the account, as JSON or as text', async () => {
    const a = await cliJson('accounts', 'show', id);
    assert.equal(a.id, id);
    assert.equal(a.balance, '5.000000000');
    const text = await cli('accounts', 'show', id);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, new RegExp(id));
    assert.match(text.stdout, /5\.000000000/);
  });

  test('accounts credit --idempotency-key twice credits once; another amount fails', async () => {
    const c1 = await cliJson('accounts', 'credit', id, '--amount', '1', '--idempotency-key', 'k');
    assert.equal(c1.balance, '6.000000000');
    const c2 = await cliJson('accounts', 'credit', id, '--amount', '1', '--idempotency-key', 'k');
    assert.equal(c2.balance, '6.000000000');
    assert.equal((await cliJson('accounts', 'show', id)).balance, '6.000000000');

    assertCleanFailure(await cli('accounts', 'credit', id, '--amount', '2', '--idempotency-key', 'k'), /idempotency/i);
    assert.equal((await cliJson('accounts', 'show', id)).balance, '6.000000000');

    const c3 = await cliJson('accounts', 'credit', id, '--amount', '0.5', '--note', 'bonus');
    assert.equal(c3.balance, '6.500000000');
  });

  test('errors exit non-zero with one line and no stack trace', async () => {
    const cases: [string[], RegExp][] = [
      [['accounts', 'show', 'acct_nope'], /acct_nope/],
      [['accounts', 'credit', id, '--amount', '1.0000000001'], /amount/],
      [['accounts', 'credit', id, '--amount', '-3'], /amount/],
      [['accounts', 'credit', 'acct_nope', '--amount', '1'], /acct_nope/],
      [['accounts', 'create', '--name', 'y', '--credit', 'lots'], /credit/],
      [['keys', 'create', '--account', 'acct_nope'], /acct_nope/],
      [['keys', 'create', '--account', id, '--rpm', 'fast'], /rpm/],
      [['keys', 'freeze', 'key_nope'], /key_nope/],
      [['keys', 'revoke', 'key_nope'], /key_nope/],
      [['usage', '--limit', '10001'], /limit/],
    ];
    const results = await Promise.all(cases.map(([args]) => cli(...args)));
    results.forEach((r, i) => assertCleanFailure(r, cases[i]![1]));
    assert.equal((await cliJson('accounts', 'show', id)).balance, '6.500000000', 'failed commands changed nothing');
  });
});

describe('keys and usage, with a server running on the same database', () => {
  let gw: TestGateway;
  let accountId: string;
  let keyId: string;
  let secret: string;

  const chat = (model = 'demo'): Promise<HttpResult> =>
    gw.http('POST', '/v1/chat/completions', { key: secret, body: { model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 8 } });

  before(async () => {
    accountId = (await cliJson('accounts', 'create', '--name', 'live', '--credit', '5')).id;
    gw = await startTestGateway({ database: `sqlite:${dbPath}` });
  });
  after(async () => {
    await gw?.close();
  });

  test('keys create --models --rpm --json prints the key once', async () => {
    const k = await cliJson('keys', 'create', '--account', accountId, '--name', 'cli', '--models', 'demo,glm-*', '--rpm', '10');
    assert.match(k.key, /^sk-[0-9A-Za-z]{40,}$/);
    assert.equal(k.account_id, accountId);
    assert.deepEqual(k.models, ['demo', 'glm-*']);
    assert.deepEqual(k.limits, { rpm: 10 });
    assert.equal(k.frozen, false);
    assert.ok(k.key.startsWith(k.prefix));
    keyId = k.id;
    secret = k.key;
  });

  test('keys list --json shows the key without its secret', async () => {
    const all = await cli('keys', 'list', '--json');
    assert.equal(all.code, 0, all.stderr);
    const list = JSON.parse(all.stdout) as any[];
    const mine = list.find((k) => k.id === keyId);
    assert.ok(mine, 'the new key is listed');
    assert.ok(!('key' in mine));
    assert.ok(!all.stdout.includes(secret), 'no secret in the output');
    const ofAccount = await cliJson('keys', 'list', '--account', accountId);
    assert.deepEqual(ofAccount.map((k: any) => k.id), [keyId]);
    const text = await cli('keys', 'list');
    assert.ok(!text.stdout.includes(secret));
  });

  test('the running server accepts the CLI-made key, and sees freeze, unfreeze and revoke on the very next request', async () => {
    const r1 = await chat();
    assert.equal(r1.status, 200, r1.text);
    assert.equal(r1.headers['x-ratelimit-limit-requests'], '10', 'the rpm limit set by the CLI applies');
    const denied = await chat('gpt-4o');
    assert.ok(denied.status === 403 || denied.status === 404, denied.text);

    const frozen = await cliJson('keys', 'freeze', keyId);
    assert.equal(frozen.frozen, true);
    const r2 = await chat();
    assert.equal(r2.status, 403, r2.text);
    assert.equal(r2.json.error.type, 'api_key_frozen');

    const thawed = await cliJson('keys', 'unfreeze', keyId);
    assert.equal(thawed.frozen, false);
    const r3 = await chat();
    assert.equal(r3.status, 200, r3.text);

    const revoked = await cli('keys', 'revoke', keyId);
    assert.equal(revoked.code, 0, revoked.stderr);
    const r4 = await chat();
    assert.equal(r4.status, 401, r4.text);
    assert.equal(r4.json.error.type, 'invalid_api_key');

    const listed = await cliJson('keys', 'list', '--account', accountId);
    assert.deepEqual(listed, [], 'a revoked key is no longer listed');
    assertCleanFailure(await cli('keys', 'unfreeze', keyId), new RegExp(keyId));
  });

  test('admin changes through the server are visible to the CLI', async () => {
    const credited = await gw.admin('POST', `/accounts/${accountId}/credit`, { amount: '2' }, { 'idempotency-key': 'srv-1' });
    assert.equal(credited.status, 200, credited.text);
    const a = await cliJson('accounts', 'show', accountId);
    assert.equal(a.balance, credited.json.balance);
    // The idempotency key is the account's, whichever front end used it.
    const again = await cliJson('accounts', 'credit', accountId, '--amount', '2', '--idempotency-key', 'srv-1');
    assert.equal(again.balance, credited.json.balance);
  });

  test('usage --json lists the records the server wrote, newest first', async () => {
    const deadline = Date.now() + 5000;
    let rows: any[] = [];
    while (Date.now() < deadline) {
      rows = ((await cliJson('usage', '--key', keyId)) as any).data;
      if (rows.length >= 4) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    // 200, refused model, 403 frozen, 200, 401 after revoke leaves no record (not authenticated).
    assert.equal(rows.length, 4, JSON.stringify(rows, null, 2));
    assert.deepEqual(rows.map((u) => u.status), [200, 403, rows[2].status, 200]);
    assert.ok(rows[2].status === 403 || rows[2].status === 404);
    for (const u of rows) {
      assert.equal(u.key_id, keyId);
      assert.equal(u.account_id, accountId);
      assert.match(u.cost, /^\d+\.\d{9}$/);
      for (const f of ['trace_id', 'model', 'provider', 'upstream_model', 'prompt_tokens', 'completion_tokens', 'cached_tokens', 'status', 'error_type', 'stream', 'latency_ms', 'ttft_ms', 'created_at']) {
        assert.ok(f in u, `usage field ${f}`);
      }
    }
    assert.equal(rows[1].error_type, 'api_key_frozen');
    assert.equal(rows[1].cost, '0.000000000');

    // Paging through the CLI: the admin API's shape, next_cursor null on the last page.
    const page = (await cliJson('usage', '--account', accountId, '--limit', '2')) as any;
    assert.equal(page.data.length, 2);
    assert.equal(typeof page.next_cursor, 'string');
    const rest = (await cliJson('usage', '--account', accountId, '--limit', '2', '--cursor', page.next_cursor)) as any;
    assert.equal(rest.data.length, 2);
    assert.equal(rest.next_cursor, null, 'the last page carries no cursor');
    assert.deepEqual([...page.data, ...rest.data].map((u: any) => u.trace_id), rows.map((u) => u.trace_id));
  });

  test('usage --summary: the totals of the records, as the admin API gives them (--json) or as a table', async () => {
    const range = ['--from', '2020-01-01', '--to', '2999-01-01'];
    const records = ((await cliJson('usage', '--account', accountId, '--limit', '10000')) as any).data as any[];
    assert.ok(records.length >= 4);
    const json = await cliJson('usage', '--summary', '--group-by', 'model', '--account', accountId, ...range);
    const api = await gw.admin('GET', `/usage/summary?group_by=model&account_id=${accountId}&from=2020-01-01&to=2999-01-01`);
    assert.deepEqual(json, api.json);
    const models = [...new Set(records.map((u) => u.model))];
    assert.deepEqual(json.data.map((r: any) => r.group).sort(), models.sort());
    for (const row of json.data) {
      const of = records.filter((u) => u.model === row.group);
      assert.equal(row.requests, of.length);
      assert.equal(row.errors, of.filter((u) => u.status >= 400).length);
      assert.equal(row.prompt_tokens, of.reduce((n, u) => n + u.prompt_tokens, 0));
    }
    assert.equal(json.total.requests, records.length);

    const text = await cli('usage', '--summary', '--group-by', 'model', '--account', accountId, ...range);
    assert.equal(text.code, 0, text.stderr);
    const lines = text.stdout.trim().split('\n');
    assert.match(lines[0]!, /^usage from 2020-01-01T00:00:00\.000Z to 2999-01-01T00:00:00\.000Z$/);
    assert.match(lines[1]!, /^model\s+requests\s+errors\s+prompt\s+completion\s+cached\s+cache_write\s+reasoning\s+cost_usd$/);
    const cells = lines.slice(2).map((l) => l.split(/\s+/));
    assert.deepEqual(
      cells,
      [...json.data, { group: 'total', ...json.total }].map((r: any) =>
        [r.group, r.requests, r.errors, r.prompt_tokens, r.completion_tokens, r.cached_tokens, r.cache_write_tokens, r.reasoning_tokens, r.cost].map(String),
      ),
    );
    // By day, the default grouping: today's UTC date.
    const byDay = await cliJson('usage', '--summary', '--account', accountId);
    assert.deepEqual(byDay.data.map((r: any) => r.group), [new Date().toISOString().slice(0, 10)]);
    assertCleanFailure(await cli('usage', '--summary', '--group-by', 'week'), /group_by/);
    assertCleanFailure(await cli('usage', '--summary', '--from', 'last tuesday'), /from/);
  });
});
