// Hostile clients (issue 8): slow bodies, spellings of /v1 paths that must still be shed,
// repeated authentication failures, bodies shaped to exhaust the stack or the event loop, and
// bodies over the limit. Everything goes over real sockets to the real server.
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { Agent, request } from 'undici';
import { AuthFailures } from '../src/auth/failures.js';
import { formatPath, jsonShapeFault } from '../src/gateway/json-shape.js';
import { ADMIN_KEY, startTestGateway, type HttpResult, type TestGateway } from './helpers/gateway.js';
import { AnthropicUpstream } from './helpers/anthropic-upstream.js';
import { GEMINI_KEY, startGemini } from './helpers/gemini-upstream.js';
import { startFakeUpstream } from './helpers/upstream.js';

const chat = (model = 'demo', extra: Record<string, unknown> = {}) => ({ model, messages: [{ role: 'user', content: 'hi' }], ...extra });

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  text: string;
  json: any;
}

function assertError(r: RawResponse | HttpResult, status: number, type: string, what = ''): void {
  assert.equal(r.status, status, `${what} ${r.text}`);
  assert.equal(r.headers['content-type'], 'application/json; charset=utf-8', what);
  const e = r.json?.error;
  assert.ok(e, `${what} error body: ${r.text}`);
  assert.equal(e.type, type, what);
  assert.equal(e.code, String(status), what);
  assert.equal(typeof e.message, 'string');
  assert.match(e.traceId, /^req_[0-9a-f]{32}$/);
  assert.equal(r.headers['x-request-id'], e.traceId);
}

/** Parses the first HTTP response in `buf`, or returns null while it is incomplete. 1xx responses are skipped. */
function parseResponse(buf: Buffer): RawResponse | null {
  let text = buf.toString('latin1');
  for (;;) {
    const split = text.indexOf('\r\n\r\n');
    if (split < 0) return null;
    const [statusLine, ...lines] = text.slice(0, split).split('\r\n');
    const m = /^HTTP\/1\.1 (\d{3}) /.exec(statusLine!);
    assert.ok(m, `status line: ${JSON.stringify(statusLine)}`);
    const status = Number(m[1]);
    if (status < 200) {
      text = text.slice(split + 4);
      continue;
    }
    const headers: Record<string, string> = {};
    for (const l of lines) {
      const i = l.indexOf(':');
      headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    let raw = '';
    if (headers['transfer-encoding'] === 'chunked') {
      let at = split + 4;
      for (;;) {
        const eol = text.indexOf('\r\n', at);
        if (eol < 0) return null;
        const size = parseInt(text.slice(at, eol), 16);
        if (size === 0) break;
        if (text.length < eol + 2 + size + 2) return null;
        raw += text.slice(eol + 2, eol + 2 + size);
        at = eol + 2 + size + 2;
      }
    } else {
      const length = Number(headers['content-length']);
      assert.ok(Number.isInteger(length), `a framed body: ${JSON.stringify(text.slice(0, split))}`);
      if (text.length < split + 4 + length) return null;
      raw = text.slice(split + 4, split + 4 + length);
    }
    const body = Buffer.from(raw, 'latin1').toString('utf8');
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      json = undefined;
    }
    return { status, headers, text: body, json };
  }
}

interface RawConn {
  socket: Socket;
  /** Everything received so far. */
  received(): Buffer;
  /** Resolves with the first final response; rejects if the socket closes without one. */
  response: Promise<RawResponse>;
  /** Resolves when the server has closed the connection. */
  closed: Promise<void>;
}

function rawConnect(url: string, opts: { localAddress?: string } = {}): Promise<RawConn> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port), localAddress: opts.localAddress });
    const parts: Buffer[] = [];
    let settle: { ok: (r: RawResponse) => void; fail: (e: Error) => void };
    const response = new Promise<RawResponse>((ok, fail) => (settle = { ok, fail }));
    response.catch(() => {});
    let done = false;
    socket.on('data', (b) => {
      parts.push(b);
      if (done) return;
      const r = parseResponse(Buffer.concat(parts));
      if (r !== null) {
        done = true;
        settle.ok(r);
      }
    });
    socket.on('error', () => {});
    const closed = new Promise<void>((ok) => socket.once('close', () => ok()));
    void closed.then(() => {
      if (!done) settle.fail(new Error(`closed without a response; received ${JSON.stringify(Buffer.concat(parts).toString('latin1').slice(0, 300))}`));
    });
    socket.once('connect', () => resolve({ socket, received: () => Buffer.concat(parts), response, closed }));
    socket.once('error', reject);
  });
}

function write(socket: Socket, data: string | Buffer): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve();
    socket.write(data, () => resolve());
  });
}

/** Rejects after `ms` with `what`: a deadline for a promise that must settle. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms))),
  ]);
}

const head = (method: string, target: string, headers: Record<string, string | number>): string =>
  `${method} ${target} HTTP/1.1\r\nHost: gateway\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`;

async function withGateway(config: Parameters<typeof startTestGateway>[0], run: (gw: TestGateway) => Promise<void>): Promise<void> {
  const gw = await startTestGateway(config);
  try {
    await run(gw);
  } finally {
    await gw.close();
  }
}

describe('slow bodies', () => {
  test('clients trickling bodies hold no max_concurrent_requests slot: a valid key is served beside 200 of them', async () => {
    await withGateway({ server: { max_concurrent_requests: 50 } }, async (gw) => {
      const { key } = await gw.createKey();
      // Observes (does not alter) the server: how many requests' headers it has read.
      let started = 0;
      gw.running.app.server.on('request', () => started++);
      const trickling = await Promise.all(Array.from({ length: 200 }, () => rawConnect(gw.url)));
      try {
        await Promise.all(
          trickling.map((c) => write(c.socket, head('POST', '/v1/chat/completions', { 'content-type': 'application/json', 'content-length': 1000 }) + '{')),
        );
        const deadline = performance.now() + 10_000;
        while (started < 200) {
          assert.ok(performance.now() < deadline, `the server read every request's headers (${started})`);
          await new Promise((r) => setTimeout(r, 20));
        }
        const ticker = setInterval(() => {
          for (const c of trickling) c.socket.write(' ');
        }, 500);
        try {
          for (let i = 0; i < 3; i++) {
            const r = await gw.http('POST', '/v1/chat/completions', { key, body: chat() });
            assert.equal(r.status, 200, r.text);
          }
          const sdk = await gw.client(key).chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'hi' }] });
          assert.ok(sdk.choices[0]!.message.content);
        } finally {
          clearInterval(ticker);
        }
        for (const c of trickling) assert.equal(c.received().length, 0, 'a trickling request has had no answer yet');
      } finally {
        for (const c of trickling) c.socket.destroy();
      }
    });
  });

  test('server.body_timeout_ms cuts a body that has not arrived: 408 in the error shape, then the connection closes', async () => {
    await withGateway({ server: { body_timeout_ms: 1000 } }, async (gw) => {
      const { key } = await gw.createKey();
      const started = performance.now();
      const trickling = await Promise.all(Array.from({ length: 20 }, () => rawConnect(gw.url)));
      const ticker = setInterval(() => {
        for (const c of trickling) if (!c.socket.destroyed) c.socket.write(' ');
      }, 200);
      try {
        for (const c of trickling) c.socket.write(head('POST', '/v1/chat/completions', { 'content-type': 'application/json', 'content-length': 1000, authorization: `Bearer ${key}` }) + '{');
        const answers = await within(Promise.all(trickling.map((c) => c.response)), 10_000, '408 to every trickling client');
        for (const r of answers) {
          assertError(r, 408, 'invalid_request_error');
        }
        await within(Promise.all(trickling.map((c) => c.closed)), 10_000, 'connections closed');
        assert.ok(performance.now() - started >= 900, 'not before the timeout');
      } finally {
        clearInterval(ticker);
        for (const c of trickling) c.socket.destroy();
      }
      // A body sent in pieces within the bound is read as usual.
      const c = await rawConnect(gw.url);
      const body = JSON.stringify(chat());
      await write(c.socket, head('POST', '/v1/chat/completions', { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: `Bearer ${key}` }));
      await write(c.socket, body.slice(0, 10));
      await new Promise((r) => setTimeout(r, 300));
      await write(c.socket, body.slice(10));
      assert.equal((await within(c.response, 10_000, 'answer')).status, 200);
      c.socket.destroy();
    });
  });

  test('a request answered before its body arrived (wrong admin key) gets that one answer, and no 408 after it', async () => {
    await withGateway({ server: { body_timeout_ms: 1000 } }, async (gw) => {
      const c = await rawConnect(gw.url);
      await write(c.socket, head('POST', '/admin/accounts', { 'content-type': 'application/json', 'content-length': 100, authorization: 'Bearer sk-admin-wrong-key-0000000000' }) + '{');
      assertError(await within(c.response, 10_000, '401'), 401, 'invalid_api_key');
      await within(c.closed, 10_000, 'the body timeout closes the connection');
      const all = c.received().toString('latin1');
      assert.equal(all.match(/HTTP\/1\.1 /g)?.length, 1, `one response only: ${all}`);
    });
  });
});

describe('overload shedding by route, whatever the spelling of the path', () => {
  test('every spelling that reaches a /v1 handler is shed with 503 while the gateway is full', async () => {
    const fake = await startFakeUpstream({ behavior: { kind: 'hang' } });
    try {
      await withGateway(
        {
          server: { max_concurrent_requests: 2 },
          providers: { up: { type: 'openai', base_url: fake.url, api_key: 'sk-up' } },
          models: { hang: { pricing: { input: 1, output: 2 }, deployments: [{ provider: 'up', model: 'hang' }] } },
        },
        async (gw) => {
          const { key } = await gw.createKey();
          const port = new URL(gw.url).port;
          const ac = new AbortController();
          const fillers = new Agent();
          const filling = [0, 1].map(() =>
            request(`${gw.url}/v1/chat/completions`, {
              method: 'POST',
              dispatcher: fillers,
              headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
              body: JSON.stringify(chat('hang')),
              signal: ac.signal,
            }).catch(() => null),
          );
          const deadline = performance.now() + 10_000;
          while (fake.requests.length < 2) {
            assert.ok(performance.now() < deadline, 'both requests reach the upstream');
            await new Promise((r) => setTimeout(r, 20));
          }

          const body = JSON.stringify(chat());
          const post = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: `Bearer ${key}` };
          const get = { authorization: `Bearer ${key}` };
          const routed: [string, string][] = [
            ['POST', '/v1/chat/completions'],
            ['POST', `http://127.0.0.1:${port}/v1/chat/completions`],
            ['POST', 'http://elsewhere.example/v1/chat/completions'],
            ['POST', '/%761/chat/completions'],
            ['POST', '/%76%31/chat/completions'],
            ['POST', '/v1/chat/%63ompletions'],
            ['POST', '/v1/chat/completions/'],
            ['POST', '/v1/chat/completions?x=1'],
            ['POST', '/%761/embeddings'],
            ['GET', '/%761/models'],
            ['GET', `http://127.0.0.1:${port}/v1/models`],
            ['GET', '/%761/models/demo'],
            ['GET', 'http://x/%761/me'],
          ];
          for (const [method, target] of routed) {
            const c = await rawConnect(gw.url);
            await write(c.socket, head(method, target, method === 'POST' ? post : get) + (method === 'POST' ? (target.includes('embeddings') ? JSON.stringify({ model: 'demo', input: 'x' }).padEnd(Buffer.byteLength(body)) : body) : ''));
            const r = await within(c.response, 10_000, `${method} ${target}`);
            assertError(r, 503, 'api_error', `${method} ${target}`);
            assert.equal(r.headers['retry-after'], '1');
            c.socket.destroy();
          }
          // Spellings the router does not take to a /v1 route never reach a handler.
          for (const target of ['//v1/chat/completions', '/V1/chat/completions', '/v1//chat/completions', '/v1/chat%2Fcompletions']) {
            const c = await rawConnect(gw.url);
            await write(c.socket, head('POST', target, post) + body);
            assertError(await within(c.response, 10_000, target), 404, 'not_found_error', target);
            c.socket.destroy();
          }

          ac.abort();
          await Promise.all(filling);
          await fillers.destroy();
          // Once the slots are free, the same spellings are served.
          const deadline2 = performance.now() + 10_000;
          for (;;) {
            const c = await rawConnect(gw.url);
            await write(c.socket, head('POST', '/%761/chat/completions', post) + body);
            const r = await within(c.response, 10_000, 'after release');
            c.socket.destroy();
            if (r.status === 200) break;
            assert.equal(r.status, 503, r.text);
            assert.ok(performance.now() < deadline2, 'slots free after the clients left');
            await new Promise((res) => setTimeout(res, 50));
          }
        },
      );
    } finally {
      await fake.close();
    }
  });
});

describe('repeated authentication failures', () => {
  const bad = { authorization: 'Bearer sk-this-key-does-not-exist-000000000000000000' };

  test('past auth_failures_per_minute (default 20) an address gets 429 with retry hints; valid keys and other addresses are unaffected', async () => {
    await withGateway({}, async (gw) => {
      const { key } = await gw.createKey();
      const statuses: number[] = [];
      const started = performance.now();
      for (let i = 0; i < 30; i++) {
        const r = await gw.http('POST', '/v1/chat/completions', { headers: bad, body: chat() });
        statuses.push(r.status);
        if (r.status === 401) {
          assertError(r, 401, 'invalid_api_key');
          continue;
        }
        assertError(r, 429, 'rate_limit_error');
        const ms = Number(r.headers['retry-after-ms']);
        assert.ok(ms >= 1 && ms <= 3000, `retry-after-ms ${ms}: one failure refills in 3 s`);
        assert.equal(r.headers['retry-after'], String(Math.ceil(ms / 1000)));
      }
      // The budget refills one failure every 3 s: a slow run may see a refilled one among the 429s.
      const refilled = Math.floor((performance.now() - started) / 3000);
      assert.deepEqual(statuses.slice(0, 20), Array(20).fill(401));
      assert.ok(statuses.slice(20).filter((s) => s === 401).length <= refilled, statuses.join(' '));
      assert.ok(statuses.includes(429));

      // A valid key (and the admin key) from the same address is served.
      const ok = await gw.http('POST', '/v1/chat/completions', { key, body: chat() });
      assert.equal(ok.status, 200, ok.text);
      assert.equal((await gw.http('GET', '/v1/models', { key })).status, 200);
      assert.equal((await gw.admin('GET', '/keys')).status, 200);

      // Another address has its own budget.
      const other = new Agent({ localAddress: '127.0.0.2' });
      try {
        const r = await request(`${gw.url}/v1/chat/completions`, { method: 'POST', dispatcher: other, headers: { ...bad, 'content-type': 'application/json' }, body: JSON.stringify(chat()) });
        const text = await r.body.text();
        assert.equal(r.statusCode, 401, text);
        assert.equal(JSON.parse(text).error.type, 'invalid_api_key');
      } finally {
        await other.close();
      }
    });
  });

  test('every route shares the budget, and X-Forwarded-For buys no new one without trust_proxy', async () => {
    // Two failures a minute: none refills during the test.
    await withGateway({ server: { auth_failures_per_minute: 2 } }, async (gw) => {
      const { key } = await gw.createKey();
      assert.equal((await gw.http('GET', '/v1/models', { headers: bad })).status, 401);
      assert.equal((await gw.http('GET', '/v1/me')).status, 401);
      const refused = [
        await gw.http('POST', '/v1/embeddings', { headers: bad, body: { model: 'demo', input: 'x' } }),
        await gw.http('GET', '/v1/models/demo', { headers: bad }),
        await gw.http('GET', '/admin/keys', { headers: { authorization: 'Bearer sk-admin-wrong-0000000000000' } }),
        await gw.http('POST', '/v1/chat/completions', { headers: { ...bad, 'x-forwarded-for': '10.9.9.9' }, body: chat() }),
      ];
      for (const r of refused) {
        assertError(r, 429, 'rate_limit_error');
        assert.ok(Number(r.headers['retry-after-ms']) > 20_000, r.headers['retry-after-ms']);
      }
      assert.equal((await gw.http('POST', '/v1/embeddings', { key, body: { model: 'demo', input: 'x' } })).status, 200);
    });
  });

  test('admin-key failures count too: 429 past the budget, and the right admin key still works', async () => {
    await withGateway({ server: { auth_failures_per_minute: 5 } }, async (gw) => {
      const agent = new Agent({ localAddress: '127.0.0.3' });
      try {
        const statuses: number[] = [];
        for (let i = 0; i < 8; i++) {
          const r = await request(`${gw.url}/admin/accounts`, {
            method: 'POST',
            dispatcher: agent,
            headers: { authorization: `Bearer sk-admin-guess-${i}-000000000000000`, 'content-type': 'application/json' },
            body: JSON.stringify({ name: 'x' }),
          });
          await r.body.text();
          statuses.push(r.statusCode);
        }
        assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429, 429, 429]);
        const r = await request(`${gw.url}/admin/accounts`, {
          method: 'POST',
          dispatcher: agent,
          headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
          body: JSON.stringify({ name: 'x' }),
        });
        assert.equal(r.statusCode, 201, await r.body.text());
      } finally {
        await agent.close();
      }
    });
  });

  test('trust_proxy: the forwarded address is the client; 0 turns the limit off', async () => {
    await withGateway({ server: { auth_failures_per_minute: 3, trust_proxy: ['127.0.0.1'] } }, async (gw) => {
      const from = async (ip: string) => (await gw.http('GET', '/v1/models', { headers: { ...bad, 'x-forwarded-for': ip } })).status;
      const a: number[] = [];
      for (let i = 0; i < 4; i++) a.push(await from('10.0.0.1'));
      assert.deepEqual(a, [401, 401, 401, 429]);
      assert.equal(await from('10.0.0.2'), 401);
    });
    await withGateway({ server: { auth_failures_per_minute: 0 } }, async (gw) => {
      for (let i = 0; i < 25; i++) assert.equal((await gw.http('GET', '/v1/models', { headers: bad })).status, 401);
    });
  });

  test('memory is bounded: past its capacity the longest-quiet address is forgotten', () => {
    const f = new AuthFailures(1, 2);
    assert.equal(f.fail('a', 0), 0);
    assert.ok(f.fail('a', 1) > 0);
    assert.equal(f.fail('b', 2), 0);
    assert.equal(f.fail('c', 3), 0); // forgets a
    assert.equal(f.fail('a', 4), 0);
    assert.ok(f.fail('c', 5) > 0);
    assert.equal(f.fail('c', 60_003), 0, 'a minute refills one failure');
  });
});

describe('body shape: nesting and member count', () => {
  const nest = (depth: number, open: string, close: string, inner = '1') => open.repeat(depth) + inner + close.repeat(depth);
  const deepObject = (depth: number) => nest(depth, '{"a":', '}', '1');

  test('deep nesting anywhere in a chat body: 400 naming the field, never a 500', async () => {
    await withGateway({}, async (gw) => {
      const { key } = await gw.createKey();
      const cases: [string, string][] = [
        ['tools[0].function.parameters', `{"model":"demo","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","x":${nest(100_000, '[', ']')}}}}]}`],
        ['tools[0].function.parameters', `{"model":"demo","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":${deepObject(100)}}}]}`],
        ['response_format.json_schema', `{"model":"demo","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_schema","json_schema":{"name":"s","schema":${deepObject(5000)}}}}`],
        ['messages[1].tool_calls[0].function.arguments', `{"model":"demo","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":${nest(1000, '[', ']')}}}]}]}`],
        ['metadata', `{"model":"demo","messages":[{"role":"user","content":"hi"}],"metadata":${nest(70, '[', ']')}}`],
      ];
      for (const [param, body] of cases) {
        const r = await gw.http('POST', '/v1/chat/completions', { key, body });
        assertError(r, 400, 'invalid_request_error', param);
        assert.ok(r.json.error.param.startsWith(param), `param ${r.json.error.param} names ${param}`);
        assert.match(r.json.error.message, /deeper than 64 levels/);
      }
      // The same for embeddings input, and on the admin API.
      const e = await gw.http('POST', '/v1/embeddings', { key, body: `{"model":"demo","input":${nest(100_000, '[', ']')}}` });
      assertError(e, 400, 'invalid_request_error');
      assert.ok(e.json.error.param.startsWith('input[0]'), e.json.error.param);
      const a = await gw.admin('POST', '/accounts', `{"name":"x","extra":${deepObject(100_000)}}`);
      assertError(a, 400, 'invalid_request_error');
      assert.ok(a.json.error.param.startsWith('extra.a.a'), a.json.error.param);
      // At the bound (64 levels with the root) the body is served.
      const at = await gw.http('POST', '/v1/chat/completions', { key, body: `{"model":"demo","messages":[{"role":"user","content":"hi"}],"metadata":${nest(63, '[', ']')}}` });
      assert.equal(at.status, 200, at.text);
      // Nothing was charged for the refused bodies: one usage record, the served one.
      const usage = (await gw.admin('GET', '/usage')).json.data as { status: number }[];
      assert.deepEqual(usage.map((u) => u.status).filter((s) => s === 200), [200]);
    });
  });

  test('deep nesting in JSON strings a converter parses (tool-call arguments, tool output), sent to anthropic or gemini: 400 naming the field, nothing upstream', async () => {
    const ant = await AnthropicUpstream.start();
    const gem = await startGemini();
    const price = { input: '1', output: '1' };
    try {
      await withGateway(
        {
          providers: { ant: { type: 'anthropic', base_url: ant.url, api_key: ant.apiKey }, gem: { type: 'gemini', base_url: gem.url, api_key: GEMINI_KEY } },
          models: {
            claude: { pricing: price, deployments: [{ provider: 'ant', model: 'claude-sonnet-4-5' }] },
            gemini: { pricing: price, deployments: [{ provider: 'gem', model: 'gemini-2.5-flash' }] },
          },
        },
        async (gw) => {
          const { key } = await gw.createKey();
          // Valid JSON objects: each converter parses them into the provider's request.
          const deep = `{"a":${nest(10_000, '[', ']')}}`;
          const members = JSON.stringify(Object.fromEntries(Array.from({ length: 100_001 }, (_, i) => [`k${i}`, 0])));
          const tools = [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }];
          const called = (args: string) => ({ role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: args } }] });
          const chatWith = (model: string, messages: unknown[]) => ({ model, tools, messages: [{ role: 'user', content: 'hi' }, ...messages] });
          const cases: [string, string, unknown, string, RegExp][] = [];
          for (const model of ['claude', 'gemini']) {
            cases.push(['/v1/chat/completions', model, chatWith(model, [called(deep), { role: 'tool', tool_call_id: 'call_1', content: 'ok' }]), 'messages[1].tool_calls[0].function.arguments', /deeper than 64 levels/]);
            cases.push(['/v1/chat/completions', model, chatWith(model, [called(members), { role: 'tool', tool_call_id: 'call_1', content: 'ok' }]), 'messages[1].tool_calls[0].function.arguments', /more than 100000 object members/]);
            const responsesCall = { type: 'function_call', call_id: 'call_1', name: 'f', arguments: deep };
            cases.push(['/v1/responses', model, { model, tools: [{ type: 'function', name: 'f', parameters: { type: 'object' } }], input: [{ role: 'user', content: 'hi' }, responsesCall] }, 'input[1].arguments', /deeper than 64 levels/]);
          }
          // Gemini parses a tool's output into functionResponse.response: a string, or text parts joined.
          cases.push(['/v1/chat/completions', 'gemini', chatWith('gemini', [called('{}'), { role: 'tool', tool_call_id: 'call_1', content: deep }]), 'messages[2].content', /deeper than 64 levels/]);
          // Neither part is JSON on its own; joined (as the gemini converter joins them) they are.
          const split = [{ type: 'text', text: `{"a":${'['.repeat(80)}1` }, { type: 'text', text: `${']'.repeat(80)}}` }];
          cases.push(['/v1/chat/completions', 'gemini', chatWith('gemini', [called('{}'), { role: 'tool', tool_call_id: 'call_1', content: split }]), 'messages[2].content', /deeper than 64 levels/]);
          cases.push(['/v1/responses', 'gemini', { model: 'gemini', input: [{ role: 'user', content: 'hi' }, { type: 'function_call', call_id: 'call_1', name: 'f', arguments: '{}' }, { type: 'function_call_output', call_id: 'call_1', output: deep }] }, 'input[2].output', /deeper than 64 levels/]);
          const toolUse = { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'f', input: {} }] };
          const result = (content: unknown) => ({ role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content }] });
          const messagesBody = (content: unknown) => ({ model: 'gemini', max_tokens: 100, tools: [{ name: 'f', input_schema: { type: 'object' } }], messages: [{ role: 'user', content: 'hi' }, toolUse, result(content)] });
          cases.push(['/v1/messages', 'gemini', messagesBody(deep), 'messages.2.content.0.content', /deeper than 64 levels/]);
          cases.push(['/v1/messages', 'gemini', messagesBody([{ type: 'text', text: deep }]), 'messages.2.content.0.content', /deeper than 64 levels/]);
          // With an image among them Gemini's converter joins the texts without a separator, into deep JSON.
          const png = { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } };
          const torn = [{ type: 'text', text: `{"a":${'['.repeat(10_000)}1` }, png, { type: 'text', text: `2${']'.repeat(10_000)}}` }];
          cases.push(['/v1/messages', 'gemini', messagesBody(torn), 'messages.2.content.0.content', /deeper than 64 levels/]);
          for (const [path, model, body, param, message] of cases) {
            const what = `${path} ${model} ${param}`;
            const r = await gw.http('POST', path, { key, body, headers: { 'anthropic-version': '2023-06-01' } });
            assert.equal(r.status, 400, `${what}: ${r.text.slice(0, 300)}`);
            if (path === '/v1/messages') {
              assert.equal(r.json.error.type, 'invalid_request_error', what);
              if (param !== '') assert.ok(r.json.error.message.startsWith(`${param}: `), `${what}: ${r.json.error.message}`);
            } else {
              assertError(r, 400, 'invalid_request_error', what);
              assert.equal(r.json.error.param, param, what);
            }
            assert.match(r.json.error.message, message, what);
            // Refused in validation: no upstream attempt.
            assert.equal(r.headers['x-token360-attempts'], '0', `${what}: no attempt`);
          }
          assert.equal(ant.received.length, 0, 'the anthropic upstream received nothing');
          assert.equal(gem.received.length, 0, 'the gemini upstream received nothing');
          // Deep text that is not JSON is no fault (the converters send it as text), nor is JSON at the bound.
          const text = await gw.http('POST', '/v1/chat/completions', { key, body: chatWith('gemini', [called('{}'), { role: 'tool', tool_call_id: 'call_1', content: `{${'['.repeat(200)} not JSON` }]) });
          assert.equal(text.status, 200, text.text);
          const atBound = `{"a":${nest(63, '[', ']')}}`;
          const bound = await gw.http('POST', '/v1/chat/completions', { key, body: chatWith('gemini', [called(atBound), { role: 'tool', tool_call_id: 'call_1', content: atBound }]) });
          assert.equal(bound.status, 200, bound.text);
          assert.equal(gem.received.length, 2);
        },
      );
    } finally {
      await ant.close();
      await gem.close();
    }
  });

  test('a body of a million keys is refused with a 400 and /health keeps answering meanwhile', async () => {
    await withGateway({}, async (gw) => {
      const { key } = await gw.createKey();
      const parts = ['"model":"demo","messages":[{"role":"user","content":"hi"}]'];
      for (let i = 0; i < 1_000_000; i++) parts.push(`"x${i}":0`);
      const body = `{${parts.join(',')}}`;
      let done = false;
      const big = gw.http('POST', '/v1/chat/completions', { key, body }).finally(() => (done = true));
      let worst = 0;
      let probes = 0;
      while (!done) {
        const t = performance.now();
        assert.equal((await gw.http('GET', '/health')).status, 200);
        worst = Math.max(worst, performance.now() - t);
        probes++;
      }
      const r = await big;
      assertError(r, 400, 'invalid_request_error');
      assert.match(r.json.error.message, /more than 100000 object members/);
      assert.ok(probes > 0);
      assert.ok(worst < 1000, `/health answered within 1 s throughout (worst ${Math.round(worst)} ms)`);
    });
  });

  test('property: the scanner agrees with JSON.parse on depth and member count, and names the path', () => {
    interface Truth {
      depth: number;
      members: number;
    }
    const truth = (v: unknown): Truth => {
      if (v === null || typeof v !== 'object') return { depth: 0, members: 0 };
      let depth = 0;
      let members = Array.isArray(v) ? 0 : Object.keys(v).length;
      for (const c of Object.values(v)) {
        const t = truth(c);
        depth = Math.max(depth, t.depth);
        members += t.members;
      }
      return { depth: depth + 1, members };
    };
    /** The path to the first container (in text order) at `depth`. */
    const firstAt = (v: unknown, depth: number, path: (string | number)[] = []): (string | number)[] | null => {
      if (v === null || typeof v !== 'object') return null;
      if (depth === 1) return path;
      for (const [k, c] of Object.entries(v)) {
        const p = firstAt(c, depth - 1, [...path, Array.isArray(v) ? Number(k) : k]);
        if (p !== null) return p;
      }
      return null;
    };
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), fc.constantFrom(undefined, 1, '\t'), (v, space) => {
        const text = JSON.stringify(v, null, space);
        const t = truth(JSON.parse(text));
        assert.equal(jsonShapeFault(text, t.depth, t.members), null);
        if (t.depth > 0) {
          const f = jsonShapeFault(text, t.depth - 1, Infinity);
          assert.ok(f !== null && f.kind === 'depth');
          assert.deepEqual(f.path, firstAt(JSON.parse(text), t.depth));
        }
        if (t.members > 0) assert.deepEqual(jsonShapeFault(text, 1000, t.members - 1), { kind: 'members' });
      }),
      { numRuns: 500 },
    );
    // Any text at all: an answer, never a throw.
    fc.assert(fc.property(fc.string({ unit: fc.constantFrom('{', '}', '[', ']', '"', '\\', ':', ',', 'a', ' ') }), (s) => void jsonShapeFault(s, 3, 3)));
    assert.equal(formatPath(['tools', 0, 'function', 'parameters']), 'tools[0].function.parameters');
  });
});

describe('bodies over the limit', () => {
  const MB = 1024 * 1024;

  /**
   * Sends `headers` and `size` bytes of body, and only then reads the answer, as the many clients
   * do that write the whole request before reading (the socket reads nothing until then, so an
   * answer followed by a reset from the server would be lost).
   */
  async function postBig(url: string, headers: string, size: number): Promise<RawResponse> {
    const { hostname, port } = new URL(url);
    const socket = connect({ host: hostname, port: Number(port) });
    socket.pause();
    const seen: { failure?: Error } = {};
    socket.on('error', (e) => (seen.failure ??= e));
    try {
      await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      socket.write(headers);
      for (let sent = 0; sent < size && !socket.destroyed; sent += chunk.length) {
        if (!socket.write(chunk.subarray(0, Math.min(chunk.length, size - sent)))) {
          await new Promise<void>((r) => {
            const go = () => {
              socket.off('drain', go).off('close', go);
              r();
            };
            socket.on('drain', go).on('close', go);
          });
        }
      }
      if (socket.destroyed) throw new Error(`reset while sending the body (${seen.failure?.message ?? 'closed'})`);
      const parts: Buffer[] = [];
      return await within(
        new Promise<RawResponse>((resolve, reject) => {
          socket.on('data', (b) => {
            parts.push(b);
            const r = parseResponse(Buffer.concat(parts));
            if (r !== null) resolve(r);
          });
          socket.once('close', () => reject(new Error(`no answer (${seen.failure?.message ?? 'closed'}); received ${JSON.stringify(Buffer.concat(parts).toString('latin1').slice(0, 200))}`)));
          socket.resume();
        }),
        20_000,
        'the 413',
      );
    } finally {
      socket.destroy();
    }
  }

  test('20 clients posting 30 MB against a 1 MB limit all receive the 413', async () => {
    await withGateway({ server: { body_limit: MB } }, async (gw) => {
      const { key } = await gw.createKey();
      const headers = head('POST', '/v1/chat/completions', { 'content-type': 'application/json', 'content-length': 30 * MB, authorization: `Bearer ${key}` });
      const answers = await Promise.allSettled(Array.from({ length: 20 }, () => postBig(gw.url, headers, 30 * MB)));
      const failed = answers.filter((a) => a.status === 'rejected');
      assert.equal(failed.length, 0, `every client got an answer: ${failed.map((f) => (f as PromiseRejectedResult).reason).join('; ')}`);
      for (const a of answers) assertError((a as PromiseFulfilledResult<RawResponse>).value, 413, 'invalid_request_error');
      // Chunked bodies, whose length is only known as they arrive, too.
      const chunked = head('POST', '/v1/chat/completions', { 'content-type': 'application/json', 'transfer-encoding': 'chunked', authorization: `Bearer ${key}` });
      const c = await rawConnect(gw.url);
      await write(c.socket, chunked);
      const piece = `${(64 * 1024).toString(16)}\r\n${' '.repeat(64 * 1024)}\r\n`;
      for (let i = 0; i < 40 && !c.socket.destroyed; i++) await write(c.socket, piece);
      await write(c.socket, '0\r\n\r\n');
      assertError(await within(c.response, 20_000, 'chunked 413'), 413, 'invalid_request_error');
      c.socket.destroy();
    });
  });

  test('after the 413 the rest of the body is read, and the connection serves the next request', async () => {
    await withGateway({ server: { body_limit: MB } }, async (gw) => {
      const c = await rawConnect(gw.url);
      await write(c.socket, head('POST', '/v1/embeddings', { 'content-type': 'application/json', 'content-length': 5 * MB }));
      await write(c.socket, Buffer.alloc(5 * MB, 0x20));
      assertError(await within(c.response, 20_000, '413'), 413, 'invalid_request_error');
      const before = c.received().length;
      await write(c.socket, head('GET', '/health', {}));
      const deadline = performance.now() + 10_000;
      while (!c.received().subarray(before).toString().includes('{"status":"ok"}')) {
        assert.ok(performance.now() < deadline && !c.socket.destroyed, `a second answer on the same connection: ${c.received().subarray(before).toString()}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      c.socket.destroy();
    });
  });

  test('the draining is bounded: a client that stops sending is closed at the body timeout, with no second answer', async () => {
    await withGateway({ server: { body_limit: MB, body_timeout_ms: 1000 } }, async (gw) => {
      const c = await rawConnect(gw.url);
      await write(c.socket, head('POST', '/v1/chat/completions', { 'content-type': 'application/json', 'content-length': 30 * MB }));
      await write(c.socket, Buffer.alloc(2 * MB, 0x20));
      assertError(await within(c.response, 10_000, '413'), 413, 'invalid_request_error');
      await within(c.closed, 10_000, 'closed at the body timeout');
      const all = c.received().toString('latin1');
      assert.equal(all.match(/HTTP\/1\.1 /g)?.length, 1, `one response only: ${all}`);
    });
  });

  test('Expect: 100-continue with a Content-Length over the limit: the 413 at once, no 100; under it: 100, then the answer', async () => {
    await withGateway({ server: { body_limit: MB } }, async (gw) => {
      const { key } = await gw.createKey();
      const c = await rawConnect(gw.url);
      await write(c.socket, head('POST', '/v1/chat/completions', { 'content-type': 'application/json', 'content-length': 30 * MB, expect: '100-continue', authorization: `Bearer ${key}` }));
      const r = await within(c.response, 10_000, '413');
      assert.match(c.received().toString('latin1'), /^HTTP\/1\.1 413 /);
      assertError(r, 413, 'invalid_request_error');
      await within(c.closed, 10_000, 'the connection closes');

      const body = JSON.stringify(chat());
      const ok = await rawConnect(gw.url);
      await write(ok.socket, head('POST', '/v1/chat/completions', { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), expect: '100-continue', authorization: `Bearer ${key}` }));
      const deadline = performance.now() + 10_000;
      while (!ok.received().toString('latin1').startsWith('HTTP/1.1 100 Continue\r\n\r\n')) {
        assert.ok(performance.now() < deadline, `100 Continue first: ${ok.received().toString('latin1')}`);
        await new Promise((res) => setTimeout(res, 10));
      }
      await write(ok.socket, body);
      const answer = await within(ok.response, 10_000, 'the answer');
      assert.equal(answer.status, 200, answer.text);
      assert.equal(answer.json.object, 'chat.completion');
      ok.socket.destroy();
    });
  });
});
