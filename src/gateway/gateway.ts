import type { FastifyBaseLogger } from 'fastify';
import { isGatewayError, type GatewayError } from '../errors.js';
import type { KeyCache } from '../auth/authenticate.js';
import type { Limiter } from '../limits/types.js';
import type { Catalog } from '../routing/catalog.js';
import type { Routing } from '../routing/retry.js';
import type { Store } from '../store/types.js';
import type { Signals } from '../types/signals.js';
import type { OutcomeSink } from './outcome.js';

/** Everything the request pipeline needs, built once at start-up. */
export interface Gateway {
  store: Store;
  catalog: Catalog;
  /** Circuits, stats and session affinity of the deployments, kept by this process. */
  routing: Routing;
  keys: KeyCache;
  limiter: Limiter;
  log: FastifyBaseLogger;
  /** Where the steps report events as they happen (the metrics count them). */
  signals: Signals;
  /** Where each request's outcome goes (billing, limits, …), in order. */
  sinks: OutcomeSink[];
  /** Settlements and usage writes that finish after the response; awaited on shutdown. */
  background: Set<Promise<unknown>>;
  /** Open streams, each with a function that ends it with an error event: the shutdown deadline calls them. */
  streams: Set<(err: GatewayError) => void>;
}

/** Runs work without losing track of it (shutdown waits for it); the promise returned never rejects. */
export function inBackground(gw: Gateway, work: Promise<unknown>): Promise<unknown> {
  const p = work.catch((e: unknown) => logFailure(gw, e)).finally(() => gw.background.delete(p));
  gw.background.add(p);
  return p;
}

/** A write the store keeps for later (store_unavailable) is the store's to report, once for all of them. */
function logFailure(gw: Gateway, e: unknown): void {
  if (!isGatewayError(e) || e.code !== 'store_unavailable') gw.log.error({ err: e }, 'background write failed');
}
