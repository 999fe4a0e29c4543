// Routing's parts on their own (issue: upstream reliability): the circuit breaker on an injected
// clock, the affinity LRU, and routeRequest's choices with deployments that fail on command.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { configSchema, type RawConfig } from '../src/config/schema.js';
import { GatewayError } from '../src/errors.js';
import { UpstreamError } from '../src/providers/upstream-error.js';
import { createProviders } from '../src/providers/registry.js';
import { ByteBudget } from '../src/providers/whole-body.js';
import { Affinity } from '../src/routing/affinity.js';
import { Circuit } from '../src/routing/breaker.js';
import { Catalog, type Deployment } from '../src/routing/catalog.js';
import { Health } from '../src/routing/health.js';
import { routeRequest, verdict, type RouteCall, type Routing } from '../src/routing/retry.js';

const SETTINGS = { failures: 3, windowMs: 1000, cooldownMs: 5000 };

describe('circuit breaker (injected clock)', () => {
  test('opens after `failures` failures within the window, skips for the cooldown, lets exactly one probe through, and closes on its success', () => {
    const c = new Circuit();
    c.failed(0, SETTINGS, false);
    c.failed(100, SETTINGS, false);
    assert.equal(c.state(100), 'closed');
    assert.equal(c.admit(100), 'go');
    c.failed(200, SETTINGS, false);
    assert.equal(c.state(200), 'open');
    assert.equal(c.admit(200), 'skip');
    assert.equal(c.reopensIn(200), 5000);
    assert.equal(c.admit(5199), 'skip');
    assert.equal(c.state(5200), 'half_open');
    assert.equal(c.admit(5200), 'probe');
    // While the probe runs, everyone else skips it.
    assert.equal(c.admit(5201), 'skip');
    assert.equal(c.admit(9000), 'skip');
    c.succeeded(true);
    assert.equal(c.state(9000), 'closed');
    assert.equal(c.admit(9000), 'go');
    assert.equal(c.recentFailures(9000, 1000), 0);
  });

  test('failures spread wider than the window never open it', () => {
    const c = new Circuit();
    for (let t = 0; t < 10_000; t += 600) c.failed(t, SETTINGS, false);
    assert.equal(c.state(10_000), 'closed');
    assert.equal(c.recentFailures(10_000, 1000), 1);
  });

  test('a failed probe opens it for another cooldown; a probe that says nothing (a client fault) hands the probe to the next request', () => {
    const c = new Circuit();
    for (let i = 0; i < 3; i++) c.failed(0, SETTINGS, false);
    assert.equal(c.admit(5000), 'probe');
    c.failed(5100, SETTINGS, true);
    assert.equal(c.state(5100), 'open');
    assert.equal(c.admit(10_099), 'skip');
    assert.equal(c.admit(10_100), 'probe');
    c.released(true);
    assert.equal(c.state(10_100), 'half_open');
    assert.equal(c.admit(10_101), 'probe');
  });

  test('an attempt let through before the circuit opened neither closes it nor steals the probe', () => {
    const c = new Circuit();
    for (let i = 0; i < 3; i++) c.failed(0, SETTINGS, false);
    c.succeeded(false);
    assert.equal(c.state(1), 'open');
    assert.equal(c.admit(5000), 'probe');
    c.failed(5001, SETTINGS, false);
    assert.equal(c.admit(5002), 'skip', 'the probe still runs');
  });
});

describe('affinity LRU', () => {
  const d = (id: string): Deployment => ({ id }) as Deployment;

  test('remembers within the TTL, forgets after it, and evicts the least recently used at capacity', () => {
    let now = 0;
    const a = new Affinity(() => now, 2);
    a.set('s1', d('x'));
    a.set('s2', d('y'));
    now = 10;
    assert.equal(a.get('s1', 100)?.id, 'x');
    a.set('s3', d('z'));
    assert.equal(a.size, 2);
    assert.equal(a.get('s2', 100), null, 's2 was the least recently used');
    assert.equal(a.get('s1', 100)?.id, 'x');
    now = 200;
    assert.equal(a.get('s3', 100), null, 'past its TTL');
    assert.equal(a.size, 1);
  });
});

describe('verdict', () => {
  const status = (s: number): UpstreamError => new UpstreamError('status', 'x', { status: s });
  test('transient failures retry, credential and missing-model failures go elsewhere, client faults stop', () => {
    for (const s of [408, 429, 500, 502, 503, 504, 529]) assert.equal(verdict(status(s)), 'retry', String(s));
    for (const f of ['connect', 'reset', 'timeout'] as const) assert.equal(verdict(new UpstreamError(f, 'x')), 'retry', f);
    for (const s of [401, 403, 404]) assert.equal(verdict(status(s)), 'elsewhere', String(s));
    for (const s of [400, 413, 422]) assert.equal(verdict(status(s)), 'stop', String(s));
    assert.equal(verdict(new UpstreamError('aborted', 'x')), 'stop');
  });
});

/**
 * A model over demo providers a, b (priority 0) and c (priority 1), with its routing. Backoffs
 * and retry-afters are recorded in `waits`; `instant` ends them at once instead of sleeping.
 */
function setup(
  policy: RawConfig['routing'] = {},
  deployments?: { provider: string; model: string; priority?: number; weight?: number }[],
  opts: { random?: () => number; instant?: boolean } = {},
) {
  const config = configSchema.parse({
    providers: { a: { type: 'demo' }, b: { type: 'demo' }, c: { type: 'demo' } },
    routing: policy,
    models: {
      m: {
        deployments: deployments ?? [
          { provider: 'a', model: 'ma' },
          { provider: 'b', model: 'mb' },
          { provider: 'c', model: 'mc', priority: 1 },
        ],
      },
    },
  } satisfies RawConfig);
  const providers = createProviders(config.providers, { limits: { maxResponseBytes: 1 << 20, maxEventBytes: 1 << 20, budget: new ByteBudget(1 << 24) } });
  const catalog = new Catalog(config, providers);
  let now = 1_000_000;
  const warnings: Record<string, unknown>[] = [];
  const attempts: string[] = [];
  const waits: number[] = [];
  const routing: Routing = {
    health: new Health(catalog, () => now),
    affinity: new Affinity(() => now),
    log: { warn: (o) => void warnings.push(o as Record<string, unknown>) },
    random: opts.random ?? (() => 0),
    sleep: (ms, signal) => {
      waits.push(ms);
      return opts.instant === true ? Promise.resolve() : sleep(ms, undefined, { signal });
    },
    signals: { upstreamAttempt: (d, outcome) => void attempts.push(`${d} ${outcome}`) },
  };
  return { route: catalog.get('m')!, routing, warnings, attempts, waits, advance: (ms: number) => (now += ms) };
}

function call(session: string | null = null, signal = new AbortController().signal): RouteCall & { tried: string[] } {
  const tried: string[] = [];
  return { signal, traceId: 'trace-1', session, onAttempt: (d) => void tried.push(d.id), tried };
}

/** Runs one request whose attempt at each deployment answers as `outcome` says. */
async function run(s: ReturnType<typeof setup>, outcome: (id: string) => UpstreamError | null, c = call()): Promise<{ tried: string[]; result: string | GatewayError }> {
  try {
    const result = await routeRequest(s.routing, s.route, c, async (d) => {
      const e = outcome(d.id);
      if (e !== null) throw e;
      return d.id;
    });
    return { tried: c.tried, result };
  } catch (e) {
    assert.ok(e instanceof GatewayError, String(e));
    return { tried: c.tried, result: e };
  }
}

const fail500 = (): UpstreamError => new UpstreamError('status', 'boom', { status: 500 });

describe('routing config', () => {
  test('defaults as SPEC §7 says; a model overrides any field, circuit fields one by one, and keeps the rest', () => {
    const config = configSchema.parse({
      providers: { a: { type: 'demo' } },
      routing: { max_retry_wait_ms: 1500, circuit: { cooldown_ms: 9000 } },
      models: {
        plain: { deployments: [{ provider: 'a', model: 'x' }] },
        own: { routing: { attempts: 2, circuit: { failures: 7 } }, deployments: [{ provider: 'a', model: 'x' }] },
      },
    } satisfies RawConfig);
    const providers = createProviders(config.providers, { limits: { maxResponseBytes: 1, maxEventBytes: 1, budget: new ByteBudget(1) } });
    const catalog = new Catalog(config, providers);
    assert.deepEqual(catalog.get('plain')!.policy, {
      attempts: 3, maxRetryWaitMs: 1500, budgetMs: 30_000, circuit: { failures: 5, windowMs: 30_000, cooldownMs: 9000 }, affinityTtlMs: 600_000,
    });
    assert.deepEqual(catalog.get('own')!.policy, {
      attempts: 2, maxRetryWaitMs: 1500, budgetMs: 30_000, circuit: { failures: 7, windowMs: 30_000, cooldownMs: 9000 }, affinityTtlMs: 600_000,
    });
    assert.throws(() => configSchema.parse({ routing: { attempts: 0 } }));
    assert.throws(() => configSchema.parse({ routing: { retries: 2 } }), 'unknown fields are refused');
  });
});

describe('routeRequest', () => {
  test('moves on to another deployment first, in priority order, and answers with the first success', async () => {
    const s = setup();
    const r = await run(s, (id) => (id === 'c/mc' ? null : fail500()));
    assert.deepEqual(r.tried, ['a/ma', 'b/mb', 'c/mc']);
    assert.equal(r.result, 'c/mc');
    assert.deepEqual(s.attempts, ['a/ma http_500', 'b/mb http_500', 'c/mc ok'], 'each attempt is reported once, by deployment and outcome');
    assert.equal(s.warnings.length, 2);
    // Each failure's line says what routing does next.
    assert.deepEqual(s.warnings[0], { traceId: 'trace-1', deployment: 'a/ma', attempt: 1, failure: 'status', status: 500, next: 'failover', next_deployment: 'b/mb' });
    assert.deepEqual(s.warnings[1], { traceId: 'trace-1', deployment: 'b/mb', attempt: 2, failure: 'status', status: 500, next: 'failover', next_deployment: 'c/mc' });
  });

  test('with one deployment, retries it after a backoff, `attempts` times in all', async () => {
    const s = setup({ attempts: 4 }, [{ provider: 'a', model: 'ma' }]);
    const r = await run(s, fail500);
    assert.deepEqual(r.tried, ['a/ma', 'a/ma', 'a/ma', 'a/ma']);
    assert.ok(r.result instanceof GatewayError && r.result.status === 502);
    assert.deepEqual(s.warnings.map((w) => w['next']), ['retry', 'retry', 'retry', 'give_up']);
  });

  test('a 400 stops at once; a 401 moves on and is never retried on the same deployment', async () => {
    const s = setup({ attempts: 5 });
    const bad = await run(s, () => new UpstreamError('status', 'bad', { status: 400, body: '{"error":{"message":"bad thing"}}' }));
    assert.deepEqual(bad.tried, ['a/ma']);
    assert.ok(bad.result instanceof GatewayError && bad.result.status === 400);
    assert.equal(s.warnings.at(-1)!['next'], 'stop');
    const denied = await run(s, () => new UpstreamError('status', 'no', { status: 401 }));
    assert.deepEqual(denied.tried, ['a/ma', 'b/mb', 'c/mc'], 'each once: a refused credential is not retried');
    assert.ok(denied.result instanceof GatewayError && denied.result.status === 502);
  });

  test('all busy: 503 with the upstream retry-after; a retry-after beyond max_retry_wait_ms drops that deployment', async () => {
    const s = setup({ attempts: 5, max_retry_wait_ms: 500 });
    const r = await run(s, () => new UpstreamError('status', 'busy', { status: 429, headers: { 'retry-after': '7' } }));
    assert.deepEqual(r.tried, ['a/ma', 'b/mb', 'c/mc']);
    assert.ok(r.result instanceof GatewayError && r.result.status === 503 && r.result.retryAfterMs === 7000);
  });

  test('a short retry-after is waited out on the same deployment', async () => {
    const s = setup({ attempts: 2 }, [{ provider: 'a', model: 'ma' }]);
    let n = 0;
    const t0 = performance.now();
    const r = await run(s, () => (n++ === 0 ? new UpstreamError('status', 'busy', { status: 429, headers: { 'retry-after-ms': '300' } }) : null));
    assert.equal(r.result, 'a/ma');
    assert.ok(performance.now() - t0 >= 290, 'waited for the retry-after');
  });

  test('the circuit opens after `failures` failures, the deployment is skipped, then probed once after the cooldown', async () => {
    const s = setup({ attempts: 1, circuit: { failures: 2, window_ms: 10_000, cooldown_ms: 5000 } }, [
      { provider: 'a', model: 'ma' },
      { provider: 'b', model: 'mb', priority: 1 },
    ]);
    const aFails = (id: string): UpstreamError | null => (id === 'a/ma' ? fail500() : null);
    await run(s, aFails);
    await run(s, aFails);
    const view = (): Record<string, string> => Object.fromEntries(s.routing.health.view().map((v) => [`${v.provider}/${v.model}`, v.state]));
    assert.deepEqual(view(), { 'a/ma': 'open', 'b/mb': 'closed' });
    const skipped = await run(s, () => null);
    assert.deepEqual(skipped.tried, ['b/mb'], 'a is skipped while open');
    s.advance(5000);
    assert.equal(view()['a/ma'], 'half_open');
    const probe = await run(s, () => null);
    assert.deepEqual(probe.tried, ['a/ma']);
    assert.deepEqual(view(), { 'a/ma': 'closed', 'b/mb': 'closed' });
  });

  test('every circuit open: 503 at once with the time until the first cooldown ends, and no upstream request', async () => {
    const s = setup({ attempts: 1, circuit: { failures: 1, window_ms: 10_000, cooldown_ms: 5000 } }, [{ provider: 'a', model: 'ma' }, { provider: 'b', model: 'mb' }]);
    await run(s, fail500);
    s.advance(1000);
    await run(s, fail500);
    s.advance(500);
    const r = await run(s, () => null);
    assert.deepEqual(r.tried, []);
    assert.ok(r.result instanceof GatewayError && r.result.status === 503);
    assert.equal(r.result.retryAfterMs, 3500);
  });

  test('a session stays on the deployment that served it, and moves when that one fails', async () => {
    const s = setup({ attempts: 3 }, [{ provider: 'a', model: 'ma' }, { provider: 'b', model: 'mb' }]);
    // random() = 0 puts a first: make b serve the session once, then a is healthy again.
    const first = await run(s, (id) => (id === 'a/ma' ? fail500() : null), call('k\nm\nsess'));
    assert.equal(first.result, 'b/mb');
    for (let i = 0; i < 3; i++) assert.deepEqual((await run(s, () => null, call('k\nm\nsess'))).tried, ['b/mb']);
    assert.deepEqual((await run(s, () => null, call(null))).tried, ['a/ma'], 'no session: the plan order');
    const moved = await run(s, (id) => (id === 'b/mb' ? fail500() : null), call('k\nm\nsess'));
    assert.deepEqual(moved.tried, ['b/mb', 'a/ma']);
    assert.deepEqual((await run(s, () => null, call('k\nm\nsess'))).tried, ['a/ma']);
  });

  test('a client that goes away during a backoff ends the request at once', async () => {
    const s = setup({ attempts: 3, max_retry_wait_ms: 60_000, budget_ms: 120_000 }, [{ provider: 'a', model: 'ma' }]);
    const ac = new AbortController();
    const c = call(null, ac.signal);
    const t0 = performance.now();
    const done = routeRequest(s.routing, s.route, c, async () => {
      setImmediate(() => ac.abort());
      throw new UpstreamError('status', 'busy', { status: 503, headers: { 'retry-after': '30' } });
    });
    await assert.rejects(done, (e: unknown) => e instanceof UpstreamError && e.failure === 'aborted');
    assert.ok(performance.now() - t0 < 1000);
    assert.deepEqual(c.tried, ['a/ma']);
  });

  test('budget_ms bounds the time before the first byte: a hanging attempt is cut and the request ends', async () => {
    const s = setup({ attempts: 3, budget_ms: 200 }, [{ provider: 'a', model: 'ma' }]);
    const c = call();
    const t0 = performance.now();
    const done = routeRequest(s.routing, s.route, c, (_d, signal) =>
      new Promise<string>((_, reject) => signal.addEventListener('abort', () => reject(new UpstreamError('aborted', 'cut')))),
    );
    await assert.rejects(done, (e: unknown) => e instanceof GatewayError && e.status === 502);
    assert.ok(performance.now() - t0 < 1000);
    assert.deepEqual(c.tried, ['a/ma']);
  });

  test('backoff doubles from 100 ms, jittered over the upper half of each step, and is capped at max_retry_wait_ms', async () => {
    const solo = [{ provider: 'a', model: 'ma' }];
    const low = setup({ attempts: 7, max_retry_wait_ms: 1000, circuit: { failures: 100 } }, solo, { random: () => 0, instant: true });
    assert.equal((await run(low, fail500)).tried.length, 7);
    assert.deepEqual(low.waits, [50, 100, 200, 400, 500, 500], 'the low end: half of each step');
    const high = setup({ attempts: 7, max_retry_wait_ms: 1000, circuit: { failures: 100 } }, solo, { random: () => 0.999, instant: true });
    await run(high, fail500);
    assert.deepEqual(high.waits.map(Math.round), [100, 200, 400, 800, 1000, 1000], 'the high end: the whole step, at most the cap');
  });

  test('a wait that would outlast the budget is not begun: the failure\'s own line says give_up', async () => {
    const s = setup({ attempts: 4, budget_ms: 1000, max_retry_wait_ms: 5000 }, [{ provider: 'a', model: 'ma' }, { provider: 'b', model: 'mb' }], { instant: true });
    const r = await run(s, () => new UpstreamError('status', 'busy', { status: 503, headers: { 'retry-after-ms': '1500' } }));
    assert.deepEqual(r.tried, ['a/ma', 'b/mb']);
    assert.ok(r.result instanceof GatewayError && r.result.status === 502);
    assert.deepEqual(s.warnings.map((w) => [w['deployment'], w['next'], w['next_deployment']]), [
      ['a/ma', 'failover', 'b/mb'],
      ['b/mb', 'give_up', undefined],
    ]);
    assert.deepEqual(s.waits, [], 'no wait begun');
  });

  test('budget_ms does not cut a non-streamed request on its way: an answer slower than the budget succeeds', async () => {
    const s = setup({ attempts: 1, budget_ms: 100 }, [{ provider: 'a', model: 'ma' }]);
    const r = await routeRequest(s.routing, s.route, call(), async (d, signal, firstByte) => {
      firstByte.waiting();
      await sleep(300, undefined, { signal });
      return d.id;
    });
    assert.equal(r, 'a/ma');
  });

  test('a non-streamed attempt that outlived the budget and then failed is the last: its time counted', async () => {
    const s = setup({ attempts: 3, budget_ms: 200 }, [{ provider: 'a', model: 'ma' }, { provider: 'b', model: 'mb' }]);
    const c = call();
    const done = routeRequest(s.routing, s.route, c, async (_d, signal, firstByte) => {
      firstByte.waiting();
      await sleep(300, undefined, { signal });
      throw new UpstreamError('status', 'server error', { status: 500, headers: {} });
    });
    await assert.rejects(done, (e: unknown) => e instanceof GatewayError && e.status === 502);
    assert.deepEqual(c.tried, ['a/ma'], 'no attempt is started with no budget left');
    assert.deepEqual(s.warnings.map((w) => [w['failure'], w['next']]), [['status', 'give_up']]);
  });

  test('a non-streamed attempt that failed within the budget leaves what is left to the next, which the budget cuts again', async () => {
    const s = setup({ attempts: 3, budget_ms: 300 }, [{ provider: 'a', model: 'ma' }, { provider: 'b', model: 'mb' }]);
    const c = call();
    const t0 = performance.now();
    const done = routeRequest(s.routing, s.route, c, async (_d, signal, firstByte) => {
      if (c.tried.length === 1) {
        firstByte.waiting();
        await sleep(100, undefined, { signal });
        throw new UpstreamError('reset', 'body cut off');
      }
      // A stream that never opens.
      return new Promise<string>((_, reject) => signal.addEventListener('abort', () => reject(new UpstreamError('aborted', 'cut'))));
    });
    await assert.rejects(done, (e: unknown) => e instanceof GatewayError && e.status === 502);
    const took = performance.now() - t0;
    assert.ok(took >= 290 && took < 1000, `cut at the budget's end (${took} ms)`);
    assert.deepEqual(c.tried, ['a/ma', 'b/mb']);
    assert.deepEqual(s.warnings.map((w) => [w['failure'], w['next']]), [['reset', 'failover'], ['timeout', 'give_up']]);
  });

  test('a budget that runs out is not the deployment\'s failure: its circuit stays closed, a probe is handed back', async () => {
    const s = setup({ attempts: 3, budget_ms: 100, circuit: { failures: 1, window_ms: 10_000, cooldown_ms: 5000 } }, [{ provider: 'a', model: 'ma' }]);
    const hang = (_d: Deployment, signal: AbortSignal): Promise<string> =>
      new Promise((_, reject) => signal.addEventListener('abort', () => reject(new UpstreamError('aborted', 'cut'))));
    const state = (): Record<string, unknown> => {
      const v = s.routing.health.view()[0]!;
      return { state: v.state, recent_failures: v.recent_failures, failures: v.failures };
    };
    await assert.rejects(routeRequest(s.routing, s.route, call(), hang), (e: unknown) => e instanceof GatewayError && e.status === 502);
    assert.deepEqual(state(), { state: 'closed', recent_failures: 0, failures: 0 });
    assert.equal(s.warnings.at(-1)!['next'], 'give_up');
    await run(s, fail500);
    s.advance(5000);
    assert.equal(state()['state'], 'half_open');
    await assert.rejects(routeRequest(s.routing, s.route, call(), hang), (e: unknown) => e instanceof GatewayError && e.status === 502);
    assert.equal(state()['state'], 'half_open', 'the probe was handed back, not failed');
    assert.deepEqual((await run(s, () => null)).tried, ['a/ma'], 'the next request probes');
    assert.equal(state()['state'], 'closed');
  });
});
