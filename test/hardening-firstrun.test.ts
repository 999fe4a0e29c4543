import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Agent, request } from 'undici';
import { CLI, exited, freePort, spawnGateway } from './helpers/process.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/upstream.js';

// Issue 8, "found by trying it as a new user would": what a first-time operator runs into.

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function freshDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'token360-firstrun-'));
  dirs.push(d);
  return d;
}

/** The caller's environment without any TOKEN360_* variable. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('TOKEN360_')) env[k] = v;
  return { ...env, ...extra };
}

interface Served {
  child: ChildProcess;
  out(): string;
  err(): string;
}

/** `token360 ...args` in its own process, output collected. */
function run(args: string[], cwd: string, env: Record<string, string> = {}): Served {
  const child = spawn(process.execPath, [CLI, ...args], { cwd, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return { child, out: () => out, err: () => err };
}

/** Polls `probe` until it yields a value; fails with the process output on exit or after `ms`. */
async function waitFor<T>(what: string, s: Served, probe: () => T | null | undefined | Promise<T | null | undefined>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== null && v !== undefined) return v;
    if (s.child.exitCode !== null) assert.fail(`${what}: the process exited (${s.child.exitCode})\nstdout:\n${s.out()}\nstderr:\n${s.err()}`);
    if (Date.now() > deadline) assert.fail(`${what}: timed out\nstdout:\n${s.out()}\nstderr:\n${s.err()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Exit code once the process ends; SIGKILL after `ms` so a hung process cannot hang the suite. */
async function exitCode(child: ChildProcess, ms = 20_000): Promise<number | null> {
  const timer = setTimeout(() => child.kill('SIGKILL'), ms);
  await exited(child);
  clearTimeout(timer);
  return child.exitCode;
}

const chat = (base: string, key: string, body: Record<string, unknown> = {}): Promise<Response> =>
  fetch(`${base}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: 'Hello' }], ...body }),
  });

describe('first start', () => {
  test('a first start that cannot listen exits non-zero naming the port, and the next start prints working demo and admin keys', async () => {
    const cwd = freshDir();
    const taken: Server = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const busyPort = (taken.address() as { port: number }).port;
    let failed: Served;
    try {
      failed = run(['serve'], cwd, { TOKEN360_PORT: String(busyPort) });
      assert.notEqual(await exitCode(failed.child), 0, 'a start that cannot listen fails');
    } finally {
      await new Promise<void>((r) => taken.close(() => r()));
    }
    assert.match(failed.err(), new RegExp(`${busyPort}.*already in use`), failed.err());
    assert.doesNotMatch(failed.err(), /^\s+at /m, 'no stack trace');
    assert.doesNotMatch(failed.out() + failed.err(), /sk-[0-9A-Za-z]{20,}/, 'no key printed by the failed start');

    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const second = run(['serve'], cwd, { TOKEN360_PORT: String(port) });
    try {
      const demoKey = await waitFor('the demo key', second, () => /demo API key:\s*(sk-[0-9A-Za-z]{40,})/.exec(second.out())?.[1]);
      const adminKey = await waitFor('the admin key', second, () => /admin key[^:\n]*:\s*(sk-\S+)/.exec(second.out())?.[1]);
      const r = await chat(base, demoKey);
      assert.equal(r.status, 200, await r.clone().text());
      assert.equal(((await r.json()) as any).object, 'chat.completion');
      const keys = await fetch(`${base}/admin/keys`, { headers: { authorization: `Bearer ${adminKey}` } });
      assert.equal(keys.status, 200);
      assert.equal(((await keys.json()) as any).data.length, 1, 'one demo key, none left by the failed start');
    } finally {
      second.child.kill('SIGTERM');
      assert.equal(await exitCode(second.child), 0, second.err());
    }
  });

  test('processes starting together on one empty database make one demo account and one admin key, and each prints its keys only if it made them', async () => {
    const cwd = freshDir();
    const ports = await Promise.all([freePort(), freePort(), freePort()]);
    const procs = ports.map((port) => run(['serve'], cwd, { TOKEN360_PORT: String(port) }));
    try {
      // Each start prints its keys (if any) before its `token360 listening` line.
      await Promise.all(procs.map((p) => waitFor('the listening line', p, () => (p.out().includes('token360 listening') ? true : null))));
      const demoKeys = procs.flatMap((p) => [...p.out().matchAll(/demo API key:\s*(sk-[0-9A-Za-z]{40,})/g)].map((m) => m[1]!));
      const adminKeys = procs.flatMap((p) => [...p.out().matchAll(/admin key[^:\n]*:\s*(sk-\S+)/g)].map((m) => m[1]!));
      assert.equal(demoKeys.length, 1, `one demo key printed in all:\n${procs.map((p) => p.out()).join('\n---\n')}`);
      assert.equal(adminKeys.length, 1, 'one admin key printed in all');
      for (const port of ports) {
        const base = `http://127.0.0.1:${port}`;
        assert.equal((await chat(base, demoKeys[0]!)).status, 200);
        const keys = await fetch(`${base}/admin/keys`, { headers: { authorization: `Bearer ${adminKeys[0]}` } });
        assert.equal(keys.status, 200, `the printed admin key works on every process (port ${port})`);
        assert.equal(((await keys.json()) as any).data.length, 1);
      }
    } finally {
      for (const p of procs) p.child.kill('SIGTERM');
      for (const p of procs) assert.equal(await exitCode(p.child), 0, p.err());
    }
  });
});

describe('SIGTERM with keep-alive clients', () => {
  const ADMIN = 'sk-admin-firstrun-0123456789abcdefghij';
  let upstream: FakeUpstream;
  let configPath: string;

  /** A spawned gateway on the fake upstream, with a 30 s shutdown deadline; an account and a key on it. */
  async function gateway(): Promise<{ child: ChildProcess; base: string; key: string }> {
    upstream ??= await startFakeUpstream();
    if (configPath === undefined) {
      const dir = freshDir();
      configPath = join(dir, 'token360.yaml');
      writeFileSync(
        configPath,
        `database: sqlite:${join(dir, 'data', 'db')}\nlog_level: warn\nadmin_key: ${ADMIN}\nserver:\n  shutdown_timeout_ms: 30000\n` +
          `providers:\n  up:\n    type: openai\n    base_url: ${upstream.url}\n    api_key: sk-upstream-secret\n` +
          `models:\n  m:\n    pricing: { input: 1, output: 2 }\n    deployments: [{ provider: up, model: gpt-4o-mini }]\n`,
      );
    }
    const port = await freePort();
    const child = await spawnGateway(configPath, port);
    const base = `http://127.0.0.1:${port}`;
    const admin = (path: string, body: unknown): Promise<any> =>
      fetch(base + path, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) }).then((r) => r.json());
    const account = await admin('/admin/accounts', { name: 'shutdown', credit: '10' });
    const { key } = await admin('/admin/keys', { account_id: account.id });
    return { child, base, key };
  }

  after(() => upstream?.close());

  /** The process, sent SIGTERM, must exit 0 within 5 s of the last response having ended. */
  async function stopsPromptly(child: ChildProcess, responsesEnded: Promise<unknown>): Promise<void> {
    const killer = setTimeout(() => child.kill('SIGKILL'), 40_000);
    await responsesEnded;
    const ended = Date.now();
    await exited(child);
    clearTimeout(killer);
    const took = Date.now() - ended;
    assert.equal(child.exitCode, 0, `exit code (signal ${child.signalCode})`);
    assert.ok(took < 5_000, `exited ${took} ms after the last response ended (shutdown_timeout_ms is 30000)`);
  }

  const body = (stream: boolean) => JSON.stringify({ model: 'm', stream, messages: [{ role: 'user', content: 'hi' }] });

  test('a stream in flight at SIGTERM ends whole, then the idle keep-alive connection does not hold the exit', async () => {
    const { child, base, key } = await gateway();
    upstream.setBehavior((req) => ((req.body as { stream?: boolean }).stream === true ? { kind: 'stream', chunkDelayMs: 150 } : { kind: 'ok' }));
    const agent = new Agent({ keepAliveTimeout: 60_000 });
    try {
      const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
      // A finished request first, so the connection has served one response and stays open.
      const warm = await request(`${base}/v1/chat/completions`, { dispatcher: agent, method: 'POST', headers, body: body(false) });
      assert.equal(warm.statusCode, 200);
      await warm.body.text();
      const res = await request(`${base}/v1/chat/completions`, { dispatcher: agent, method: 'POST', headers, body: body(true) });
      assert.equal(res.statusCode, 200);
      assert.notEqual(res.headers['connection'], 'close');
      let text = '';
      const read = (async () => {
        for await (const c of res.body) {
          text += (c as Buffer).toString();
          if (child.signalCode === null && !child.killed) child.kill('SIGTERM');
        }
      })();
      await stopsPromptly(child, read);
      assert.ok(text.includes('data: [DONE]'), `the stream ended whole:\n${text}`);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await agent.close();
    }
  });

  test('a stream that ended before SIGTERM leaves only an idle keep-alive connection: it does not hold the exit', async () => {
    const { child, base, key } = await gateway();
    upstream.setBehavior({ kind: 'stream' });
    const agent = new Agent({ keepAliveTimeout: 60_000 });
    try {
      const res = await request(`${base}/v1/chat/completions`, {
        dispatcher: agent, method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: body(true),
      });
      assert.equal(res.statusCode, 200);
      assert.notEqual(res.headers['connection'], 'close');
      const text = await res.body.text();
      assert.ok(text.includes('data: [DONE]'), text);
      // The connection stays open in the agent's pool, idle, when the signal comes.
      child.kill('SIGTERM');
      await stopsPromptly(child, Promise.resolve());
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await agent.close();
    }
  });

  test('a non-streamed request in flight at SIGTERM is answered, then the idle keep-alive connection does not hold the exit', async () => {
    const { child, base, key } = await gateway();
    upstream.setBehavior({ kind: 'ok', delayMs: 300 });
    const agent = new Agent({ keepAliveTimeout: 60_000 });
    try {
      const seen = upstream.requests.length;
      const pending = request(`${base}/v1/chat/completions`, {
        dispatcher: agent, method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: body(false),
      });
      // SIGTERM once the request has reached the upstream: it is in flight in the gateway.
      const deadline = Date.now() + 20_000;
      while (upstream.requests.length === seen && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      child.kill('SIGTERM');
      const answered = pending.then(async (res) => ({ status: res.statusCode, json: (await res.body.json()) as any }));
      await stopsPromptly(child, answered);
      const r = await answered;
      assert.equal(r.status, 200);
      assert.equal(r.json.object, 'chat.completion');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await agent.close();
    }
  });
});

describe('the CLI run from another directory', () => {
  /** `token360 ...args` to completion. */
  async function cli(args: string[], cwd: string, env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const p = run(args, cwd, env);
    const code = await exitCode(p.child);
    return { code, stdout: p.out(), stderr: p.err() };
  }

  test('with no database where it looks, an admin command fails naming the path and creates nothing', async () => {
    const cwd = freshDir();
    for (const args of [['keys', 'list'], ['accounts', 'create', '--name', 'x', '--credit', '5', '--json'], ['usage', '--json']]) {
      const r = await cli(args, cwd);
      assert.notEqual(r.code, 0, `${args.join(' ')} exited 0: ${r.stdout}`);
      const expected = join(cwd, 'data', 'token360.db');
      assert.match(r.stderr, new RegExp(`no database at ${expected.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`), r.stderr);
      assert.match(r.stderr, /token360 serve/);
      assert.match(r.stderr, /token360 migrate/);
      assert.match(r.stderr, /--config/);
      assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
      assert.equal(r.stdout, '', 'nothing on stdout');
      assert.deepEqual(readdirSync(cwd), [], `${args.join(' ')} created nothing`);
    }
  });

  test('TOKEN360_DATABASE_URL, --config and TOKEN360_CONFIG find the database from anywhere; stderr names it, --json stdout stays clean', async () => {
    const home = freshDir();
    const elsewhere = freshDir();
    const db = join(home, 'data', 'gw.db');
    const url = `sqlite:${db}`;

    const migrated = await cli(['migrate'], home, { TOKEN360_DATABASE_URL: url });
    assert.equal(migrated.code, 0, migrated.stderr);
    assert.match(migrated.stdout, new RegExp(`created sqlite:${db}`));
    assert.match(migrated.stdout, /applied migration 1/);
    const again = await cli(['migrate', '--json'], home, { TOKEN360_DATABASE_URL: url });
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(JSON.parse(again.stdout), { database: url, created: false, applied: [] }, 'a second migrate changes nothing');

    const made = await cli(['accounts', 'create', '--name', 'acme', '--credit', '5', '--json'], elsewhere, { TOKEN360_DATABASE_URL: url });
    assert.equal(made.code, 0, made.stderr);
    const account = JSON.parse(made.stdout);
    assert.equal(account.name, 'acme');
    assert.match(made.stderr, new RegExp(`database sqlite:${db} \\(from TOKEN360_DATABASE_URL\\)`));

    const configPath = join(home, 'token360.yaml');
    writeFileSync(configPath, `database: ${url}\n`);
    const viaFlag = await cli(['--config', configPath, 'accounts', 'show', account.id, '--json'], elsewhere);
    assert.equal(viaFlag.code, 0, viaFlag.stderr);
    assert.equal(JSON.parse(viaFlag.stdout).balance, '5.000000000');
    assert.match(viaFlag.stderr, new RegExp(`database sqlite:${db} \\(from ${configPath}\\)`));
    const viaEnv = await cli(['keys', 'list', '--json'], elsewhere, { TOKEN360_CONFIG: configPath });
    assert.equal(viaEnv.code, 0, viaEnv.stderr);
    assert.deepEqual(JSON.parse(viaEnv.stdout), []);
    // And from the directory of the config file, found as `serve` finds it.
    const viaCwd = await cli(['accounts', 'show', account.id], home);
    assert.equal(viaCwd.code, 0, viaCwd.stderr);
    assert.match(viaCwd.stdout, /acme/);

    assert.deepEqual(readdirSync(elsewhere), [], 'nothing created where the commands ran');
    assert.ok(!existsSync(join(home, 'data', 'token360.db')), 'no second database beside the first');
  });
});

describe('the demo provider, as the OpenAI SDK sees it', () => {
  let gw: TestGateway;
  let key: string;
  let accountId: string;
  const messages = [{ role: 'user' as const, content: 'Say something' }];

  test('start', async () => {
    gw = await startTestGateway();
    ({ key, accountId } = await gw.createKey());
  });
  after(() => gw?.close());

  /** The usage record of the request `traceId`, once written (settlement may trail the response by a moment). */
  async function recordOf(traceId: string | null): Promise<any> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const found = (await gw.admin('GET', `/usage?account_id=${accountId}`)).json.data.find((u: any) => u.trace_id === traceId);
      if (found !== undefined) return found;
      assert.ok(Date.now() < deadline, `no usage record for ${traceId}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  test('n choices, indices 0..n-1, usage counting all of them', async () => {
    const client = gw.client(key);
    const one = await client.chat.completions.create({ model: 'demo', messages });
    const { data: three, response } = await client.chat.completions.create({ model: 'demo', messages, n: 3 }).withResponse();
    assert.deepEqual(three.choices.map((c) => c.index), [0, 1, 2]);
    for (const c of three.choices) {
      assert.equal(c.message.content, one.choices[0]!.message.content);
      assert.equal(c.finish_reason, 'stop');
    }
    assert.equal(three.usage!.prompt_tokens, one.usage!.prompt_tokens);
    assert.equal(three.usage!.completion_tokens, 3 * one.usage!.completion_tokens);
    const record = await recordOf(response.headers.get('x-request-id'));
    assert.equal(record.completion_tokens, three.usage!.completion_tokens, 'the usage record bills every choice');
  });

  test('n choices streamed: every chunk names its choice by index, each choice ends, the usage chunk counts them all', async () => {
    const client = gw.client(key);
    const one = await client.chat.completions.create({ model: 'demo', messages, max_tokens: 5 });
    const { data: stream, response } = await client.chat.completions
      .create({ model: 'demo', messages, max_tokens: 5, n: 2, stream: true, stream_options: { include_usage: true } })
      .withResponse();
    const text = ['', ''];
    const finish: (string | null)[] = [null, null];
    let completionTokens: number | undefined;
    for await (const chunk of stream) {
      if (chunk.usage) completionTokens = chunk.usage.completion_tokens;
      for (const c of chunk.choices) {
        assert.ok(c.index === 0 || c.index === 1, `index ${c.index}`);
        text[c.index] += c.delta.content ?? '';
        if (c.finish_reason) finish[c.index] = c.finish_reason;
      }
    }
    assert.deepEqual(text, [one.choices[0]!.message.content, one.choices[0]!.message.content]);
    assert.deepEqual(finish, ['length', 'length'], 'max_tokens caps each choice');
    assert.equal(completionTokens, 2 * one.usage!.completion_tokens);
    assert.equal((await recordOf(response.headers.get('x-request-id'))).completion_tokens, completionTokens);
  });

  test('embeddings: one per input; the SDK default (base64) decodes to the very floats of encoding_format float; dimensions honoured', async () => {
    const client = gw.client(key);
    const input = ['first input', 'second input', 'third'];
    const viaBase64 = await client.embeddings.create({ model: 'demo', input });
    const viaFloat = await client.embeddings.create({ model: 'demo', input, encoding_format: 'float' });
    assert.deepEqual(viaBase64.data.map((d) => d.index), [0, 1, 2]);
    assert.deepEqual(viaBase64.data.map((d) => d.embedding), viaFloat.data.map((d) => d.embedding));
    assert.notDeepEqual(viaFloat.data[0]!.embedding, viaFloat.data[1]!.embedding, 'different inputs, different vectors');
    for (const d of viaFloat.data) {
      assert.equal(d.embedding.length, 16);
      assert.ok(Math.abs(Math.hypot(...d.embedding) - 1) < 1e-5, 'a unit vector');
    }
    const small = await client.embeddings.create({ model: 'demo', input: 'x', dimensions: 8 });
    assert.equal(small.data.length, 1);
    assert.equal(small.data[0]!.embedding.length, 8);

    // On the wire: base64 of little-endian float32.
    const raw = await gw.http('POST', '/v1/embeddings', { key, body: { model: 'demo', input: ['first input'], encoding_format: 'base64', dimensions: 4 } });
    assert.equal(raw.status, 200, raw.text);
    const bytes = Buffer.from(raw.json.data[0].embedding, 'base64');
    assert.equal(bytes.length, 16);
    const floats = [0, 1, 2, 3].map((i) => bytes.readFloatLE(i * 4));
    const asFloat = await gw.http('POST', '/v1/embeddings', { key, body: { model: 'demo', input: ['first input'], dimensions: 4 } });
    assert.deepEqual(floats, asFloat.json.data[0].embedding);
  });

  test('embeddings with an encoding_format or dimensions the model cannot take: a 400 naming the parameter, nothing charged', async () => {
    const before = (await gw.http('GET', '/v1/me', { key })).json;
    for (const [body, param] of [
      [{ encoding_format: 'int8' }, 'encoding_format'],
      [{ dimensions: 0 }, 'dimensions'],
      [{ dimensions: 1.5 }, 'dimensions'],
      [{ dimensions: 1e9 }, 'dimensions'],
    ] as const) {
      const r = await gw.http('POST', '/v1/embeddings', { key, body: { model: 'demo', input: 'x', ...body } });
      assert.equal(r.status, 400, r.text);
      assert.equal(r.json.error.type, 'invalid_request_error');
      assert.equal(r.json.error.param, param);
      assert.equal(r.json.error.traceId, r.headers['x-request-id']);
    }
    const after = (await gw.http('GET', '/v1/me', { key })).json;
    assert.equal(after.balance, before.balance);
    assert.equal(after.held, before.held);
  });
});
