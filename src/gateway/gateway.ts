import type { ServerResponse } from 'node:http';
import type { FastifyBaseLogger } from 'fastify';
import { isGatewayError, type GatewayError } from '../errors.js';
import type { KeyCache } from '../auth/authenticate.js';
import type { Limiter } from '../limits/types.js';
import type { Catalog } from '../routing/catalog.js';
import type { Store } from '../store/types.js';

/** Everything the request path needs, built once at start-up. */
export interface Gateway {
  store: Store;
  catalog: Catalog;
  keys: KeyCache;
  limiter: Limiter;
  log: FastifyBaseLogger;
  /** Settlements and usage writes that finish after the response; awaited on shutdown. */
  background: Set<Promise<unknown>>;
  /** Open streams, each with a function that ends it with an error event: the shutdown deadline calls them. */
  streams: Set<(err: GatewayError) => void>;
}

/** One client request as the request path sees it; the HTTP layer fills it in. */
export interface Exchange {
  traceId: string;
  /** performance.now() when the request arrived. */
  started: number;
  authorization: string | undefined;
  rawBody: string | undefined;
  /** Aborted when the client goes away, or by `abort`. */
  signal: AbortSignal;
  /** Ends the upstream side of this request (the shutdown deadline uses it). */
  abort: () => void;
  /** Streams are written here directly, chunk by chunk. */
  res: ServerResponse;
  /** Headers every response to this request carries, whatever its status (the rate-limit headers). */
  headers: Record<string, string>;
}

/**
 * A response for the HTTP layer to send, or null when the request path already wrote it (a
 * stream) or nobody is listening. A body in pieces is written piece by piece (a relayed
 * embeddings answer, so that it is never joined into one more copy).
 */
export type Answer = { status: number; body: string | readonly Buffer[] } | null;

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
