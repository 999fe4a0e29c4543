import { parseUsd } from '../billing/money.js';
import type { Config, ModelConfig, RoutingConfig } from '../config/schema.js';
import type { Provider } from '../providers/contract.js';

export interface Deployment {
  provider: Provider;
  upstreamModel: string;
  weight: number;
  /** `<provider>/<upstream model>`: names it in headers, logs and records, and keys its circuit and stats. */
  id: string;
}

/** How a model's requests are retried and spread; the config's `routing`, with the model's own overrides. */
export interface RoutingPolicy {
  attempts: number;
  maxRetryWaitMs: number;
  budgetMs: number;
  circuit: { failures: number; windowMs: number; cooldownMs: number };
  affinityTtlMs: number;
}

export interface Price {
  /** Units (nano-dollars) per 1M tokens. */
  input: bigint;
  output: bigint;
  cachedInput: bigint;
  /** Tokens written to the provider's prompt cache. */
  cacheWrite: bigint;
}

export interface ModelRoute {
  id: string;
  ownedBy: string;
  created: number;
  price: Price;
  contextWindow: number | null;
  maxOutputTokens: number;
  /** Deployments grouped by priority, lowest number first; weighted within a group. */
  tiers: Deployment[][];
  policy: RoutingPolicy;
  /** The `GET /v1/models` entry, serialised once. */
  listing: { id: string; object: 'model'; created: number; owned_by: string };
}

const FREE: Price = { input: 0n, output: 0n, cachedInput: 0n, cacheWrite: 0n };

/** Per-model routes, built once when the config loads; requests only look them up. */
export class Catalog {
  private readonly routes = new Map<string, ModelRoute>();

  constructor(config: Config, providers: Map<string, Provider>, created = Math.floor(Date.now() / 1000)) {
    for (const [id, m] of Object.entries(config.models)) {
      const byPriority = new Map<number, Deployment[]>();
      for (const d of m.deployments) {
        const list = byPriority.get(d.priority) ?? [];
        list.push({ provider: providers.get(d.provider)!, upstreamModel: d.model, weight: d.weight, id: `${d.provider}/${d.model}` });
        byPriority.set(d.priority, list);
      }
      const price: Price =
        m.free || m.pricing === undefined
          ? FREE
          : {
              input: parseUsd(m.pricing.input)!,
              output: parseUsd(m.pricing.output)!,
              cachedInput: m.pricing.cached_input === undefined ? parseUsd(m.pricing.input)! : parseUsd(m.pricing.cached_input)!,
              cacheWrite: m.pricing.cache_write === undefined ? parseUsd(m.pricing.input)! : parseUsd(m.pricing.cache_write)!,
            };
      const when = m.created ?? created;
      this.routes.set(id, {
        id,
        ownedBy: m.owned_by,
        created: when,
        price,
        contextWindow: m.context_window ?? null,
        maxOutputTokens: m.max_output_tokens,
        policy: policyOf(config.routing, m.routing),
        tiers: [...byPriority.entries()].sort((a, b) => a[0] - b[0]).map(([, list]) => list),
        listing: { id, object: 'model', created: when, owned_by: m.owned_by },
      });
    }
  }

  get(id: string): ModelRoute | undefined {
    return this.routes.get(id);
  }

  all(): IterableIterator<ModelRoute> {
    return this.routes.values();
  }
}

function policyOf(base: RoutingConfig, own: ModelConfig['routing']): RoutingPolicy {
  const c = own?.circuit;
  return {
    attempts: own?.attempts ?? base.attempts,
    maxRetryWaitMs: own?.max_retry_wait_ms ?? base.max_retry_wait_ms,
    budgetMs: own?.budget_ms ?? base.budget_ms,
    circuit: {
      failures: c?.failures ?? base.circuit.failures,
      windowMs: c?.window_ms ?? base.circuit.window_ms,
      cooldownMs: c?.cooldown_ms ?? base.circuit.cooldown_ms,
    },
    affinityTtlMs: own?.affinity_ttl_ms ?? base.affinity_ttl_ms,
  };
}
