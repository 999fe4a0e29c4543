import { GatewayError } from '../errors.js';
import { toGatewayError, UpstreamError } from '../providers/upstream-error.js';
import type { Deployment, ModelRoute } from './catalog.js';

export interface Routed<T> {
  result: T;
  deployment: Deployment;
}

/**
 * Tries the model's deployments in priority order, weighted at random within a priority, until
 * one succeeds. A failure another deployment could avoid (refused, reset, timed out, 5xx, 429,
 * bad credentials) moves on; one that no deployment can fix (the upstream calls the request
 * invalid) or a client that went away stops at once.
 */
export async function withFailover<T>(
  route: ModelRoute,
  signal: AbortSignal,
  attempt: (d: Deployment) => Promise<T>,
  onFailure?: (d: Deployment, err: UpstreamError) => void,
): Promise<Routed<T>> {
  // What the client sees when every deployment failed: 503 if all were merely busy, else the last real failure.
  let busy: UpstreamError | null = null;
  let failed: { d: Deployment; err: UpstreamError } | null = null;
  for (const tier of route.tiers) {
    for (const d of tier.length === 1 ? tier : weightedOrder(tier)) {
      if (signal.aborted) throw new UpstreamError('aborted', 'client went away');
      try {
        return { result: await attempt(d), deployment: d };
      } catch (e) {
        if (!(e instanceof UpstreamError)) throw e;
        onFailure?.(d, e);
        if (e.failure === 'aborted' || signal.aborted) throw e;
        if (!e.retryable) throw toGatewayError(e, d.provider.secrets);
        if (e.isSaturated) busy = e;
        else failed = { d, err: e };
      }
    }
  }
  if (failed !== null) throw toGatewayError(failed.err, failed.d.provider.secrets);
  if (busy !== null) throw toGatewayError(busy);
  throw new GatewayError('upstream_failed');
}

/** A weighted shuffle: each deployment comes first in proportion to its weight. */
function weightedOrder(tier: Deployment[]): Deployment[] {
  const pool = tier.slice();
  const out: Deployment[] = [];
  while (pool.length > 0) {
    let total = 0;
    for (const d of pool) total += d.weight;
    let r = Math.random() * total;
    let i = 0;
    for (; i < pool.length - 1; i++) {
      r -= pool[i]!.weight;
      if (r < 0) break;
    }
    out.push(pool.splice(i, 1)[0]!);
  }
  return out;
}
