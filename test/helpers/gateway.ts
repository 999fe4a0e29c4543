import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { request } from 'undici';
import { configSchema, type RawConfig } from '../../src/config/schema.js';
import { startGateway, type RunningGateway } from '../../src/compose/start.js';

export const ADMIN_KEY = 'sk-admin-test-0123456789abcdefghij';

export interface HttpResult {
  status: number;
  headers: Record<string, string>;
  text: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: any;
}

export interface TestKey {
  id: string;
  key: string;
  accountId: string;
}

export interface TestGateway {
  /** e.g. http://127.0.0.1:PORT */
  url: string;
  /** url + '/v1', the OpenAI SDK's baseURL */
  baseURL: string;
  running: RunningGateway;
  /** The gateway's database URL (`sqlite:<temp file>` unless the config says otherwise). */
  database: string;
  /** Raw HTTP to the gateway. `body` objects are sent as JSON; strings as they are. */
  http(method: string, path: string, opts?: { body?: unknown; headers?: Record<string, string>; key?: string }): Promise<HttpResult>;
  /** Raw HTTP to /admin with the admin key. */
  admin(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<HttpResult>;
  /** A new account (credit in USD, default "100") and a key for it. */
  createKey(opts?: { credit?: string; models?: string[]; limits?: Record<string, unknown>; expires_at?: string; accountId?: string }): Promise<TestKey>;
  /** Every line the gateway logged, as written (JSON), when started with `captureLogs`; else empty. */
  logs: string[];
  /** The real OpenAI SDK pointed at the gateway; retries off unless asked for. */
  client(key: string, opts?: { maxRetries?: number; timeout?: number }): OpenAI;
  close(): Promise<void>;
}

/**
 * Starts the real gateway in this process on a random port with a SQLite database in a fresh
 * temporary directory. `config` is merged over a base with the demo provider, a priced `demo`
 * model, the test admin key and silent logs; with `captureLogs`, every line down to `trace` is kept
 * in `logs` instead.
 */
export async function startTestGateway(config: RawConfig = {}, opts: { captureLogs?: boolean } = {}): Promise<TestGateway> {
  const dir = mkdtempSync(join(tmpdir(), 'token360-test-'));
  const logs: string[] = [];
  const raw: RawConfig = {
    log_level: opts.captureLogs === true ? 'trace' : 'silent',
    admin_key: ADMIN_KEY,
    database: `sqlite:${join(dir, 'test.db')}`,
    // Tests that fail an upstream on purpose, one after another, must not open its circuit for the
    // next test; a test of the breaker sets its own `routing`.
    routing: { circuit: { failures: 1_000_000 } },
    ...config,
    server: { port: 0, host: '127.0.0.1', ...(config.server ?? {}) },
    providers: { demo: { type: 'demo' }, ...(config.providers ?? {}) },
    models: {
      demo: { pricing: { input: 1, output: 2 }, deployments: [{ provider: 'demo', model: 'demo-upstream' }] },
      ...(config.models ?? {}),
    },
  };
  const logStream = opts.captureLogs === true ? { write: (line: string) => void logs.push(line) } : undefined;
  const running = await startGateway(configSchema.parse(raw), logStream === undefined ? {} : { logStream });
  const url = running.url;

  const http: TestGateway['http'] = async (method, path, opts = {}) => {
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    if (opts.key !== undefined) headers['authorization'] = `Bearer ${opts.key}`;
    let body: string | undefined;
    if (opts.body !== undefined) {
      body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
      headers['content-type'] ??= 'application/json';
    }
    const res = await request(url + path, { method: method as 'GET', headers, body });
    const text = await res.body.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    const flat: Record<string, string> = {};
    for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) flat[k] = Array.isArray(v) ? v.join(', ') : v;
    return { status: res.statusCode, headers: flat, text, json };
  };

  const admin: TestGateway['admin'] = (method, path, body, headers = {}) =>
    http(method, `/admin${path}`, { body, headers: { authorization: `Bearer ${ADMIN_KEY}`, ...headers } });

  const createKey: TestGateway['createKey'] = async (opts = {}) => {
    let accountId = opts.accountId;
    if (accountId === undefined) {
      const acct = await admin('POST', '/accounts', { name: 'test', credit: opts.credit ?? '100' });
      if (acct.status !== 201) throw new Error(`account create failed: ${acct.text}`);
      accountId = acct.json.id as string;
    }
    const body: Record<string, unknown> = { account_id: accountId };
    if (opts.models) body['models'] = opts.models;
    if (opts.limits) body['limits'] = opts.limits;
    if (opts.expires_at) body['expires_at'] = opts.expires_at;
    const k = await admin('POST', '/keys', body);
    if (k.status !== 201) throw new Error(`key create failed: ${k.text}`);
    return { id: k.json.id, key: k.json.key, accountId };
  };

  const client: TestGateway['client'] = (key, opts = {}) =>
    new OpenAI({ apiKey: key, baseURL: url + '/v1', maxRetries: opts.maxRetries ?? 0, timeout: opts.timeout ?? 10_000 });

  return {
    url,
    baseURL: url + '/v1',
    running,
    database: String(raw.database),
    http,
    admin,
    createKey,
    logs,
    client,
    async close() {
      await running.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Resolves once every write the gateway does after its responses (settlements, usage records) has finished. */
export async function backgroundDone(gw: TestGateway): Promise<void> {
  const background = gw.running.gateway.background;
  while (background.size > 0) await Promise.allSettled([...background]);
}
