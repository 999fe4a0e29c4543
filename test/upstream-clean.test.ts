// The pure functions behind the hostile-upstream defences: cleanMessage (the upstream 400 message
// a client may see, with every host, address, URL, credential and internal path removed and the
// words kept), the bounded SSE decoder, and the top-level scan that lets an embeddings answer be
// relayed as the upstream's bytes.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type { Bill } from '../src/billing/bill.js';
import { presentRaw, presentResult } from '../src/gateway/present.js';
import { cleanMessage } from '../src/providers/clean-message.js';
import { scanObject } from '../src/providers/raw-json.js';
import { SseDecoder } from '../src/providers/sse.js';
import type { JsonObject } from '../src/providers/types.js';
import { UpstreamError } from '../src/providers/upstream-error.js';

const HUMAN = "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.";

/** [input, what must be gone] — the rest of the sentence must stay. */
const REMOVED: [string, string][] = [
  ['connect to db-internal.corp failed', 'db-internal.corp'],
  ['host ip-10-0-0-12.ec2.internal refused', 'ip-10-0-0-12.ec2.internal'],
  ['cache redis.svc.cluster.local unavailable', 'redis.svc.cluster.local'],
  ['upstream api.openai.com answered', 'api.openai.com'],
  ['proxy at my-proxy.lan:3128 failed', 'my-proxy.lan:3128'],
  ['backend redis:6379 down', 'redis:6379'],
  ['backend localhost:8080 down', 'localhost:8080'],
  ['from 10.0.0.12 denied', '10.0.0.12'],
  ['from 10.0.0.12:443.', '10.0.0.12:443'],
  ['listening on [::1]:8080 now', '::1'],
  ['link-local fe80::1%eth0 reached', 'fe80::1'],
  ['link-local fe80::1%eth0 reached', 'eth0'],
  ['doc addr 2001:db8::1.', '2001:db8::1'],
  ['full 2001:0db8:85a3:0000:0000:8a2e:0370:7334 seen', '2001:0db8:85a3:0000:0000:8a2e:0370:7334'],
  ['mapped ::ffff:10.0.0.1 seen', '10.0.0.1'],
  ['see https://internal.example/v1/x?key=1 for details', 'internal.example'],
  ['db postgres://user:pass@db.corp/db is down', 'user:pass'],
  ['db postgres://user:pass@db.corp/db is down', 'db.corp'],
  ['queue amqp://guest:guest@rabbit:5672/ closed', 'guest'],
  ['stream s3://bucket-name/key/path missing', 'bucket-name'],
  ['stored in file:///etc/secret.txt', '/etc/secret.txt'],
  ['sent user svc:Hunter2@db-primary', 'Hunter2'],
  ['owner ops@corp.example notified', 'ops@'],
  ['key sk-abcdefghijklmnop1234 invalid', 'sk-abcdefghijklmnop1234'],
  ['key sk-proj-AbCdEf0123456789_xyz invalid', 'sk-proj-AbCdEf0123456789_xyz'],
  ['key sk-ant-api03-abcdefghij invalid', 'sk-ant-api03-abcdefghij'],
  ['aws AKIAIOSFODNN7EXAMPLE denied', 'AKIAIOSFODNN7EXAMPLE'],
  ['aws ASIAIOSFODNN7EXAMPLE denied', 'ASIAIOSFODNN7EXAMPLE'],
  ['secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY leaked', 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'],
  ['with key=abc123 sent', 'abc123'],
  ['with KEY: abc123 sent', 'abc123'],
  ['with password=hunter2 sent', 'hunter2'],
  ['with Password: hunter2 sent', 'hunter2'],
  ['with PASSWD=hunter2 sent', 'hunter2'],
  ['with secret=s3cr3t sent', 's3cr3t'],
  ['with Token: t0ken-value sent', 't0ken-value'],
  ['with access_token=abc.def sent', 'abc.def'],
  ['with api_key: "quoted value" sent', 'quoted value'],
  ['with {"password": "hunter2"} sent', 'hunter2'],
  ['with x-api-key=zzz999 sent', 'zzz999'],
  ['with client_secret=zzz999 sent', 'zzz999'],
  ['header Authorization: Bearer abc.def.ghi rejected', 'abc.def.ghi'],
  ['header bearer xyz789 rejected', 'xyz789'],
  ['header Basic dXNlcjpwYXNz rejected', 'dXNlcjpwYXNz'],
  ['jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig rejected', 'eyJhbGciOiJIUzI1NiJ9'],
  ['org org-AbCdEfGh12345678 over quota', 'org-AbCdEfGh12345678'],
  ['org org-abcdefghijklmnopqrstuvwx over quota', 'org-abcdefghijklmnopqrstuvwx'],
  ['project proj_AbCdEf123456 over quota', 'proj_AbCdEf123456'],
  ['github ghp_abcdefghijklmnopqrstuvwx0123 bad', 'ghp_abcdefghijklmnopqrstuvwx0123'],
  ['digest 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 bad', '9f86d081884c7d659a2feaa0c55ad015'],
  ['file /var/lib/model/weights.bin missing', '/var/lib/model'],
  ['file /home/deploy/app/config.yaml missing', '/home/deploy'],
  ['file ~/models/x.bin missing', '~/models'],
  ['file C:\\Users\\svc\\key.txt missing', 'C:\\Users'],
  ['share \\\\fileserver\\models missing', 'fileserver'],
  ['upstream sk-upstream-secret-42 answered', 'sk-upstream-secret-42'],
];

/** Messages (or parts) that must come through unchanged. */
const KEPT = [
  HUMAN,
  "Invalid value for 'messages[0].content': expected a string.",
  "Invalid schema for function 'get_weather': In context=(), 'additionalProperties' is required to be supplied and to be false.",
  'The model `gpt-3.5-turbo` does not exist or you do not have access to it.',
  'Unsupported parameter: max_tokens is not supported with this model. Use max_completion_tokens instead.',
  "'response_format.json_schema.strict' must be a boolean, e.g. true.",
  'Please reduce the length of the messages or completion (1/2 of the budget).',
  'Basic auth is not supported; use an org-level key.',
  'Timestamp 12:30:45 is in the past.',
  'Expected std::vector in messages.content or tools[0].function.parameters.',
  'Your input has 9000 tokens; the limit is 8192.',
];

test('cleanMessage removes each host, address, URL, credential and path and keeps the words around it', () => {
  for (const [input, gone] of REMOVED) {
    const out = cleanMessage(input, ['sk-upstream-secret-42']);
    assert.ok(!out.includes(gone), `${JSON.stringify(gone)} survived in ${JSON.stringify(out)}`);
    const [first] = input.split(' ');
    assert.ok(out.startsWith(first!), `the words were kept: ${JSON.stringify(out)}`);
  }
});

test('cleanMessage leaves a useful message alone', () => {
  for (const m of KEPT) assert.equal(cleanMessage(m), m);
});

test('cleanMessage caps the length', () => {
  assert.equal(cleanMessage('a '.repeat(5000)).length, 1001);
});

// Words and separators a message is made of; none of them forms a host or token with its neighbours.
const word = fc.constantFrom('The', 'request', 'failed', 'at', 'model', 'context', 'length', 'is', '8192', 'tokens', 'However', 'your', 'upstream');
const sep = fc.constantFrom(' ', ', ', ': ', ' (', ') ', '\n', " '", "' ", ' "', '" ', ' [', '] ', '. ');
const awsKey = fc.stringMatching(/^AKIA[A-Z0-9]{16}$/);
const skKey = fc.stringMatching(/^sk-(proj-)?[A-Za-z0-9_-]{20,48}$/);
const leak = fc.oneof(
  fc.ipV4().map((s) => ({ s, parts: [s] })),
  fc.ipV6().map((s) => ({ s, parts: [s] })),
  fc.webUrl({ withQueryParameters: true, withFragments: true }).map((s) => ({ s, parts: [s, new URL(s).host] })),
  awsKey.map((s) => ({ s, parts: [s] })),
  skKey.map((s) => ({ s, parts: [s] })),
);

test('property: no IPv4, IPv6, URL, AWS key or sk- key put anywhere in a message survives', () => {
  fc.assert(
    fc.property(fc.array(word, { maxLength: 8 }), fc.array(word, { maxLength: 8 }), sep, sep, leak, (before, after, s1, s2, { s, parts }) => {
      const message = before.join(' ') + s1 + s + s2 + after.join(' ');
      const out = cleanMessage(message);
      for (const p of parts) if (p.length >= 3) assert.ok(!out.includes(p), `${JSON.stringify(p)} survived: ${JSON.stringify(out)}`);
      // What was around it is still there.
      for (const w of [...before, ...after]) assert.ok(out.includes(w));
    }),
    { numRuns: 2000 },
  );
});

test('property: cleanMessage never throws and is idempotent on its own output', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 300 }), (m) => {
      const once = cleanMessage(m);
      assert.equal(cleanMessage(once), once);
    }),
    { numRuns: 2000 },
  );
});

describe('SseDecoder', () => {
  /** The events of `text` fed in the given pieces. */
  const decode = (pieces: (string | Buffer)[], max = 1 << 20): { events: string[]; lines: number } => {
    const d = new SseDecoder(max);
    const events: string[] = [];
    for (const p of pieces) d.feed(typeof p === 'string' ? Buffer.from(p) : p, events);
    return { events, lines: d.lines };
  };

  test('LF, CRLF and CR end lines; data lines join with newlines; comments and other fields are skipped', () => {
    const text = ': hi\ndata: a\r\ndata:b\rdata\n\nevent: x\nid: 1\nretry: 5\ndata: {"c":1}\n\n: keep-alive\n\ndata: [DONE]\n\n';
    const { events, lines } = decode([text]);
    assert.deepEqual(events, ['a\nb\n', '{"c":1}', '[DONE]']);
    assert.equal(lines, 14);
  });

  test('property: however the bytes are split, the same events come out (multi-byte characters and CRLF split too)', () => {
    const text = Buffer.from('\ufeffdata: {"content":"héllo 世界 🎉"}\r\n\r\n: ping\r\ndata: line1\r\ndata: line2\r\n\r\ndata: [DONE]\r\n\r\n');
    const whole = decode([text]).events;
    assert.deepEqual(whole, ['{"content":"héllo 世界 🎉"}', 'line1\nline2', '[DONE]']);
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: text.length - 1 }), { maxLength: 12 }), (cuts) => {
        const at = [0, ...cuts.sort((x, y) => x - y), text.length];
        const pieces = at.slice(1).map((end, i) => text.subarray(at[i]!, end));
        assert.deepEqual(decode(pieces).events, whole);
      }),
      { numRuns: 500 },
    );
  });

  test('a line that never ends fails once it passes the cap, whatever the chunking', () => {
    const d = new SseDecoder(1000);
    const out: string[] = [];
    d.feed(Buffer.from('data: ' + 'x'.repeat(500)), out);
    assert.throws(() => d.feed(Buffer.from('x'.repeat(600)), out), (e: unknown) => e instanceof UpstreamError && e.failure === 'protocol');
    assert.throws(() => new SseDecoder(1000).feed(Buffer.from('data: ' + 'x'.repeat(2000)), []), UpstreamError);
  });

  test('an event of many short data lines fails once it passes the cap; comment lines do not add up', () => {
    assert.throws(() => decode(Array.from({ length: 200 }, () => 'data: xxxxxxxxxx\n'), 1000), UpstreamError);
    assert.deepEqual(decode([...Array.from({ length: 1000 }, () => ': keep-alive\n'), 'data: ok\n\n'], 1000).events, ['ok']);
    // Whole events never add up either.
    assert.equal(decode(Array.from({ length: 500 }, () => 'data: xxxxxxxxxx\n\n'), 1000).events.length, 500);
  });
});

describe('scanObject and presentRaw', () => {
  const scan = (text: string) => scanObject(Buffer.from(text));

  test('finds the top-level model and usage, not those nested or inside strings', () => {
    const text = ' {"data":[{"model":"inner","s":"\\"usage\\": {}]"}],"model" : "up",\n"usage":{"prompt_tokens":3}} ';
    const top = scan(text)!;
    const b = Buffer.from(text);
    assert.deepEqual(top.model.map(([s, e]) => b.toString('utf8', s, e)), ['"up"']);
    assert.deepEqual(top.usage.map(([s, e]) => b.toString('utf8', s, e)), ['{"prompt_tokens":3}']);
    assert.equal(b[top.close], 0x7d);
  });

  test('anything but one JSON object is refused', () => {
    for (const bad of ['', '[]', '"x"', '{', '{"a":1', '{"a":1}x', '{"a":"x}', '{"a":[1,2}', '{a:1}', '{"a":nul}', '{"a":1,}', '<html>', '{"a":1}{"b":2}']) {
      assert.equal(scan(bad), null, bad);
    }
    assert.ok(scan('{}'));
    // Whatever the bytes, an answer and never an exception; what JSON.parse takes as an object, the scan takes too.
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json()), (text) => {
        const top = scan(text);
        let parsed: unknown;
        try {
          parsed = JSON.parse(text);
        } catch {
          return;
        }
        assert.equal(top !== null, parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed), text);
      }),
      { numRuns: 2000 },
    );
  });

  test('property: presentRaw gives the same JSON as parsing, presentResult and serialising', () => {
    const count = fc.nat({ max: 1_000_000 });
    const billed: fc.Arbitrary<Bill> = fc.record({
      usage: fc.record({ promptTokens: count, completionTokens: count, cachedTokens: count, cacheWriteTokens: count, reasoningTokens: count }),
      cost: fc.bigInt({ min: 0n, max: 10n ** 12n }),
      reported: fc.boolean(),
      distrusted: fc.boolean(),
    });
    const body = fc.record(
      { object: fc.constant('list'), data: fc.array(fc.jsonValue({ maxDepth: 3 })), model: fc.string(), usage: fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.record({ prompt_tokens: fc.nat() })) },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(body, fc.boolean(), fc.string(), billed, (obj, pretty, model, cost) => {
        const bytes = Buffer.from(JSON.stringify(obj, null, pretty ? 2 : undefined));
        const top = scanObject(bytes);
        assert.ok(top !== null);
        const relayed = JSON.parse(Buffer.concat(presentRaw({ ...top, bytes, release: () => undefined }, model, cost)).toString('utf8')) as unknown;
        const expected = JSON.parse(bytes.toString('utf8')) as JsonObject;
        presentResult(expected, model, cost);
        assert.deepEqual(relayed, JSON.parse(JSON.stringify(expected)));
      }),
      { numRuns: 1000 },
    );
  });
});
