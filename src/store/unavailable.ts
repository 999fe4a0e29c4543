import { GatewayError } from '../errors.js';

/** What a client is told when the store cannot take a write: 503, try again shortly. `message` is for an operator (start-up), never a client. */
export function storeUnavailable(cause: unknown, message?: string): GatewayError {
  return new GatewayError('store_unavailable', { cause, retryAfterMs: 1000, ...(message === undefined ? {} : { message }) });
}
