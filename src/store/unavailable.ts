import { GatewayError } from '../errors.js';

/** What a client is told when the store cannot take a write: 503, try again shortly. */
export function storeUnavailable(cause: unknown): GatewayError {
  return new GatewayError('store_unavailable', { cause, retryAfterMs: 1000 });
}
