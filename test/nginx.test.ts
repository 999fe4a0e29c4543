import Anthropic from '@anthropic-ai/sdk';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { request } from 'undici';
import { exited, freePort, spawnGateway } from './helpers/process.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/upstream.js';

// deploy/nginx/token360.conf, as shipped (only its ports rewritten), in front of three replicas
// on one database and one Redis; the SDKs talk to nginx. nginx comes from Debian's packages
// (`.ci/run` installs it).

const ADMIN = 'sk-admin-nginx-0123456789abcdefghijk';
const dir = mkdtempSync(join(tmpdir(), 'token360-nginx-'));
const replicas: ChildProcess[] = [];
const replicaPorts: number[] = [];
let nginx: ChildProcess;
let nginxLog = '';
let url: string;
let upstream: FakeUpstream;

before(async () => {
  upstream = await startFakeUpstream({ behavior: { kind: 'ok', text: 'Hello through nginx.', usage: { prompt_tokens: 9, completion_tokens: 4 } } });
  const config = join(dir, 'token360.yaml');
  writeFileSync(
    config,
    [
      `database: sqlite:${join(dir, 'db.sqlite')}`,
      'redis: redis://127.0.0.1:6379',
      `admin_key: ${ADMIN}`,
      'log_level: warn',
      'server: { host: 127.0.0.1, trust_proxy: ["127.0.0.1"] }',
      `providers: { up: { type: openai, base_url: "${upstream.url}", api_key: sk-upstream-nginx } }`,
      'models:',
      '  gpt-x: { pricing: { input: 1, output: 2 }, deployments: [{ provider: up, model: gpt-x-up }] }',
    ].join('\n'),
  );
  for (let i = 0; i < 3; i++) {
    const port = await freePort();
    replicaPorts.push(port);
    replicas.push(await spawnGateway(config, port));
  }

  const listen = await freePort();
  const shipped = readFileSync(new URL('../deploy/nginx/token360.conf', import.meta.url), 'utf8');
  const site = shipped
    .replace('listen 8360;', `listen 127.0.0.1:${listen};`)
    .replace(/127\.0\.0\.1:836([123])/g, (_m, n: string) => `127.0.0.1:${replicaPorts[Number(n) - 1]}`);
  assert.ok(site.includes(`127.0.0.1:${replicaPorts[2]}`), 'the shipped config names three replicas at 8361-8363');
  for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, d));
  writeFileSync(join(dir, 'site.conf'), site);
  writeFileSync(
    join(dir, 'nginx.conf'),
    [
      'worker_processes 1;',
      `pid ${join(dir, 'nginx.pid')};`,
      'error_log stderr warn;',
      'events { worker_connections 1024; }',
      'http {',
      '  access_log off;',
      ...['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((d) => `  ${d === 'body' ? 'client_body' : d}_temp_path ${join(dir, d)};`),
      `  include ${join(dir, 'site.conf')};`,
      '}',
    ].join('\n'),
  );
  nginx = spawn(existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx', ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off; user root;'], { stdio: ['ignore', 'pipe', 'pipe'] });
  nginx.stderr!.on('data', (d: Buffer) => (nginxLog += d.toString()));
  nginx.on('error', (e) => (nginxLog += `cannot run nginx (is it installed? apt-get install nginx-light): ${e.message}`));
  url = `http://127.0.0.1:${listen}`;
  for (const deadline = Date.now() + 10_000; ; ) {
    const up = await request(`${url}/nginx-healthz`).then((r) => (r.body.dump(), r.statusCode === 200), () => false);
    if (up) break;
    assert.ok(nginx.exitCode === null && Date.now() < deadline, `nginx did not start: ${nginxLog}`);
    await new Promise((r) => setTimeout(r, 50));
  }
});

after(async () => {
  nginx?.kill('SIGTERM');
  if (nginx !== undefined) await exited(nginx);
  for (const r of replicas) r.kill('SIGTERM');
  await Promise.all(replicas.map((r) => exited(r)));
  await upstream?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function newKey(): Promise<string> {
  const call = async (path: string, body: unknown): Promise<Record<string, string>> => {
    const r = await request(`${url}/admin${path}`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const text = await r.body.text();
    assert.equal(r.statusCode, 201, text);
    return JSON.parse(text) as Record<string, string>;
  };
  const account = await call('/accounts', { name: 'nginx', credit: '10' });
  return (await call('/keys', { account_id: account['id'] }))['key']!;
}

describe('nginx in front of three replicas (deploy/nginx/token360.conf)', () => {
  test('the OpenAI SDK: chat completions, streamed and not, with the gateway headers through', async () => {
    const key = await newKey();
    const client = new OpenAI({ apiKey: key, baseURL: `${url}/v1`, maxRetries: 0 });
    for (let i = 0; i < 6; i++) {
      const { data, response } = await client.chat.completions.create({ model: 'gpt-x', messages: [{ role: 'user', content: 'hi' }] }).withResponse();
      assert.equal(data.choices[0]!.message.content, 'Hello through nginx.');
      assert.match(response.headers.get('x-request-id') ?? '', /^req_[0-9a-f]{32}$/);
      assert.equal(response.headers.get('x-token360-deployment'), 'up/gpt-x-up');
    }
    const stream = await client.chat.completions.create({ model: 'gpt-x', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'hi' }] });
    let text = '';
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      usage = chunk.usage ?? usage;
    }
    assert.equal(text, 'Hello through nginx.');
    assert.equal(usage?.completion_tokens, 4);
  });

  test('a stream reaches the client event by event: the first chunk arrives while the upstream still holds the rest', { timeout: 20_000 }, async () => {
    const key = await newKey();
    upstream.setBehavior({ kind: 'stream', chunks: ['first', ' second'], hangAfter: 1 });
    try {
      const client = new OpenAI({ apiKey: key, baseURL: `${url}/v1`, maxRetries: 0 });
      const ac = new AbortController();
      const stream = await client.chat.completions.create({ model: 'gpt-x', stream: true, messages: [{ role: 'user', content: 'hi' }] }, { signal: ac.signal });
      for await (const chunk of stream) {
        if ((chunk.choices[0]?.delta.content ?? '') === '') continue;
        assert.equal(chunk.choices[0]!.delta.content, 'first');
        break; // the upstream will never send more: only an unbuffered proxy gets us here
      }
      ac.abort();
    } finally {
      upstream.setBehavior({ kind: 'ok', text: 'Hello through nginx.', usage: { prompt_tokens: 9, completion_tokens: 4 } });
    }
  });

  test('the Anthropic SDK: a translated Messages stream in grammar', async () => {
    const key = await newKey();
    const client = new Anthropic({ apiKey: key, baseURL: url, maxRetries: 0 });
    const stream = client.messages.stream({ model: 'gpt-x', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] });
    const message = await stream.finalMessage();
    assert.equal(message.content.length, 1);
    assert.equal(message.content[0]?.type === 'text' ? message.content[0].text : null, 'Hello through nginx.');
    assert.equal(message.usage.output_tokens, 4);
  });

  test('errors keep the gateway shape through nginx; every replica served some of the requests', async () => {
    const r = await request(`${url}/v1/chat/completions`, { method: 'POST', headers: { authorization: 'Bearer sk-wrong', 'content-type': 'application/json' }, body: '{}' });
    assert.equal(r.statusCode, 401);
    const body = (await r.body.json()) as { error: { type: string; traceId: string } };
    assert.equal(body.error.type, 'invalid_api_key');
    assert.equal(body.error.traceId, r.headers['x-request-id']);
    for (const port of replicaPorts) {
      const m = await request(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } });
      const text = await m.body.text();
      const served = [...text.matchAll(/^token360_requests_total\{[^}]*status="200"[^}]*\} (\d+)$/gm)].reduce((a, x) => a + Number(x[1]), 0);
      assert.ok(served > 0, `replica on ${port} served nothing`);
    }
  });
});
