import { AggregatorRegistry, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { usdNumber } from '../billing/money.js';
import type { Outcome, OutcomeSink } from '../gateway/outcome.js';
import type { Health } from '../routing/health.js';
import type { RefusedLimit, Signals } from '../types/signals.js';
import { LeanCounter, LeanHistogram } from './series.js';

// SPEC §8's series. Every label value is bounded: a catalogue model id or `unknown`, a route
// name, a status, an error type, a provider name. Never a key id, key prefix or trace id.

const LATENCY_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
const OVERHEAD_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

const CIRCUIT = { closed: 0, half_open: 1, open: 2 } as const;

/** The series of SPEC §8: the outcome sink below feeds the per-request ones, the request path's signals the rest. */
export class Metrics implements Signals {
  readonly registry = new Registry();
  readonly requests = new LeanCounter('token360_requests_total', 'Requests by endpoint, model, status and error type', ['route', 'model', 'status', 'error_type'], this.registry);
  readonly tokens = new LeanCounter('token360_tokens_total', 'Tokens charged, by model and type', ['model', 'type'], this.registry);
  readonly cost = new LeanCounter('token360_cost_usd_total', 'USD charged, by model', ['model'], this.registry);
  readonly overhead = new LeanHistogram('token360_gateway_overhead_seconds', 'Time of a request not spent waiting on the upstream', ['route'], OVERHEAD_BUCKETS, this.registry);
  readonly duration = new LeanHistogram('gen_ai_server_request_duration_seconds', 'Request duration (OpenTelemetry GenAI)', ['gen_ai_request_model', 'gen_ai_provider_name'], LATENCY_BUCKETS, this.registry);
  readonly ttft = new LeanHistogram('gen_ai_server_time_to_first_token_seconds', 'Time to the first token of streams (OpenTelemetry GenAI)', ['gen_ai_request_model', 'gen_ai_provider_name'], LATENCY_BUCKETS, this.registry);
  readonly refusals = new LeanCounter('token360_limit_refusals_total', 'Requests refused for a limit', ['limit'], this.registry);
  readonly attempts = new LeanCounter('token360_upstream_attempts_total', 'Upstream requests by deployment and outcome (ok or the failure kind)', ['deployment', 'outcome'], this.registry);
  /** Read by the gauges below at each scrape: plain numbers on the request path. */
  inFlight = 0;
  holds = 0;
  readonly circuits: Gauge<'deployment'>;

  /** `health`: this process's circuits, read at each scrape (0 closed, 1 half-open, 2 open). */
  constructor(health: Health) {
    collectDefaultMetrics({ register: this.registry });
    const self = this;
    new Gauge({ name: 'token360_requests_in_flight', help: 'Authenticated requests not yet ended', registers: [this.registry], collect() { this.set(self.inFlight); } });
    new Gauge({ name: 'token360_holds_outstanding', help: 'Holds placed by this process and not yet given back by their request', registers: [this.registry], collect() { this.set(self.holds); } });
    this.circuits = new Gauge({
      name: 'token360_circuit_state',
      help: 'Circuit of each deployment: 0 closed, 1 half-open, 2 open',
      labelNames: ['deployment'] as const,
      registers: [this.registry],
      // Across workers (each keeps its own circuits): the worst state any of them sees.
      aggregator: 'max',
      collect() {
        for (const d of health.view()) this.set({ deployment: `${d.provider}/${d.model}` }, CIRCUIT[d.state]);
      },
    });
  }

  /** A worker of `serve --workers`: the primary's AggregatorRegistry collects this registry over IPC. */
  shareWithPrimary(): void {
    AggregatorRegistry.setRegistries([this.registry]);
    // Constructing one is what makes prom-client answer the primary's requests in this process.
    void new AggregatorRegistry();
  }

  requestStarted(): void {
    this.inFlight++;
  }

  holdPlaced(): void {
    this.holds++;
  }

  limitRefused(limit: RefusedLimit): void {
    this.refusals.inc([limit]);
  }

  upstreamAttempt(deployment: string, outcome: string): void {
    this.attempts.inc([deployment, outcome]);
  }
}

/** The metrics of each request's outcome; it never waits. */
export function metricsSink(m: Metrics): OutcomeSink {
  return (o) => {
    record(m, o);
    return null;
  };
}

function record(m: Metrics, o: Outcome): void {
  const model = o.modelId ?? 'unknown';
  m.inFlight--;
  if (o.hold !== null) m.holds--;
  m.requests.inc([o.route, model, String(o.status), o.errorType ?? '']);
  const u = o.usage;
  const input = u.promptTokens - u.cachedTokens - u.cacheWriteTokens;
  tokens(m, model, 'input', input);
  tokens(m, model, 'output', u.completionTokens);
  tokens(m, model, 'cached_input', u.cachedTokens);
  tokens(m, model, 'cache_write', u.cacheWriteTokens);
  tokens(m, model, 'reasoning', u.reasoningTokens);
  if (o.cost > 0n) m.cost.inc([model], usdNumber(o.cost));
  // A stream's time after its first frame is the upstream's: its overhead is up to that frame.
  const own = o.stream && o.ttftMs !== null ? o.ttftMs : o.latencyMs;
  if (o.upstreamWaitMs !== null) m.overhead.observe([o.route], Math.max(0, own - o.upstreamWaitMs) / 1000);
  if (o.provider !== null) {
    const labels = [model, o.provider];
    m.duration.observe(labels, o.latencyMs / 1000);
    if (o.ttftMs !== null) m.ttft.observe(labels, o.ttftMs / 1000);
  }
}

function tokens(m: Metrics, model: string, type: string, n: number): void {
  if (Number.isFinite(n) && n > 0) m.tokens.inc([model, type], n);
}
