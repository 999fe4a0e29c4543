import { Circuit, type CircuitState } from './breaker.js';
import type { Catalog, Deployment, RoutingPolicy } from './catalog.js';

const LATENCY_SAMPLES = 128;

/** One deployment's circuit and counters, kept by this process only. */
export class DeploymentHealth {
  readonly circuit = new Circuit();
  requests = 0;
  failures = 0;
  /** The last LATENCY_SAMPLES successful attempts' times to answer (first byte for streams), a ring. */
  private readonly latencies = new Float64Array(LATENCY_SAMPLES);
  private samples = 0;

  constructor(
    readonly provider: string,
    readonly model: string,
    /** The circuit settings of the first model that routes to it: what the admin view's `recent_failures` window is. */
    readonly settings: RoutingPolicy['circuit'],
  ) {}

  latency(ms: number): void {
    this.latencies[this.samples++ % LATENCY_SAMPLES] = ms;
  }

  p50(): number | null {
    const n = Math.min(this.samples, LATENCY_SAMPLES);
    if (n === 0) return null;
    const sorted = Array.from(this.latencies.subarray(0, n)).sort((a, b) => a - b);
    return Math.round(sorted[Math.floor((n - 1) / 2)]!);
  }
}

export interface DeploymentView {
  provider: string;
  model: string;
  state: CircuitState;
  recent_failures: number;
  requests: number;
  failures: number;
  latency_ms_p50: number | null;
  /** For an open circuit: when a request may probe it again. */
  retry_in_ms: number;
}

/**
 * The health of every deployment, one entry per provider and upstream model however many
 * models route to it, built once at start-up. `now` is injected so tests need not wait.
 */
export class Health {
  private readonly byId = new Map<string, DeploymentHealth>();

  constructor(
    catalog: Catalog,
    readonly now: () => number = Date.now,
  ) {
    for (const route of catalog.all()) {
      for (const tier of route.tiers) for (const d of tier) this.add(d, route.policy);
    }
  }

  of(d: Deployment): DeploymentHealth {
    return this.byId.get(d.id) ?? this.add(d, null);
  }

  view(): DeploymentView[] {
    const now = this.now();
    return [...this.byId.values()].map((h) => ({
      provider: h.provider,
      model: h.model,
      state: h.circuit.state(now),
      recent_failures: h.circuit.recentFailures(now, h.settings.windowMs),
      requests: h.requests,
      failures: h.failures,
      latency_ms_p50: h.p50(),
      retry_in_ms: h.circuit.reopensIn(now),
    }));
  }

  private add(d: Deployment, policy: RoutingPolicy | null): DeploymentHealth {
    let h = this.byId.get(d.id);
    if (h === undefined) {
      h = new DeploymentHealth(d.provider.name, d.upstreamModel, policy?.circuit ?? { failures: 5, windowMs: 30_000, cooldownMs: 30_000 });
      this.byId.set(d.id, h);
    }
    return h;
  }
}
