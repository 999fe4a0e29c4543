import { GatewayError } from '../../errors.js';

export interface RenderedError {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Retry hints are whole seconds in `retry-after` (the SDK and proxies read that) and exact in `retry-after-ms`. */
const DEFAULT_RETRY_AFTER_MS = 1000;
const MAX_RETRY_AFTER_MS = 60_000;

/** The one place a GatewayError becomes bytes: SPEC §3 body and headers. */
export function renderError(err: GatewayError, traceId: string): RenderedError {
  const headers: Record<string, string> = {
    'content-type': 'application/json; charset=utf-8',
    'x-request-id': traceId,
  };
  if (err.headers !== undefined) Object.assign(headers, err.headers);
  if (!err.retryable) {
    headers['x-should-retry'] = 'false';
  } else if (err.status === 429 || err.status === 503) {
    const ms = Math.min(MAX_RETRY_AFTER_MS, Math.max(1, Math.ceil(err.retryAfterMs ?? DEFAULT_RETRY_AFTER_MS)));
    headers['retry-after'] = String(Math.max(1, Math.ceil(ms / 1000)));
    headers['retry-after-ms'] = String(ms);
  }
  return { status: err.status, headers, body: errorBody(err, traceId) };
}

/** The JSON body alone; also the payload of the SSE error event of a broken stream. */
export function errorBody(err: GatewayError, traceId: string): string {
  return JSON.stringify({
    error: { message: err.message, type: err.type, param: err.param, code: String(err.status), traceId },
  });
}
