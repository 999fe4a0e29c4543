// The error registry (src/errors.ts), the one renderer (src/server/render-error.ts) and the
// documented table (docs/errors.md) must agree, code by code.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ERROR_REGISTRY, GatewayError, type ErrorCode } from '../src/errors.js';
import { errorBody, renderError } from '../src/protocols/openai-chat/render-error.js';

const codes = Object.keys(ERROR_REGISTRY) as ErrorCode[];
const TRACE = 'req_0123456789abcdef01234567';

/** SPEC §3: the statuses and the types each may carry. */
const SPEC_TYPES: Record<number, string[]> = {
  400: ['invalid_request_error'],
  401: ['invalid_api_key'],
  402: ['insufficient_balance'],
  403: ['api_key_frozen', 'model_access_denied'],
  404: ['model_not_found', 'not_found_error'],
  405: ['invalid_request_error'],
  408: ['invalid_request_error'],
  413: ['invalid_request_error'],
  431: ['invalid_request_error'],
  429: ['rate_limit_error'],
  500: ['api_error'],
  502: ['api_error'],
  503: ['api_error'],
};

function parseBody(body: string) {
  const parsed = JSON.parse(body) as Record<string, unknown>;
  assert.deepEqual(Object.keys(parsed), ['error']);
  const e = parsed['error'] as Record<string, unknown>;
  assert.deepEqual(Object.keys(e).sort(), ['code', 'message', 'param', 'traceId', 'type']);
  return e;
}

describe('renderError, for every code in the registry', () => {
  test('the registry is not empty and has every SPEC §3 status', () => {
    const statuses = new Set<number>(codes.map((c) => ERROR_REGISTRY[c].status));
    for (const s of [400, 401, 402, 403, 404, 405, 413, 429, 500, 502, 503]) assert.ok(statuses.has(s), `a code for ${s}`);
  });

  for (const code of codes) {
    const spec = ERROR_REGISTRY[code];

    test(`${code}: ${spec.status} ${spec.type}`, () => {
      assert.ok(SPEC_TYPES[spec.status]?.includes(spec.type), `${spec.status} ${spec.type} is a SPEC §3 pairing`);

      const err = new GatewayError(code);
      assert.equal(err.code, code);
      assert.equal(err.status, spec.status);
      assert.equal(err.type, spec.type);
      assert.equal(err.message, spec.message);
      assert.equal(err.param, null);

      const r = renderError(err, TRACE);
      assert.equal(r.status, spec.status);
      assert.equal(r.headers['content-type'], 'application/json; charset=utf-8');
      assert.equal(r.headers['x-request-id'], TRACE);
      const e = parseBody(r.body);
      assert.deepEqual(e, { message: spec.message, type: spec.type, param: null, code: String(spec.status), traceId: TRACE });
      assert.equal(r.body, errorBody(err, TRACE), 'the stream error event carries the same body');

      if (!spec.retryable) {
        assert.equal(r.headers['x-should-retry'], 'false');
        assert.equal(r.headers['retry-after'], undefined);
        assert.equal(r.headers['retry-after-ms'], undefined);
      } else {
        assert.equal(r.headers['x-should-retry'], undefined);
      }
      if (spec.retryable && (spec.status === 429 || spec.status === 503)) {
        assert.equal(r.headers['retry-after'], '1', 'default: one second');
        assert.equal(r.headers['retry-after-ms'], '1000');
      } else {
        assert.equal(r.headers['retry-after'], undefined);
        assert.equal(r.headers['retry-after-ms'], undefined);
      }
    });

    test(`${code}: a precise message and param are rendered as given`, () => {
      const err = new GatewayError(code, { message: 'Something precise', param: 'messages[0].content' });
      const e = parseBody(renderError(err, 'req_x').body);
      assert.deepEqual(e, { message: 'Something precise', type: spec.type, param: 'messages[0].content', code: String(spec.status), traceId: 'req_x' });
    });

    if (spec.retryable && (spec.status === 429 || spec.status === 503)) {
      test(`${code}: retry-after is whole seconds ≤ 60 and retry-after-ms exact`, () => {
        const cases: [number, string, string][] = [
          [0.2, '1', '1'],
          [1, '1', '1'],
          [999, '1', '999'],
          [1000, '1', '1000'],
          [1001, '2', '1001'],
          [1500, '2', '1500'],
          [7000, '7', '7000'],
          [59_999, '60', '59999'],
          [60_000, '60', '60000'],
          [61_000, '60', '60000'],
          [3_600_000, '60', '60000'],
        ];
        for (const [ms, seconds, exact] of cases) {
          const r = renderError(new GatewayError(code, { retryAfterMs: ms }), TRACE);
          assert.equal(r.headers['retry-after'], seconds, `retryAfterMs ${ms}`);
          assert.equal(r.headers['retry-after-ms'], exact, `retryAfterMs ${ms}`);
          assert.equal(r.headers['x-should-retry'], undefined);
        }
      });
    }
  }

  test('extra headers (allow on a 405) are passed on', () => {
    const r = renderError(new GatewayError('method_not_allowed', { headers: { allow: 'GET, POST' } }), TRACE);
    assert.equal(r.headers['allow'], 'GET, POST');
    assert.equal(r.headers['x-should-retry'], 'false');
  });

  test('the 429 of an exhausted spend quota says no retry; the 429 of a rate limit says when', () => {
    assert.equal(renderError(new GatewayError('quota_exhausted'), TRACE).headers['x-should-retry'], 'false');
    const rl = renderError(new GatewayError('rate_limited', { retryAfterMs: 2500 }), TRACE);
    assert.equal(rl.headers['retry-after'], '3');
    assert.equal(rl.headers['retry-after-ms'], '2500');
  });
});

describe('docs/errors.md', () => {
  const doc = readFileSync(fileURLToPath(new URL('../docs/errors.md', import.meta.url)), 'utf8');

  /** The rows of the markdown table whose header is `| code | status | type | retry | when |`. */
  function codeTable(): { code: string; status: number; type: string; retry: string }[] {
    const lines = doc.split('\n');
    const header = lines.findIndex((l) => /^\|\s*code\s*\|\s*status\s*\|\s*type\s*\|\s*retry\s*\|/.test(l));
    assert.ok(header >= 0, 'docs/errors.md has the code table');
    assert.match(lines[header + 1] ?? '', /^\|(\s*-+\s*\|)+\s*$/, 'a separator row follows the header');
    const rows = [];
    for (const line of lines.slice(header + 2)) {
      if (!line.startsWith('|')) break;
      const cells = line.split('|').slice(1, -1).map((c) => c.trim());
      assert.equal(cells.length, 5, `five cells: ${line}`);
      const unquote = (c: string): string => {
        const m = /^`([^`]+)`$/.exec(c);
        assert.ok(m, `a backquoted value: ${c}`);
        return m[1]!;
      };
      assert.match(cells[1]!, /^\d{3}$/, `a status: ${line}`);
      rows.push({ code: unquote(cells[0]!), status: Number(cells[1]), type: unquote(cells[2]!), retry: cells[3]! });
    }
    return rows;
  }

  const rows = codeTable();

  test('the table has one row per registry code, and no other', () => {
    const documented = rows.map((r) => r.code);
    assert.equal(new Set(documented).size, documented.length, 'no code documented twice');
    assert.deepEqual([...documented].sort(), [...codes].sort());
  });

  for (const code of codes) {
    test(`${code} is documented with the registry's status, type and retry`, () => {
      const row = rows.find((r) => r.code === code);
      assert.ok(row, `a row for ${code}`);
      const spec = ERROR_REGISTRY[code];
      assert.equal(row.status, spec.status);
      assert.equal(row.type, spec.type);
      assert.equal(row.retry, spec.retryable ? 'yes' : 'no');
    });
  }

  test('no row names a code that does not exist', () => {
    for (const r of rows) assert.ok(Object.hasOwn(ERROR_REGISTRY, r.code), `${r.code} is in src/errors.ts`);
  });
});
