import { performance } from 'node:perf_hooks';
import { GatewayError } from '../errors.js';
import type { FirstByte } from '../providers/contract.js';
import { retryAfterMs, toGatewayError, UpstreamError } from '../providers/upstream-error.js';
import type { Signals } from '../types/signals.js';
import type { Affinity } from './affinity.js';
import type { Admission } from './breaker.js';
import type { Deployment, ModelRoute } from './catalog.js';
import type { DeploymentHealth, Health } from './health.js';

/** What routing needs, built once at start-up (compose/start.ts). */
export interface Routing {
  health: Health;
  affinity: Affinity;
  log: { warn(obj: object, msg: string): void };
  /** Each attempt's end, by deployment and outcome (the metrics' upstream attempts). */
  signals: Pick<Signals, 'upstreamAttempt'>;
  /** [0, 1): weighted order and backoff jitter; injected so tests can pin them. */
  random: () => number;
  /** Waits out a backoff or retry-after; rejects once `signal` aborts. Injected so tests can see the waits. */
  sleep: (ms: number, signal: AbortSignal) => Promise<void>;
}

/** One client request as routing sees it. */
export interface RouteCall {
  /** Aborted when the client goes away: everything stops at once. */
  signal: AbortSignal;
  traceId: string;
  /** The session's affinity key (API key, model and session); null when the request names no session. */
  session: string | null;
  /** Called before each upstream request, with the deployment and the attempt's number from 1. */
  onAttempt(d: Deployment, n: number): void;
}

/** Statuses another try may cure (SPEC §7): timeouts, rate limits, overload and gateway errors. */
const TRANSIENT = new Set([408, 429, 500, 502, 503, 504, 529]);
const BACKOFF_BASE_MS = 100;

/**
 * What a failed attempt allows next: `retry` the same deployment (after a backoff), only
 * `elsewhere` (a credential the provider refused, a model it does not have, a broken answer), or
 * `stop` (the request itself is at fault, or its answer was too large to relay twice).
 */
export function verdict(e: UpstreamError): 'retry' | 'elsewhere' | 'stop' {
  if (!e.retryable) return 'stop';
  if (e.failure === 'connect' || e.failure === 'reset' || e.failure === 'timeout') return 'retry';
  return e.failure === 'status' && TRANSIENT.has(e.status!) ? 'retry' : 'elsewhere';
}

/** Failures that speak of the deployment's health (SPEC §7): transient ones, and its credential refused. */
function counts(e: UpstreamError): boolean {
  return verdict(e) === 'retry' || (e.failure === 'status' && (e.status === 401 || e.status === 403));
}

interface Candidate {
  d: Deployment;
  h: DeploymentHealth;
  tries: number;
  /** Not before (the upstream's retry-after), on the clock of `performance.now()`. */
  readyAt: number;
  dropped: boolean;
}

/**
 * Sends one client request upstream, at most `attempts` times in all (SPEC §7). Each attempt
 * goes to the deployment tried least so far in this request (so another one before the same one
 * again), in the model's order: the session's last deployment first, then tiers by priority,
 * weighted within a tier; deployments whose circuit is open are skipped. A retry of a deployment
 * already tried waits a jittered exponential backoff, or its retry-after when that is within
 * `max_retry_wait_ms` (a longer one drops it). The time before the first byte is bounded by
 * `budget_ms` (Budget); the client going away ends it at once. With every attempt failed the
 * client sees 503 when all were merely busy, else the last real failure (502, or 400 for its own
 * fault).
 */
export async function routeRequest<T>(
  r: Routing,
  route: ModelRoute,
  call: RouteCall,
  send: (d: Deployment, signal: AbortSignal, firstByte: FirstByte) => Promise<T>,
): Promise<T> {
  const policy = route.policy;
  const cands = candidates(r, route, call.session);
  const budget = new Budget(policy.budgetMs, call.signal);
  const signal = budget.signal;
  let busy: UpstreamError | null = null;
  let failed: { d: Deployment; err: UpstreamError } | null = null;
  let made = 0;
  try {
    let pick = choose(cands, r.health.now());
    /** Before the next attempt: its backoff or retry-after, already known to fit the budget. */
    let wait = 0;
    while (pick !== null) {
      const { c, admission } = pick;
      const probe = admission === 'probe';
      if (wait > 0) {
        try {
          await r.sleep(wait, signal);
        } catch {
          c.h.circuit.released(probe);
          if (call.signal.aborted) throw new UpstreamError('aborted', 'client went away');
          break;
        }
      }
      made++;
      c.tries++;
      c.h.requests++;
      call.onAttempt(c.d, made);
      const t0 = performance.now();
      try {
        const result = await send(c.d, signal, budget);
        budget.stop();
        c.h.latency(performance.now() - t0);
        c.h.circuit.succeeded(probe);
        r.signals.upstreamAttempt(c.d.id, 'ok');
        if (call.session !== null) r.affinity.set(call.session, c.d);
        return result;
      } catch (thrown) {
        if (call.signal.aborted || !(thrown instanceof UpstreamError)) {
          // Not the deployment's doing: its probe goes to the next request.
          c.h.circuit.released(probe);
          r.signals.upstreamAttempt(c.d.id, call.signal.aborted ? 'client_closed' : 'error');
          if (!call.signal.aborted || (thrown instanceof UpstreamError && thrown.failure === 'aborted')) throw thrown;
          throw new UpstreamError('aborted', 'client went away', { cause: thrown });
        }
        if (budget.spent) {
          // The budget ran out during this attempt: the end. Most of it may have gone to earlier
          // attempts and backoffs, and a slow answer is not a broken one: no mark on this deployment.
          const e = new UpstreamError('timeout', 'routing budget spent before the first byte');
          c.h.circuit.released(probe);
          r.signals.upstreamAttempt(c.d.id, 'timeout');
          failed = { d: c.d, err: e };
          logFailed(r, call.traceId, c, made, e, GIVE_UP);
          break;
        }
        // Another attempt may follow: the budget cuts again, with what is left (a non-streamed attempt stopped it).
        budget.resume();
        const e = thrown;
        const v = verdict(e);
        c.h.failures++;
        if (counts(e)) c.h.circuit.failed(r.health.now(), policy.circuit, probe);
        else c.h.circuit.released(probe);
        r.signals.upstreamAttempt(c.d.id, e.failure === 'status' ? `http_${e.status}` : e.failure);
        if (v === 'stop') {
          logFailed(r, call.traceId, c, made, e, STOP);
          throw toGatewayError(e, c.d.provider.secrets);
        }
        if (e.isSaturated) busy = e;
        else failed = { d: c.d, err: e };
        const after = v === 'retry' ? retryAfterMs(e.headers) : null;
        if (v === 'elsewhere' || (after !== null && after > policy.maxRetryWaitMs)) c.dropped = true;
        else if (after !== null) c.readyAt = performance.now() + after;
        // The next attempt is chosen now, so that this line says what really comes next.
        pick = made < policy.attempts ? choose(cands, r.health.now()) : null;
        wait = 0;
        if (pick !== null) {
          const now = performance.now();
          if (pick.c.tries > 0) wait = Math.max(backoff(pick.c.tries, policy.maxRetryWaitMs, r.random), pick.c.readyAt - now);
          if (wait >= budget.left(now)) {
            // The budget is gone (a non-streamed attempt outlived it) or the wait would outlast
            // it: give up now rather than start what it would cut.
            pick.c.h.circuit.released(pick.admission === 'probe');
            pick = null;
          }
        }
        logFailed(r, call.traceId, c, made, e, pick === null ? GIVE_UP : pick.c === c ? RETRY : { next: 'failover', next_deployment: pick.c.d.id });
      }
    }
  } finally {
    budget.stop();
  }
  if (failed !== null) throw toGatewayError(failed.err, failed.d.provider.secrets);
  if (busy !== null) throw toGatewayError(busy);
  if (made === 0) throw allOpen(cands, r.health.now());
  throw new GatewayError('upstream_failed');
}

/**
 * The request's time before the first byte (`budget_ms`), and the attempts' signal: aborted when
 * the client goes away or the budget runs out. A non-streamed answer has no first byte before it
 * is whole, so once such a request is on its way (`waiting`) the budget no longer cuts it: a long
 * answer is bounded by the provider's own timeout alone, and the time it took still counts
 * against any attempt after it. A stream's attempt is cut when the budget runs out before its
 * first event. One object per request stands for the controller, its timer and the client
 * listener (`handleEvent`), so no closure is made for the client.
 */
class Budget implements FirstByte {
  private readonly ac = new AbortController();
  readonly signal = this.ac.signal;
  /** It ran out while an attempt could be cut (not the client leaving). */
  spent = false;
  private timer: NodeJS.Timeout | null;
  /** When it runs out, on the clock of `performance.now()`. */
  private readonly until: number;

  constructor(ms: number, client: AbortSignal) {
    this.until = performance.now() + ms;
    this.timer = setTimeout(this.expire, ms);
    if (client.aborted) this.ac.abort();
    else client.addEventListener('abort', this, { once: true });
  }

  /** The client went away. */
  handleEvent(): void {
    this.ac.abort();
  }

  private readonly expire = (): void => {
    this.timer = null;
    this.spent = true;
    this.ac.abort();
  };

  /** Ms left before it runs out, at `now` (performance.now()). */
  left(now: number): number {
    return this.until - now;
  }

  /** A non-streamed request is on its way: the budget stops cutting it (see above). */
  waiting(): void {
    this.stop();
  }

  /** An attempt failed and another may follow: the budget cuts again, with what is left. */
  resume(): void {
    if (this.timer !== null || this.spent) return;
    this.timer = setTimeout(this.expire, Math.max(0, this.until - performance.now()));
  }

  /** For good: an answer is on its way to the client, or routing is over. */
  stop(): void {
    if (this.timer === null) return;
    clearTimeout(this.timer);
    this.timer = null;
  }
}

/**
 * What routing does after a failed attempt, as its log line says: `retry` the same deployment,
 * `failover` to another (named), `give_up` (attempts, budget or deployments used up: the client
 * gets the failure), or `stop` (the request's own fault, an answer too large to send twice, or a
 * stream that broke after its first byte). It is the next attempt's own choice, circuits asked
 * and its backoff known to fit the budget.
 */
type NextStep = { next: 'retry' | 'give_up' | 'stop' } | { next: 'failover'; next_deployment: string };
const RETRY: NextStep = { next: 'retry' };
const GIVE_UP: NextStep = { next: 'give_up' };
const STOP: NextStep = { next: 'stop' };

/** The line of a failed attempt: where, which attempt, how it failed, what comes next. Never the credential, nor the upstream's words. */
function logFailed(r: Routing, traceId: string, c: { d: Deployment }, attempt: number, e: UpstreamError, step: NextStep): void {
  r.log.warn({ traceId, deployment: c.d.id, attempt, failure: e.failure, status: e.status, ...step }, 'upstream attempt failed');
}

/**
 * A stream that failed after its first event reached the client (cut off, silent past its idle
 * timeout, an upstream error event): too late for another attempt (SPEC §7), but the
 * deployment's doing, so its health and circuit count it as they count an attempt that failed
 * before, and it gets its line.
 */
export function streamBroke(r: Routing, route: ModelRoute, d: Deployment, traceId: string, attempt: number, e: UpstreamError): void {
  const h = r.health.of(d);
  h.failures++;
  if (counts(e)) h.circuit.failed(r.health.now(), route.policy.circuit, false);
  logFailed(r, traceId, { d }, attempt, e, STOP);
}

/** Every deployment's circuit is open: busy, come back when the first may be probed. */
function allOpen(cands: Candidate[], now: number): GatewayError {
  let soonest = Infinity;
  for (const c of cands) soonest = Math.min(soonest, c.h.circuit.reopensIn(now));
  return new GatewayError('upstream_saturated', {
    message: 'Every deployment of this model is failing; retry shortly',
    retryAfterMs: Math.max(1, Number.isFinite(soonest) ? soonest : 1000),
  });
}

/**
 * The deployment for the next attempt: the least tried in this request, in plan order, whose
 * circuit lets it through. Asking a circuit may make this request its probe, so circuits are
 * asked one by one and the first that says yes is taken.
 */
function choose(cands: Candidate[], now: number): { c: Candidate; admission: Admission } | null {
  let least = Infinity;
  for (const c of cands) if (!c.dropped && c.tries < least) least = c.tries;
  for (let tries = least; Number.isFinite(tries); ) {
    let next = Infinity;
    for (const c of cands) {
      if (c.dropped) continue;
      if (c.tries === tries) {
        const admission = c.h.circuit.admit(now);
        if (admission !== 'skip') return { c, admission };
        c.dropped = true;
      } else if (c.tries > tries) next = Math.min(next, c.tries);
    }
    tries = next;
  }
  return null;
}

/** Full-range jitter over the upper half: 100, 200, 400 ms … up to `cap`. */
function backoff(tries: number, cap: number, random: () => number): number {
  const ceiling = Math.min(cap, BACKOFF_BASE_MS * 2 ** (tries - 1));
  return ceiling / 2 + (random() * ceiling) / 2;
}

/** The request's plan: the session's deployment first while it serves the model, then tiers by priority, weighted within each. */
function candidates(r: Routing, route: ModelRoute, session: string | null): Candidate[] {
  const sticky = session === null ? null : r.affinity.get(session, route.policy.affinityTtlMs);
  const out: Candidate[] = [];
  const add = (d: Deployment): void => void out.push({ d, h: r.health.of(d), tries: 0, readyAt: 0, dropped: false });
  if (sticky !== null && route.tiers.some((t) => t.includes(sticky))) add(sticky);
  for (const tier of route.tiers) {
    for (const d of tier.length === 1 ? tier : weightedOrder(tier, r.random)) if (d !== sticky) add(d);
  }
  return out;
}

/** A weighted shuffle: each deployment comes first in proportion to its weight. */
function weightedOrder(tier: Deployment[], random: () => number): Deployment[] {
  const pool = tier.slice();
  const out: Deployment[] = [];
  while (pool.length > 0) {
    let total = 0;
    for (const d of pool) total += d.weight;
    let r = random() * total;
    let i = 0;
    for (; i < pool.length - 1; i++) {
      r -= pool[i]!.weight;
      if (r < 0) break;
    }
    out.push(pool.splice(i, 1)[0]!);
  }
  return out;
}
