// One error type for the whole gateway. Every refusal or failure a client can see is a
// GatewayError with a code from this registry; one renderer (server/render-error.ts) turns it
// into the SPEC §3 body and headers. docs/errors.md lists the same codes, and a test checks that
// the registry, the renderer and the docs agree.

import type { RefusedLimit } from './types/signals.js';

export type ErrorType =
  | 'invalid_request_error'
  | 'invalid_api_key'
  | 'insufficient_balance'
  | 'api_key_frozen'
  | 'model_access_denied'
  | 'model_not_found'
  | 'not_found_error'
  | 'rate_limit_error'
  | 'api_error';

interface ErrorSpec {
  readonly status: number;
  readonly type: ErrorType;
  /** false: no retry can fix it; the response says so with `x-should-retry: false`. */
  readonly retryable: boolean;
  /** Default client-facing message; a thrower may give a more precise one. */
  readonly message: string;
}

export const ERROR_REGISTRY = {
  invalid_request: { status: 400, type: 'invalid_request_error', retryable: false, message: 'The request is invalid' },
  upstream_invalid_request: { status: 400, type: 'invalid_request_error', retryable: false, message: 'The model service rejected the request as invalid' },
  invalid_api_key: { status: 401, type: 'invalid_api_key', retryable: false, message: 'Invalid API key or token provided' },
  insufficient_balance: { status: 402, type: 'insufficient_balance', retryable: false, message: 'Insufficient account balance' },
  api_key_frozen: { status: 403, type: 'api_key_frozen', retryable: false, message: 'Your API key has been frozen' },
  model_access_denied: { status: 403, type: 'model_access_denied', retryable: false, message: "You don't have permission to access this model" },
  model_not_found: { status: 404, type: 'model_not_found', retryable: false, message: 'The requested model does not exist' },
  not_found: { status: 404, type: 'not_found_error', retryable: false, message: 'The requested resource does not exist' },
  method_not_allowed: { status: 405, type: 'invalid_request_error', retryable: false, message: 'Method not allowed' },
  request_timeout: { status: 408, type: 'invalid_request_error', retryable: true, message: 'The request was not received in time' },
  payload_too_large: { status: 413, type: 'invalid_request_error', retryable: false, message: 'Request body is too large' },
  headers_too_large: { status: 431, type: 'invalid_request_error', retryable: false, message: 'Request headers are too large' },
  rate_limited: { status: 429, type: 'rate_limit_error', retryable: true, message: 'Rate limit exceeded. Please slow down your requests' },
  too_many_auth_failures: { status: 429, type: 'rate_limit_error', retryable: true, message: 'Too many failed authentications from this address. Please retry later' },
  quota_exhausted: { status: 429, type: 'rate_limit_error', retryable: false, message: 'Spend quota exceeded' },
  internal: { status: 500, type: 'api_error', retryable: true, message: 'An internal error occurred' },
  upstream_failed: { status: 502, type: 'api_error', retryable: true, message: 'The model service is unavailable' },
  overloaded: { status: 503, type: 'api_error', retryable: true, message: 'The gateway is overloaded. Please retry shortly' },
  upstream_saturated: { status: 503, type: 'api_error', retryable: true, message: 'The model service is busy. Please retry shortly' },
  shutting_down: { status: 503, type: 'api_error', retryable: true, message: 'The gateway is shutting down' },
  store_unavailable: { status: 503, type: 'api_error', retryable: true, message: 'The gateway cannot write to its database right now. Please retry shortly' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_REGISTRY;

export interface GatewayErrorOptions {
  message?: string;
  /** The request field at fault, or null. */
  param?: string | null;
  /** For 429 and 503: when the client may try again. */
  retryAfterMs?: number;
  /** Extra response headers (e.g. `allow` on a 405). */
  headers?: Record<string, string>;
  /** A refusal for a limit: which one (the metrics count refusals by it). */
  limit?: RefusedLimit;
  cause?: unknown;
}

export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly type: ErrorType;
  readonly retryable: boolean;
  readonly param: string | null;
  readonly retryAfterMs: number | undefined;
  readonly headers: Record<string, string> | undefined;
  readonly limit: RefusedLimit | undefined;

  constructor(code: ErrorCode, opts: GatewayErrorOptions = {}) {
    const spec: ErrorSpec = ERROR_REGISTRY[code];
    super(opts.message ?? spec.message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'GatewayError';
    this.code = code;
    this.status = spec.status;
    this.type = spec.type;
    this.retryable = spec.retryable;
    this.param = opts.param ?? null;
    this.retryAfterMs = opts.retryAfterMs;
    this.headers = opts.headers;
    this.limit = opts.limit;
  }
}

export function isGatewayError(e: unknown): e is GatewayError {
  return e instanceof GatewayError;
}

export function badRequest(message: string, param: string | null = null): GatewayError {
  return new GatewayError('invalid_request', { message, param });
}
