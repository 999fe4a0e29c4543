import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { GatewayError } from '../errors.js';
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
 * `max_retry_wait_ms` (a longer one drops it). The whole effort before the first byte is bounded
 * by `budget_ms`; the client going away ends it at once. With every attempt failed the client
 * sees 503 when all were merely busy, else the last real failure (502, or 400 for its own fault).
 */
export async function routeRequest<T>(r: Routing, route: ModelRoute, call: RouteCall, send: (d: Deployment, signal: AbortSignal) => Promise<T>): Promise<T> {
  const policy = route.policy;
  const cands = candidates(r, route, call.session);
  const started = performance.now();
  // The attempts' signal: the client's, or the budget's running out. Once an answer starts the
  // timer is cleared, so a stream only ends with its client. A listener links the two: a
  // fraction of the cost of AbortSignal.any, which registers weak references per request.
  const budget = new AbortController();
  let spent = false;
  const timer = setTimeout(() => {
    spent = true;
    budget.abort();
  }, policy.budgetMs);
  if (call.signal.aborted) budget.abort();
  else call.signal.addEventListener('abort', () => budget.abort(), { once: true });
  const signal = budget.signal;
  let busy: UpstreamError | null = null;
  let failed: { d: Deployment; err: UpstreamError } | null = null;
  let made = 0;
  try {
    while (made < policy.attempts) {
      const pick = choose(cands, r.health.now());
      if (pick === null) break;
      const { c, admission } = pick;
      const probe = admission === 'probe';
      if (c.tries > 0) {
        const wait = Math.max(backoff(c.tries, policy.maxRetryWaitMs, r.random), c.readyAt - performance.now());
        if (performance.now() + wait - started >= policy.budgetMs) {
          c.h.circuit.released(probe);
          break;
        }
        if (wait > 0) {
          try {
            await sleep(wait, undefined, { signal });
          } catch {
            c.h.circuit.released(probe);
            if (call.signal.aborted) throw new UpstreamError('aborted', 'client went away');
            break;
          }
        }
      }
      made++;
      c.tries++;
      c.h.requests++;
      call.onAttempt(c.d, made);
      const t0 = performance.now();
      try {
        const result = await send(c.d, signal);
        clearTimeout(timer);
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
        // The budget ran out during this attempt: a timeout before the first byte, and the end.
        const e = spent ? new UpstreamError('timeout', 'routing budget spent before the first byte') : thrown;
        const v = verdict(e);
        c.h.failures++;
        if (counts(e)) c.h.circuit.failed(r.health.now(), policy.circuit, probe);
        else c.h.circuit.released(probe);
        r.signals.upstreamAttempt(c.d.id, e.failure === 'status' ? `http_${e.status}` : e.failure);
        if (v === 'stop') {
          logFailed(r, call.traceId, c, made, e, { next: 'stop' });
          throw toGatewayError(e, c.d.provider.secrets);
        }
        if (e.isSaturated) busy = e;
        else failed = { d: c.d, err: e };
        const wait = v === 'retry' ? retryAfterMs(e.headers) : null;
        if (v === 'elsewhere' || (wait !== null && wait > policy.maxRetryWaitMs)) c.dropped = true;
        else if (wait !== null) c.readyAt = performance.now() + wait;
        logFailed(r, call.traceId, c, made, e, spent || made >= policy.attempts ? { next: 'give_up' } : nextStep(cands, c));
        if (spent) break;
      }
    }
  } finally {
    clearTimeout(timer);
  }
  if (failed !== null) throw toGatewayError(failed.err, failed.d.provider.secrets);
  if (busy !== null) throw toGatewayError(busy);
  if (made === 0) throw allOpen(cands, r.health.now());
  throw new GatewayError('upstream_failed');
}

/**
 * What routing plans after a failed attempt, as its log line says: `retry` the same deployment,
 * `failover` to another (named), `give_up` (attempts, budget or deployments used up: the client
 * gets the failure), or `stop` (the request's own fault, or an answer too large to send twice).
 * The plan ignores circuits, which the next attempt asks: its own line shows where it went.
 */
type NextStep = { next: 'retry' | 'give_up' | 'stop' } | { next: 'failover'; next_deployment: string };

function nextStep(cands: Candidate[], failed: Candidate): NextStep {
  let least = Infinity;
  for (const c of cands) if (!c.dropped && c.tries < least) least = c.tries;
  // choose()'s order: the first of the least tried.
  const to = cands.find((c) => !c.dropped && c.tries === least);
  if (to === undefined) return { next: 'give_up' };
  return to === failed ? { next: 'retry' } : { next: 'failover', next_deployment: to.d.id };
}

/** The line of a failed attempt: where, which attempt, how it failed, what comes next. Never the credential, nor the upstream's words. */
function logFailed(r: Routing, traceId: string, c: Candidate, attempt: number, e: UpstreamError, step: NextStep): void {
  r.log.warn({ traceId, deployment: c.d.id, attempt, failure: e.failure, status: e.status, ...step }, 'upstream attempt failed');
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
