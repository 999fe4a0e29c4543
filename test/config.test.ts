import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { ConfigError, loadConfig, parseConfigText } from '../src/config/load.js';
import type { OpenAIProviderConfig } from '../src/providers/openai/config.js';
import { freePort } from './helpers/process.js';

// SPEC §1: the config file, its interpolation and environment overrides, the errors an operator
// sees, and the first start of `token360 serve` on embedded defaults.

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'dist', 'cli', 'main.js');
const tmp = mkdtempSync(join(tmpdir(), 'token360-config-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

let n = 0;
/** A fresh directory under the test's temp dir. */
function freshDir(): string {
  const d = join(tmp, `d${++n}`);
  mkdirSync(d, { recursive: true });
  return d;
}

const MODEL = (id: string, body: string): string => `models:\n  ${id}:\n${body.replace(/^/gm, '    ')}\n`;
const DEMO_PROVIDER = 'providers:\n  local:\n    type: demo\n';

/** The ConfigError message of `fn`, failing when it does not throw one. */
function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
    assert.doesNotMatch(e.message, /^\s+at /m, 'no stack in the message');
    return e.message;
  }
  assert.fail('expected a ConfigError, but the config was accepted');
}

describe('parseConfigText', () => {
  test('an empty file means the defaults', () => {
    const c = parseConfigText('');
    assert.equal(c.server.host, '127.0.0.1');
    assert.equal(c.server.port, 8360);
    assert.equal(c.database, 'sqlite:./data/token360.db');
  });

  test('the SPEC §1 example is accepted', () => {
    const c = parseConfigText(
      `server:
  host: 127.0.0.1
  port: 8360
  max_concurrent_requests: 4096
database: sqlite:./data/token360.db
providers:
  zhipu:
    type: openai
    base_url: https://open.bigmodel.cn/api/paas/v4
    api_key: \${ZHIPU_API_KEY}
  local:
    type: demo
models:
  glm-5.1:
    owned_by: zhipu
    pricing: { input: 1.00, output: 3.20, cached_input: 0.20 }
    context_window: 200000
    max_output_tokens: 32768
    deployments:
      - { provider: zhipu, model: glm-5.1, priority: 0, weight: 1 }
      - { provider: local, model: demo, priority: 1 }
`,
      { ZHIPU_API_KEY: 'zk-secret' },
    );
    assert.equal(c.providers['zhipu']?.type, 'openai');
    assert.equal((c.providers['zhipu'] as OpenAIProviderConfig).api_key, 'zk-secret');
    assert.equal(c.models['glm-5.1']?.deployments.length, 2);
    assert.equal(c.models['glm-5.1']?.max_output_tokens, 32768);
  });

  test('${VAR} and ${VAR:-default} come from the environment; numbers stay numbers', () => {
    const text = `server:
  host: \${H:-0.0.0.0}
  port: \${P}
  max_concurrent_requests: \${MAX:-77}
database: sqlite:\${DIR}/db
${DEMO_PROVIDER}`;
    const c = parseConfigText(text, { P: '9001', DIR: '/var/lib/t360' });
    assert.equal(c.server.port, 9001);
    assert.equal(typeof c.server.port, 'number');
    assert.equal(c.server.max_concurrent_requests, 77);
    assert.equal(c.server.host, '0.0.0.0', 'default used when unset');
    assert.equal(c.database, 'sqlite:/var/lib/t360/db', 'replaced inside a string');

    const c2 = parseConfigText(text, { P: '9002', H: '10.0.0.1', MAX: '5', DIR: 'x' });
    assert.equal(c2.server.host, '10.0.0.1', 'the variable wins over its default');
    assert.equal(c2.server.max_concurrent_requests, 5);

    const c3 = parseConfigText(text, { P: '9003', H: '', DIR: 'x' });
    assert.equal(c3.server.host, '0.0.0.0', 'an empty variable takes the default');
  });

  test('interpolated prices and URLs', () => {
    const c = parseConfigText(
      `providers:\n  up:\n    type: openai\n    base_url: https://\${UP_HOST}/v1\n    api_key: \${UP_KEY}\n` +
        MODEL('m', 'pricing: { input: ${IN:-0.5}, output: ${OUT} }\ndeployments: [{ provider: up, model: m }]'),
      { UP_HOST: 'llm.example.com', UP_KEY: 'k-1', OUT: '2.25' },
    );
    const up = c.providers['up'] as OpenAIProviderConfig;
    assert.equal(up.type, 'openai');
    assert.equal(up.base_url, 'https://llm.example.com/v1');
    assert.equal(up.api_key, 'k-1');
    assert.equal(c.models['m']?.pricing?.input, 0.5);
    assert.equal(c.models['m']?.pricing?.output, 2.25);
  });

  test('TOKEN360_HOST, TOKEN360_PORT, TOKEN360_DATABASE_URL and TOKEN360_ADMIN_KEY win over the file', () => {
    const text = `server:\n  host: 127.0.0.1\n  port: 8000\ndatabase: sqlite:./file.db\nadmin_key: file-admin-key-0123456789\n`;
    const plain = parseConfigText(text, {});
    assert.equal(plain.server.port, 8000);
    assert.equal(plain.admin_key, 'file-admin-key-0123456789');
    const c = parseConfigText(text, {
      TOKEN360_HOST: '0.0.0.0',
      TOKEN360_PORT: '9999',
      TOKEN360_DATABASE_URL: 'sqlite::memory:',
      TOKEN360_ADMIN_KEY: 'env-admin-key-0123456789',
    });
    assert.equal(c.server.host, '0.0.0.0');
    assert.equal(c.server.port, 9999);
    assert.equal(typeof c.server.port, 'number');
    assert.equal(c.database, 'sqlite::memory:');
    assert.equal(c.admin_key, 'env-admin-key-0123456789');
    // The rest of the server section stays.
    assert.equal(c.server.max_concurrent_requests, plain.server.max_concurrent_requests);
    // Overrides apply without a server section in the file, too.
    assert.equal(parseConfigText('', { TOKEN360_PORT: '1234' }).server.port, 1234);
    assert.match(configError(() => parseConfigText('', { TOKEN360_PORT: 'eighty' })), /TOKEN360_PORT/);
  });

  test('a bad value names its path: models.glm-5.1.pricing.input', () => {
    for (const bad of ['abc', 'true', '-1', '0.0000000001', '[1]']) {
      const msg = configError(() =>
        parseConfigText(DEMO_PROVIDER + MODEL('glm-5.1', `pricing: { input: ${bad}, output: 3.2 }\ndeployments: [{ provider: local, model: demo }]`)),
      );
      assert.match(msg, /(^|\n)models\.glm-5\.1\.pricing\.input: expected a number/, `input ${bad}: ${msg}`);
    }
    const missing = configError(() =>
      parseConfigText(DEMO_PROVIDER + MODEL('glm-5.1', 'pricing: { output: 3.2 }\ndeployments: [{ provider: local, model: demo }]')),
    );
    assert.match(missing, /models\.glm-5\.1\.pricing\.input/);
  });

  test('a variable the file needs but the environment lacks is named', () => {
    const msg = configError(() =>
      parseConfigText('providers:\n  up:\n    type: openai\n    base_url: ${UP_URL}\nmodels: {}\n', {}),
    );
    assert.match(msg, /^providers\.up\.base_url: /m);
    assert.match(msg, /not set in the environment: \$\{UP_URL\}/);
  });

  test('other wrong types name their path', () => {
    assert.match(configError(() => parseConfigText('server:\n  port: eighty\n')), /^server\.port: expected a number/m);
    assert.match(configError(() => parseConfigText('server:\n  port: 70000\n')), /^server\.port: /m);
    assert.match(configError(() => parseConfigText('server: 5\n')), /^server: /m);
    assert.match(configError(() => parseConfigText('sever:\n  port: 1\n')), /^sever: unknown setting/m);
    assert.match(configError(() => parseConfigText('database: mysql://x\n')), /^database: /m);
    assert.match(
      configError(() => parseConfigText(DEMO_PROVIDER + MODEL('m', 'pricing: { input: 1, output: 1 }\ndeployments: []'))),
      /^models\.m\.deployments: /m,
    );
    assert.match(configError(() => parseConfigText('- a\n- b\n')), /mapping/);
  });

  test('an unknown provider type names the provider', () => {
    const msg = configError(() => parseConfigText('providers:\n  aws:\n    type: bedrock\n'));
    assert.match(msg, /^providers\.aws\.type: /m);
    assert.doesNotMatch(msg, /type\.type/, 'the path names the field once');
    assert.match(configError(() => parseConfigText('providers:\n  aws:\n    base_url: https://x\n')), /^providers\.aws\.type: /m);
    assert.match(
      configError(() => parseConfigText('providers:\n  up:\n    type: openai\n    base_url: not a url\n')),
      /^providers\.up\.base_url: /m,
    );
  });

  test('a deployment naming an unknown provider is refused', () => {
    const msg = configError(() =>
      parseConfigText(DEMO_PROVIDER + MODEL('m', 'pricing: { input: 1, output: 1 }\ndeployments:\n  - { provider: local, model: demo }\n  - { provider: zhipu, model: glm }')),
    );
    assert.match(msg, /^models\.m\.deployments\.1\.provider: .*zhipu/m);
    // Names that exist on every object are not providers.
    assert.match(
      configError(() => parseConfigText(DEMO_PROVIDER + MODEL('m', 'pricing: { input: 1, output: 1 }\ndeployments: [{ provider: toString, model: x }]'))),
      /^models\.m\.deployments\.0\.provider: /m,
    );
  });

  test('a model without pricing is refused unless free: true', () => {
    const msg = configError(() => parseConfigText(DEMO_PROVIDER + MODEL('paid', 'deployments: [{ provider: local, model: demo }]')));
    assert.match(msg, /^models\.paid\.pricing: /m);
    const free = parseConfigText(DEMO_PROVIDER + MODEL('gift', 'free: true\ndeployments: [{ provider: local, model: demo }]'));
    assert.equal(free.models['gift']?.free, true);
    assert.match(
      configError(() => parseConfigText(DEMO_PROVIDER + MODEL('x', 'free: false\ndeployments: [{ provider: local, model: demo }]'))),
      /^models\.x\.pricing: /m,
    );
  });

  test('several problems are all reported', () => {
    const msg = configError(() =>
      parseConfigText(DEMO_PROVIDER + 'models:\n  a:\n    deployments: [{ provider: local, model: d }]\n  b:\n    pricing: { input: 1, output: 1 }\n    deployments: [{ provider: nope, model: d }]\n'),
    );
    assert.match(msg, /models\.a\.pricing/);
    assert.match(msg, /models\.b\.deployments\.0\.provider/);
  });

  test('invalid YAML is a ConfigError, not a crash', () => {
    for (const text of ['server:\n  port: [1, 2\n', 'a: b\n  c: d\n', 'key: "unterminated\n', 'x: *nowhere\n']) {
      assert.match(configError(() => parseConfigText(text)), /YAML/i, JSON.stringify(text));
    }
  });
});

describe('loadConfig', () => {
  test('no file: the built-in defaults serve the demo model', () => {
    const { config, source } = loadConfig({ cwd: freshDir(), env: {} });
    assert.equal(source, null);
    assert.equal(config.database, 'sqlite:./data/token360.db');
    assert.equal(config.server.port, 8360);
    assert.ok(config.models['demo'], 'the demo model');
    assert.equal(config.providers[config.models['demo']!.deployments[0]!.provider]?.type, 'demo');
  });

  test('token360.yaml in the working directory, TOKEN360_CONFIG, or --config', () => {
    const d = freshDir();
    writeFileSync(join(d, 'token360.yaml'), 'server:\n  port: 1111\n');
    writeFileSync(join(d, 'other.yaml'), 'server:\n  port: 2222\n');
    writeFileSync(join(d, 'third.yaml'), 'server:\n  port: 3333\n');
    const cwdFile = loadConfig({ cwd: d, env: {} });
    assert.equal(cwdFile.config.server.port, 1111);
    assert.equal(cwdFile.source, join(d, 'token360.yaml'));
    assert.equal(loadConfig({ cwd: d, env: { TOKEN360_CONFIG: 'other.yaml' } }).config.server.port, 2222);
    assert.equal(loadConfig({ cwd: d, path: 'third.yaml', env: { TOKEN360_CONFIG: 'other.yaml' } }).config.server.port, 3333);
    assert.equal(loadConfig({ cwd: d, path: join(d, 'third.yaml'), env: { TOKEN360_PORT: '4444' } }).config.server.port, 4444);
  });

  test('a missing config file names the file', () => {
    const d = freshDir();
    assert.match(configError(() => loadConfig({ cwd: d, path: 'nope.yaml', env: {} })), /nope\.yaml/);
  });

  test('interpolation and overrides come from the given environment', () => {
    const d = freshDir();
    writeFileSync(join(d, 'token360.yaml'), 'server:\n  port: ${PORT_FROM_ENV:-5555}\ndatabase: sqlite:${DB}\n');
    const a = loadConfig({ cwd: d, env: { DB: '/x.db' } });
    assert.equal(a.config.server.port, 5555);
    assert.equal(a.config.database, 'sqlite:/x.db');
    const b = loadConfig({ cwd: d, env: { DB: '/x.db', PORT_FROM_ENV: '6666', TOKEN360_DATABASE_URL: 'sqlite::memory:' } });
    assert.equal(b.config.server.port, 6666);
    assert.equal(b.config.database, 'sqlite::memory:');
  });
});

// ---- the real command ------------------------------------------------------------------------

/** The caller's environment without TOKEN360_* variables, plus `extra`. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('TOKEN360_')) env[k] = v;
  return { ...env, ...extra };
}

function runCli(args: string[], cwd: string, env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CLI, ...args], { cwd, env: cleanEnv(env), timeout: 20_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err !== null && typeof (err as { code?: unknown }).code !== 'number') reject(new Error(`${err.message}\n${stderr}`));
      else resolve({ code: err === null ? 0 : (err as unknown as { code: number }).code, stdout, stderr });
    });
  });
}

interface Served {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  exited: Promise<number | null>;
}

function serve(cwd: string, env: Record<string, string>): Served {
  const child = spawn(process.execPath, [CLI, 'serve'], { cwd, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  return { child, out: () => out, err: () => err, exited };
}

async function waitFor<T>(what: string, s: Served, probe: () => T | null | undefined | Promise<T | null | undefined>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== null && v !== undefined) return v;
    if (s.child.exitCode !== null) assert.fail(`${what}: the server exited (${s.child.exitCode})\nstdout:\n${s.out()}\nstderr:\n${s.err()}`);
    if (Date.now() > deadline) assert.fail(`${what}: timed out\nstdout:\n${s.out()}\nstderr:\n${s.err()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function stop(s: Served): Promise<number | null> {
  if (s.child.exitCode !== null) return s.child.exitCode;
  s.child.kill('SIGTERM');
  const timer = setTimeout(() => s.child.kill('SIGKILL'), 10_000);
  const code = await s.exited;
  clearTimeout(timer);
  return code;
}

/** Resolves once the server answers /health. */
async function healthy(s: Served, base: string): Promise<void> {
  await waitFor('health', s, async () => {
    try {
      const r = await fetch(`${base}/health`);
      return r.ok ? true : null;
    } catch {
      return null;
    }
  });
}

const completion = (base: string, key: string): Promise<Response> =>
  fetch(`${base}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: 'Hello' }] }),
  });

describe('token360 serve', () => {
  test('the CLI is built', () => {
    assert.ok(existsSync(CLI), `${CLI} is missing: run \`npx tsc -p tsconfig.json\` first (npm test does)`);
  });

  test('an invalid config stops start-up: non-zero exit, the path named, no stack trace', async () => {
    const d = freshDir();
    writeFileSync(
      join(d, 'bad.yaml'),
      `${DEMO_PROVIDER}models:\n  glm-5.1:\n    pricing: { input: lots, output: 3.2 }\n    deployments: [{ provider: local, model: demo }]\n`,
    );
    writeFileSync(join(d, 'broken.yaml'), 'server:\n  port: [1, 2\n');
    writeFileSync(join(d, 'provider.yaml'), 'providers:\n  x:\n    type: bedrock\n');
    const port = String(await freePort());
    const cases: [string[], Record<string, string>, RegExp][] = [
      [['serve', '--config', 'bad.yaml'], { TOKEN360_PORT: port }, /models\.glm-5\.1\.pricing\.input/],
      [['--config', 'broken.yaml', 'serve'], { TOKEN360_PORT: port }, /YAML/i],
      [['serve', '--config', 'provider.yaml'], { TOKEN360_PORT: port }, /providers\.x\.type/],
      [['serve', '--config', 'missing.yaml'], { TOKEN360_PORT: port }, /missing\.yaml/],
      [['serve'], { TOKEN360_PORT: 'eighty' }, /TOKEN360_PORT/],
      [['serve'], { TOKEN360_CONFIG: 'bad.yaml', TOKEN360_PORT: port }, /models\.glm-5\.1\.pricing\.input/],
    ];
    const results = await Promise.all(cases.map(([args, env]) => runCli(args, d, env)));
    results.forEach((r, i) => {
      const [args, , names] = cases[i]!;
      assert.notEqual(r.code, 0, `${args.join(' ')} exited 0`);
      assert.match(r.stderr, names, `${args.join(' ')}: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /^ {4}at /m, `stack trace:\n${r.stderr}`);
      assert.doesNotMatch(r.stderr + r.stdout, /listening/, 'it did not start');
    });
    assert.ok(!existsSync(join(d, 'data')), 'no database was created');
  });

  test('first start on the embedded defaults prints the demo and admin keys once; a restart prints none', async () => {
    const cwd = freshDir();
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const env = { TOKEN360_PORT: String(port) };

    const first = serve(cwd, env);
    let demoKey: string;
    let adminKey: string;
    try {
      demoKey = await waitFor('the demo key', first, () => /demo API key:\s*(sk-[0-9A-Za-z]{40,})/.exec(first.out())?.[1]);
      adminKey = await waitFor('the admin key', first, () => /admin key[^:\n]*:\s*(sk-\S+)/.exec(first.out())?.[1]);
      assert.notEqual(demoKey, adminKey);

      const r = await completion(base, demoKey);
      assert.equal(r.status, 200, await r.clone().text());
      const body = (await r.json()) as any;
      assert.equal(body.object, 'chat.completion');
      assert.equal(typeof body.choices[0].message.content, 'string');
      assert.ok(body.choices[0].message.content.length > 0);
      assert.ok(r.headers.get('x-request-id'));

      const adm = await fetch(`${base}/admin/keys`, { headers: { authorization: `Bearer ${adminKey}` } });
      assert.equal(adm.status, 200, 'the printed admin key works');
      const listed = (await adm.json()) as any;
      assert.equal(listed.data.length, 1, 'one demo key');
      assert.ok(!JSON.stringify(listed).includes(demoKey));
      assert.equal((await fetch(`${base}/admin/keys`, { headers: { authorization: `Bearer ${demoKey}` } })).status, 401);

      assert.ok(existsSync(join(cwd, 'data', 'token360.db')), 'SQLite at ./data/token360.db');
      assert.equal(first.out().split(demoKey).length - 1, 1, 'the demo key is printed exactly once');
      assert.equal(first.out().split(adminKey).length - 1, 1, 'the admin key is printed exactly once');
      assert.doesNotMatch(first.err(), /^ {4}at /m);
    } finally {
      assert.equal(await stop(first), 0, `SIGTERM ends the server cleanly\n${first.err()}`);
    }

    const second = serve(cwd, env);
    try {
      await healthy(second, base);
      // The keys of the first start still work...
      assert.equal((await completion(base, demoKey)).status, 200);
      assert.equal((await fetch(`${base}/admin/keys`, { headers: { authorization: `Bearer ${adminKey}` } })).status, 200);
      // ...and nothing secret was printed this time.
      assert.doesNotMatch(second.out(), /sk-[0-9A-Za-z]{20,}/, `second start printed a key:\n${second.out()}`);
      assert.doesNotMatch(second.out(), /admin key|demo API key/i);
      const keys = (await (await fetch(`${base}/admin/keys`, { headers: { authorization: `Bearer ${adminKey}` } })).json()) as any;
      assert.equal(keys.data.length, 1, 'no second demo key was made');
    } finally {
      assert.equal(await stop(second), 0);
    }
    assert.doesNotMatch(second.out(), /sk-[0-9A-Za-z]{20,}/);
  });

  test('with TOKEN360_ADMIN_KEY set, the first start prints only the demo key and the given admin key works', async () => {
    const cwd = freshDir();
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const adminKey = 'sk-admin-from-env-0123456789abcdef';
    const s = serve(cwd, { TOKEN360_PORT: String(port), TOKEN360_ADMIN_KEY: adminKey });
    try {
      const demoKey = await waitFor('the demo key', s, () => /demo API key:\s*(sk-[0-9A-Za-z]{40,})/.exec(s.out())?.[1]);
      await healthy(s, base);
      assert.doesNotMatch(s.out(), /admin key[^\n]*sk-/i, 'no admin key printed');
      assert.ok(!s.out().includes(adminKey), 'the configured admin key is not echoed');
      assert.equal((await fetch(`${base}/admin/keys`, { headers: { authorization: `Bearer ${adminKey}` } })).status, 200);
      assert.equal((await completion(base, demoKey)).status, 200);
    } finally {
      assert.equal(await stop(s), 0);
    }
  });
});
