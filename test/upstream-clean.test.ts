// cleanMessage: the upstream 400 message a client may see, with every host, address, URL,
// credential and internal path removed and the words kept.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { cleanMessage } from '../src/providers/clean-message.js';

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
