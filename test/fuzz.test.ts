// Property tests. Against the running gateway: whatever arrives — any body, any Authorization or
// Content-Type, any path and method — the answer is a success or a documented error in the one
// SPEC §3 shape, never a 500, and the server keeps working. Directly: the pure parsers only ever
// return or throw their own error type.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { request } from 'undici';
import { formatUsd, parseUsd } from '../src/billing/money.js';
import { ConfigError, interpolate, parseConfigText } from '../src/config/load.js';
import { GatewayError } from '../src/errors.js';
import { parseJsonBody, requireModel, validateChat } from '../src/gateway/validate-chat.js';
import { ADMIN_KEY, startTestGateway, type TestGateway, type TestKey } from './helpers/gateway.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/upstream.js';

const UPSTREAM_KEY = 'sk-upstream-secret';
/** SPEC §3 statuses plus the two HTTP requires (405, 413). */
const DOCUMENTED = new Set([400, 401, 402, 403, 404, 405, 413, 429, 502, 503]);
const RUNS = 300;
/** A property that has not finished by then is hung somewhere: fail it rather than stall the suite. */
const PROPERTY_TIMEOUT_MS = 30_000;

let gw: TestGateway;
let fake: FakeUpstream;
let key: TestKey;

before(async () => {
  fake = await startFakeUpstream();
  gw = await startTestGateway({
    server: { body_limit: 16 * 1024 },
    providers: {
      up: { type: 'openai', base_url: fake.url, api_key: UPSTREAM_KEY, timeout_ms: 1000, first_byte_timeout_ms: 1000, idle_timeout_ms: 500 },
    },
    models: {
      'gpt-x': { pricing: { input: 1, output: 2 }, deployments: [{ provider: 'up', model: 'up-model' }] },
      'org/model-a': { pricing: { input: 1, output: 2 }, deployments: [{ provider: 'demo', model: 'demo-upstream' }] },
    },
  });
  key = await gw.createKey({ credit: '1000000' });
});
after(
  async () => {
    await gw.close();
    await fake.close();
  },
  { timeout: 40_000 },
);

interface Sent {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string | Buffer;
}

async function send(s: Sent): Promise<{ status: number; headers: Record<string, string>; text: string }> {
  // An answer that never comes is a failure too, not a hung suite.
  const res = await request(gw.url + s.path, { method: s.method as 'GET', headers: s.headers, body: s.body, headersTimeout: 5000, bodyTimeout: 5000 });
  const text = await res.body.text();
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
  return { status: res.statusCode, headers, text };
}

/** The property every answer must have: a success with x-request-id, or a documented error in the exact shape. */
function checkAnswer(s: Sent, r: { status: number; headers: Record<string, string>; text: string }): void {
  const what = `${s.method} ${s.path} → ${r.status} ${r.text.slice(0, 300)}`;
  const rid = r.headers['x-request-id'];
  assert.ok(rid !== undefined && rid !== '', `x-request-id on every answer: ${what}`);
  if (r.status >= 200 && r.status < 300) return;
  assert.ok(DOCUMENTED.has(r.status), `a documented status: ${what}`);
  assert.match(r.headers['content-type'] ?? '', /^application\/json\b/, what);
  let body: unknown;
  assert.doesNotThrow(() => (body = JSON.parse(r.text)), `JSON body: ${what}`);
  assert.ok(body !== null && typeof body === 'object' && !Array.isArray(body), what);
  assert.deepEqual(Object.keys(body as object), ['error'], what);
  const e = (body as { error: Record<string, unknown> }).error;
  assert.deepEqual(Object.keys(e).sort(), ['code', 'message', 'param', 'traceId', 'type'], what);
  assert.equal(typeof e['message'], 'string', what);
  assert.equal(typeof e['type'], 'string', what);
  assert.ok(e['param'] === null || typeof e['param'] === 'string', what);
  assert.equal(e['code'], String(r.status), what);
  assert.equal(e['traceId'], rid, what);
  for (const leak of ['http://', '127.0.0.1', UPSTREAM_KEY, ADMIN_KEY, '    at ']) {
    assert.ok(!(e['message'] as string).includes(leak), `message leaks ${leak}: ${what}`);
  }
  if (r.status === 503 || (r.status === 429 && r.headers['x-should-retry'] !== 'false')) {
    const ra = Number(r.headers['retry-after']);
    assert.ok(Number.isInteger(ra) && ra >= 1 && ra <= 60, `retry-after: ${what}`);
    assert.ok(Number(r.headers['retry-after-ms']) >= 1, `retry-after-ms: ${what}`);
  }
  if ([400, 401, 402, 403, 404, 405, 413].includes(r.status)) assert.equal(r.headers['x-should-retry'], 'false', what);
}

async function roundTrip(s: Sent): Promise<void> {
  checkAnswer(s, await send(s));
}

// ---- arbitraries -------------------------------------------------------------------------

/** Any JSON value, nested a little. */
const anyJson = fc.jsonValue({ maxDepth: 3 });
/** Values a field may plausibly carry, right or wrong type. */
const fieldValue = fc.oneof(
  anyJson,
  fc.boolean(),
  fc.integer({ min: -5, max: 300 }),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom('auto', 'none', 'required', 'text', 'json_object', 'json_schema', 'function', ''),
  fc.constant(null),
);
const role = fc.oneof(fc.constantFrom('system', 'developer', 'user', 'assistant', 'tool', 'function'), anyJson);
const part = fc.oneof(
  fc.record({ type: fc.constant('text'), text: fc.oneof(fc.string({ maxLength: 20 }), anyJson) }),
  fc.record({ type: fc.constant('image_url'), image_url: fc.oneof(fc.record({ url: fc.oneof(fc.string(), anyJson) }), anyJson) }),
  fc.record({ type: fc.oneof(fc.string({ maxLength: 10 }), anyJson) }),
  anyJson,
);
const message = fc.oneof(
  fc.record(
    {
      role,
      content: fc.oneof(fc.string({ maxLength: 40 }), fc.array(part, { maxLength: 3 }), anyJson),
      name: fieldValue,
      tool_call_id: fieldValue,
      tool_calls: fieldValue,
    },
    { requiredKeys: ['role'] },
  ),
  anyJson,
);
const tool = fc.oneof(
  fc.record(
    {
      type: fc.oneof(fc.constantFrom('function', 'custom'), anyJson),
      function: fc.oneof(fc.record({ name: fc.oneof(fc.string({ maxLength: 70 }), anyJson), parameters: fieldValue }, { requiredKeys: [] }), anyJson),
    },
    { requiredKeys: [] },
  ),
  anyJson,
);
/** A chat body of the known fields, each present or not, each of a random right or wrong type. */
const chatBody = fc.record(
  {
    model: fc.oneof(fc.constantFrom('demo', 'gpt-x', 'org/model-a', 'no-such-model', ''), anyJson),
    messages: fc.oneof(fc.array(message, { maxLength: 3 }), anyJson),
    stream: fc.oneof(fc.boolean(), fieldValue),
    stream_options: fc.oneof(fc.record({ include_usage: fc.oneof(fc.boolean(), fieldValue) }, { requiredKeys: [] }), fieldValue),
    max_tokens: fc.oneof(fc.integer({ min: 1, max: 64 }), fieldValue),
    max_completion_tokens: fc.oneof(fc.integer({ min: 1, max: 64 }), fieldValue),
    temperature: fieldValue,
    top_p: fieldValue,
    presence_penalty: fieldValue,
    frequency_penalty: fieldValue,
    n: fc.oneof(fc.integer({ min: 1, max: 3 }), fieldValue),
    seed: fieldValue,
    logprobs: fieldValue,
    top_logprobs: fieldValue,
    parallel_tool_calls: fieldValue,
    user: fieldValue,
    stop: fc.oneof(fc.array(fc.string({ maxLength: 5 }), { maxLength: 6 }), fieldValue),
    logit_bias: fc.oneof(fc.dictionary(fc.string({ maxLength: 5 }), fc.oneof(fc.integer({ min: -150, max: 150 }), anyJson), { maxKeys: 3 }), fieldValue),
    tools: fc.oneof(fc.array(tool, { maxLength: 2 }), fieldValue),
    tool_choice: fieldValue,
    response_format: fc.oneof(
      fc.record({ type: fc.oneof(fc.constantFrom('text', 'json_object', 'json_schema', 'xml'), anyJson), json_schema: fieldValue }, { requiredKeys: [] }),
      fieldValue,
    ),
    unknown_extra: fieldValue,
  },
  { requiredKeys: [] },
);
/** A chat body that is valid but for zero or one mutated field. */
const nearlyValidBody = fc
  .tuple(fc.constantFrom('demo', 'gpt-x', 'org/model-a'), fc.boolean(), fc.option(fc.tuple(fc.constantFrom('model', 'messages', 'stream', 'max_tokens', 'temperature', 'n', 'stop', 'tools', 'stream_options', 'response_format', 'logit_bias'), fieldValue), { nil: undefined }))
  .map(([model, stream, mutate]) => {
    const b: Record<string, unknown> = { model, messages: [{ role: 'user', content: 'hi' }], stream, max_tokens: 16 };
    if (mutate !== undefined) b[mutate[0]] = mutate[1];
    return b;
  });

const bodyText: fc.Arbitrary<string | Buffer> = fc.oneof(
  anyJson.map((v) => JSON.stringify(v)),
  chatBody.map((v) => JSON.stringify(v)),
  nearlyValidBody.map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 200 }),
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
  // Truncated JSON.
  chatBody.chain((v) => {
    const s = JSON.stringify(v);
    return fc.integer({ min: 0, max: s.length }).map((n) => s.slice(0, n));
  }),
);

/** Header values undici will send: visible ASCII and spaces, no leading or trailing blanks. */
const headerText = fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 60 });

const authorization = fc.oneof(
  fc.constant<string | undefined>(undefined),
  fc.constantFrom('', 'Bearer', 'Bearer ', 'bearer', 'Basic x', 'Basic dXNlcjpwYXNz', 'Token abc', 'sk-', 'Bearer sk-', 'Bearer  ', 'BEARER sk-unknown0123456789'),
  headerText,
  headerText.map((t) => `Bearer ${t}`),
  fc.constant('valid').map(() => `Bearer ${key.key}`),
  fc.constant('valid-lower').map(() => `bearer ${key.key}`),
  fc.constant('valid-pad').map(() => `Bearer   ${key.key}  `),
  fc.constant('valid-extra').map(() => `Bearer ${key.key} extra`),
  fc.constant('admin').map(() => `Bearer ${ADMIN_KEY}`),
);

const contentType = fc.oneof(
  fc.constant<string | undefined>(undefined),
  fc.constantFrom(
    'application/json',
    'application/json; charset=utf-8',
    'application/json; charset=latin1',
    'APPLICATION/JSON',
    'text/plain',
    'text/event-stream',
    'multipart/form-data; boundary=xyz',
    'application/x-www-form-urlencoded',
    'application/octet-stream',
    'application/jsonx',
    ';;;',
    '*/*',
    'json',
  ),
  headerText,
);

function headersOf(auth: string | undefined, type: string | undefined, extra: Record<string, string> = {}): Record<string, string> {
  const h: Record<string, string> = { ...extra };
  if (auth !== undefined) h['authorization'] = auth;
  if (type !== undefined) h['content-type'] = type;
  return h;
}

const SEGMENTS = [
  'v1', 'chat', 'completions', 'models', 'embeddings', 'me', 'admin', 'accounts', 'keys', 'usage', 'credit', 'health',
  'demo', 'org%2Fmodel-a', 'gpt-x', '', '.', '..', '%2F', '%00', '%ZZ', '%E0%A4%A', '%', '~', 'v2', 'V1', 'acct_x', 'key_x',
];
const segment = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...SEGMENTS) },
  { weight: 1, arbitrary: fc.string({ maxLength: 12 }).map(encodeURIComponent) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 6 }).map(encodeURIComponent) },
  { weight: 1, arbitrary: fc.stringMatching(/^[A-Za-z0-9_.-]{1,3000}$/) },
);
const query = fc.oneof(
  fc.constant(''),
  fc
    .array(fc.tuple(fc.constantFrom('limit', 'cursor', 'from', 'to', 'account_id', 'key_id', 'group_by', 'x', '%ZZ'), fc.oneof(fc.string({ maxLength: 12 }).map(encodeURIComponent), fc.constantFrom('0', '1', '-1', '10001', 'abc', '%ZZ', ''))), { maxLength: 3 })
    .map((kv) => '?' + kv.map(([k, v]) => `${k}=${v}`).join('&')),
);
/** The real routes, with their id slots filled at random. */
const ROUTES = [
  '/v1/chat/completions', '/v1/embeddings', '/v1/models', '/v1/models/{}', '/v1/models/{}/{}', '/v1/me', '/health',
  '/admin/accounts', '/admin/accounts/{}', '/admin/accounts/{}/credit', '/admin/keys', '/admin/keys/{}', '/admin/usage', '/admin/usage/summary',
];
const routePath = fc
  .tuple(fc.constantFrom(...ROUTES), fc.array(segment, { minLength: 2, maxLength: 2 }), fc.constantFrom('', '', '', '/', '//'), fc.integer({ min: 0, max: 9 }))
  .map(([route, [a, b], tail, upper]) => {
    const filled = route.replace('{}', a!).replace('{}', b!) + tail;
    return upper === 0 ? filled.toUpperCase() : filled;
  });
const randomPath = fc.tuple(fc.array(segment, { minLength: 0, maxLength: 5 }), fc.boolean()).map(([segs, slash]) => '/' + segs.join('/') + (slash ? '/' : ''));
const path = fc.tuple(fc.oneof({ weight: 3, arbitrary: routePath }, { weight: 1, arbitrary: randomPath }), query).map(([p, q]) => p + q);
// HEAD is left out: its answers have no body to check the shape of.
const method = fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS');

// ---- against the server ------------------------------------------------------------------

describe('the running gateway answers anything with a success or a documented error', () => {
  before(() => fake.setBehavior({ kind: 'ok' }));

  test('arbitrary bodies to POST /v1/chat/completions with a valid key', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    await fc.assert(
      fc.asyncProperty(bodyText, async (body) => {
        await roundTrip({ method: 'POST', path: '/v1/chat/completions', headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' }, body });
      }),
      { numRuns: RUNS },
    );
  });

  test('arbitrary bodies to POST /v1/embeddings and the admin API', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    const targets = ['/v1/embeddings', '/admin/accounts', '/admin/keys', `/admin/accounts/${key.accountId}/credit`, `/admin/keys/${'key_none'}`];
    await fc.assert(
      fc.asyncProperty(bodyText, fc.constantFrom(...targets), async (body, p) => {
        const auth = p.startsWith('/admin') ? ADMIN_KEY : key.key;
        await roundTrip({ method: p.startsWith('/admin/keys/') ? 'PATCH' : 'POST', path: p, headers: { authorization: `Bearer ${auth}`, 'content-type': 'application/json' }, body });
      }),
      { numRuns: RUNS },
    );
  });

  test('random Authorization and Content-Type headers', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    await fc.assert(
      fc.asyncProperty(
        authorization,
        contentType,
        fc.constantFrom('/v1/chat/completions', '/v1/models', '/v1/models/demo', '/v1/me', '/admin/keys', '/admin/usage'),
        fc.oneof(nearlyValidBody.map((b) => JSON.stringify(b)), bodyText),
        async (auth, type, p, body) => {
          const post = p === '/v1/chat/completions';
          await roundTrip({ method: post ? 'POST' : 'GET', path: p, headers: headersOf(auth, type), ...(post ? { body } : {}) });
        },
      ),
      { numRuns: RUNS },
    );
  });

  test('random paths and methods, with no key, a client key or the admin key', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    await fc.assert(
      fc.asyncProperty(
        method,
        path,
        fc.constantFrom<'none' | 'client' | 'admin'>('none', 'client', 'admin'),
        fc.option(fc.oneof(anyJson.map((v) => JSON.stringify(v)), nearlyValidBody.map((v) => JSON.stringify(v))), { nil: undefined }),
        async (m, p, who, body) => {
          const auth = who === 'none' ? undefined : `Bearer ${who === 'admin' ? ADMIN_KEY : key.key}`;
          // No DELETE of the key the other properties use: it is random ids only.
          const withBody = body !== undefined && m !== 'GET';
          await roundTrip({ method: m, path: p, headers: headersOf(auth, withBody ? 'application/json' : undefined), ...(withBody ? { body } : {}) });
        },
      ),
      { numRuns: RUNS },
    );
  });

  test('after all that, the server still answers normally', async () => {
    const r = await gw.http('POST', '/v1/chat/completions', { key: key.key, body: { model: 'demo', messages: [{ role: 'user', content: 'still there?' }] } });
    assert.equal(r.status, 200, r.text);
    assert.match(r.json.choices[0].message.content, /still there\?/);
    const up = await gw.http('POST', '/v1/chat/completions', { key: key.key, body: { model: 'gpt-x', messages: [{ role: 'user', content: 'hi' }] } });
    assert.equal(up.status, 200, up.text);
    assert.equal((await gw.http('GET', '/v1/models', { key: key.key })).status, 200);
    const usage = await gw.admin('GET', `/usage?key_id=${key.id}&limit=1`);
    assert.equal(usage.status, 200);
    assert.equal(usage.json.data.length, 1);
  });
});

// ---- the pure parsers --------------------------------------------------------------------

describe('parseUsd', () => {
  const whole = fc.bigInt({ min: 0n, max: 10n ** 18n - 1n });
  const frac = fc.bigInt({ min: 0n, max: 10n ** 9n - 1n });
  const units = fc.tuple(whole, frac).map(([w, f]) => w * 10n ** 9n + f);

  test('formatUsd then parseUsd is the identity on every amount', () => {
    fc.assert(
      fc.property(units, (u) => {
        const s = formatUsd(u);
        assert.match(s, /^\d+\.\d{9}$/);
        assert.equal(parseUsd(s), u);
      }),
      { numRuns: 1000 },
    );
  });

  test('any decimal of up to nine places parses to its exact value, in any spelling', () => {
    fc.assert(
      fc.property(whole, fc.integer({ min: 0, max: 9 }), frac, fc.constantFrom('', ' ', '\t'), fc.boolean(), fc.integer({ min: 0, max: 4 }), (w, places, f, pad, plus, zeros) => {
        const digits = places === 0 ? '' : (f % 10n ** BigInt(places)).toString().padStart(places, '0');
        const text = `${pad}${plus ? '+' : ''}${w}${places === 0 && zeros === 0 ? '' : '.' + digits + '0'.repeat(zeros)}${pad}`;
        const expected = w * 10n ** 9n + (digits === '' ? 0n : BigInt(digits.padEnd(9, '0')));
        assert.equal(parseUsd(text), expected, text);
        assert.equal(parseUsd(formatUsd(expected)), expected);
      }),
      { numRuns: 1000 },
    );
  });

  test('JS numbers: a result is the exact value of the number', () => {
    fc.assert(
      fc.property(fc.oneof(fc.double({ min: 0, max: 1e18, noNaN: true }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.constantFrom(0.1, 0.3, 1e-9, 1e-7, 12.5, 1e17)), (n) => {
        const u = parseUsd(n);
        // Beyond 2^53 String() is the shortest round-trip spelling, not the double's exact value; that spelling is what counts.
        if (Number.isSafeInteger(n)) assert.equal(u, BigInt(n) * 10n ** 9n, String(n));
        if (u !== null) assert.equal(Number(formatUsd(u)), n, String(n));
        else assert.ok(n >= 1e18 || /e-|\.\d{10,}/.test(String(n)), `${n} is refused only when it has more than nine places or 18 digits`);
      }),
      { numRuns: 1000 },
    );
  });

  test('invalid amounts are null', () => {
    const invalid = fc.oneof(
      units.map((u) => '-' + formatUsd(u)),
      fc.tuple(units, fc.integer({ min: 1, max: 9 })).map(([u, d]) => formatUsd(u) + String(d)), // a tenth place
      fc.tuple(whole, fc.stringMatching(/^[^0-9. +\t]$/)).map(([w, c]) => `${w}${c}`),
      fc.constantFrom('', ' ', '.', '.5', '5.', '1e3', '0x10', '1,5', '1_000', 'NaN', 'Infinity', '١', '1.2.3', '++1', '+-1', '- 1', '1 000', '0.0000000001', '1'.repeat(19)),
      fc.constantFrom(-1, -0.5, -1e-9, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 1e-10, 1e19, Number.MAX_VALUE, Number.MIN_VALUE),
    );
    fc.assert(
      fc.property(invalid, (v) => {
        assert.equal(parseUsd(v), null, String(v));
      }),
      { numRuns: 1000 },
    );
  });

  test('never throws, whatever it is given', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.stringMatching(/^[+\-\d. e]{0,40}$/), fc.double(), fc.integer()), (v) => {
        const u = parseUsd(v);
        assert.ok(u === null || (typeof u === 'bigint' && u >= 0n));
      }),
      { numRuns: 2000 },
    );
  });
});

describe('parseJsonBody and validateChat', () => {
  function onlyGatewayErrors(run: () => void): GatewayError | null {
    try {
      run();
      return null;
    } catch (e) {
      assert.ok(e instanceof GatewayError, `threw ${String(e)}`);
      assert.equal(e.code, 'invalid_request');
      assert.equal(e.status, 400);
      return e;
    }
  }

  test('parseJsonBody returns a JSON object or throws a 400 GatewayError', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), anyJson.map((v) => JSON.stringify(v)), chatBody.map((v) => JSON.stringify(v))), (raw) => {
        let out: unknown;
        const err = onlyGatewayErrors(() => {
          out = parseJsonBody(raw);
        });
        if (err === null) assert.ok(out !== null && typeof out === 'object' && !Array.isArray(out));
      }),
      { numRuns: 2000 },
    );
    assert.ok(onlyGatewayErrors(() => parseJsonBody(undefined)));
  });

  test('validateChat returns sane parameters or throws a 400 GatewayError naming a field of the body', () => {
    fc.assert(
      fc.property(fc.oneof(chatBody, nearlyValidBody, fc.object({ maxDepth: 3 }), fc.dictionary(fc.string(), anyJson)), (body) => {
        let params: ReturnType<typeof validateChat> | undefined;
        const err = onlyGatewayErrors(() => {
          const model = requireModel(body as Record<string, never>);
          params = validateChat(body as Record<string, never>, model);
        });
        if (err !== null) {
          assert.equal(typeof err.param, 'string', `param names the field: ${err.message}`);
          const root = /^[^.[]+/.exec(err.param!)?.[0];
          assert.ok(root !== undefined && (Object.hasOwn(body, root) || root === 'model' || root === 'messages'), `${err.param} is a field of the body`);
          return;
        }
        assert.ok(params);
        assert.equal(typeof params.stream, 'boolean');
        assert.equal(typeof params.includeUsage, 'boolean');
        assert.ok(params.maxTokens === null || (Number.isInteger(params.maxTokens) && params.maxTokens >= 1));
        assert.ok(Number.isInteger(params.n) && params.n >= 1 && params.n <= 128);
        if (params.includeUsage) assert.equal(params.stream, true);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('interpolate and parseConfigText', () => {
  const name = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,8}$/);
  const env = fc.dictionary(name, fc.string({ maxLength: 10 }), { maxKeys: 4 });

  test('interpolate never throws and replaces ${VAR} and ${VAR:-default} as documented', () => {
    fc.assert(
      fc.property(fc.string(), env, (text, e) => {
        const out = interpolate(text, e);
        if (!text.includes('${')) assert.equal(out, text);
      }),
      { numRuns: 1000 },
    );
    fc.assert(
      fc.property(name, fc.option(fc.string({ maxLength: 10 }), { nil: undefined }), fc.stringMatching(/^[^}]{0,10}$/), fc.boolean(), (n, value, fallback, withDefault) => {
        const e = value === undefined ? {} : { [n]: value };
        const out = interpolate(`a${withDefault ? `\${${n}:-${fallback}}` : `\${${n}}`}b`, e);
        const expected = value !== undefined && value !== '' ? value : withDefault ? fallback : '';
        assert.equal(out, `a${expected}b`);
      }),
      { numRuns: 1000 },
    );
  });

  function onlyConfigErrors(text: string, e: Record<string, string>): void {
    try {
      const config = parseConfigText(text, e);
      // A config that passes is one start-up can use: every deployment names a configured provider.
      for (const m of Object.values(config.models)) {
        for (const d of m.deployments) assert.ok(Object.hasOwn(config.providers, d.provider), `provider ${d.provider} is configured`);
      }
    } catch (err) {
      if (err instanceof assert.AssertionError) throw err;
      assert.ok(err instanceof ConfigError, `threw ${(err as Error)?.name}: ${(err as Error)?.message}\n--- text:\n${text}`);
      assert.ok(!/\n\s+at /.test(err.message), 'no stack trace in the message');
    }
  }

  /** YAML-ish text from fragments that exercise the parser: anchors, aliases, tags, flow, variables. */
  const FRAGMENTS = [
    'server:', 'port:', ' 8360', 'host:', 'providers:', 'models:', 'demo:', 'type:', ' demo', ' openai', 'base_url:', ' http://x/v1',
    'deployments:', '- ', '{', '}', '[', ']', ',', ': ', '\n', '\n  ', '\n    ', '&a ', '*a', '*b', '&b ', '!!binary ', '!!set ', '!foo ',
    '? ', '<<: ', '|', '>', '"', "'", '#', '${PORT}', '${X:-1}', '${', 'pricing:', ' {input: 1, output: 2}', 'provider:', ' toString',
    ' constructor', ' __proto__', 'model:', ' m', 'null', '~', '-1', '1e400', '.inf', '0x1F', 'true', 'database:', ' sqlite::memory:',
    'admin_key:', ' short', '\t', '---', '...', '%YAML 1.2', '@', '`',
  ];
  const yamlish = fc.array(fc.constantFrom(...FRAGMENTS), { maxLength: 40 }).map((parts) => parts.join(''));

  /** Structured configs: the right keys with values of random types, stringified as YAML flow (JSON is YAML). */
  const structured = fc
    .record(
      {
        server: fc.oneof(fc.record({ port: fieldValue, host: fieldValue, body_limit: fieldValue, extra: fieldValue }, { requiredKeys: [] }), fieldValue),
        database: fc.oneof(fc.constantFrom('sqlite::memory:', 'sqlite:./x.db', 'postgres://u@h/db', 'mysql://x'), fieldValue),
        log_level: fc.oneof(fc.constantFrom('info', 'silent', 'loud'), fieldValue),
        providers: fc.oneof(
          fc.dictionary(fc.constantFrom('demo', 'up', 'toString', 'constructor', 'hasOwnProperty'), fc.oneof(fc.constant({ type: 'demo' }), fc.record({ type: fc.oneof(fc.constantFrom('openai', 'demo', 'anthropic'), fieldValue), base_url: fc.oneof(fc.constantFrom('http://127.0.0.1:1/v1', 'ftp://x', 'not a url'), fieldValue) }, { requiredKeys: [] })), { maxKeys: 3 }),
          fieldValue,
        ),
        models: fc.oneof(
          fc.dictionary(
            fc.constantFrom('m', 'org/m', 'glm-5.1', 'valueOf'),
            fc.record(
              {
                pricing: fc.oneof(fc.record({ input: fc.oneof(fc.constantFrom(1, '0.5', '1.0000000001', -1), fieldValue), output: fc.oneof(fc.constant(2), fieldValue) }, { requiredKeys: [] }), fieldValue),
                free: fieldValue,
                deployments: fc.oneof(fc.array(fc.record({ provider: fc.oneof(fc.constantFrom('demo', 'up', 'toString', 'constructor', '__proto__', 'nope'), fieldValue), model: fc.oneof(fc.constant('x'), fieldValue), priority: fieldValue, weight: fieldValue }, { requiredKeys: [] }), { maxLength: 2 }), fieldValue),
              },
              { requiredKeys: [] },
            ),
            { maxKeys: 2 },
          ),
          fieldValue,
        ),
      },
      { requiredKeys: [] },
    )
    .map((o) => JSON.stringify(o));

  test('parseConfigText only ever throws ConfigError, and what it accepts is usable', () => {
    fc.assert(
      fc.property(fc.oneof(yamlish, structured, fc.string(), fc.string({ unit: 'binary', maxLength: 80 })), env, (text, e) => onlyConfigErrors(text, e)),
      { numRuns: 2000 },
    );
  });

  test('parseConfigText: the YAML that node-yaml throws on (rather than reports) is a ConfigError', () => {
    const bomb = ['a: &a [x,x,x,x,x,x,x,x,x]', 'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]', 'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]', 'd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]'].join('\n');
    for (const text of [bomb, 'a: *nope', 'models:\n  m:\n    pricing: {input: 1, output: 2}\n    deployments: [{provider: toString, model: x}]']) {
      assert.throws(() => parseConfigText(text), ConfigError, text);
    }
    assert.throws(() => parseConfigText('models:\n  m:\n    pricing: {input: 1, output: 2}\n    deployments: [{provider: constructor, model: x}]'), /models\.m\.deployments\.0\.provider: unknown provider/);
  });
});
