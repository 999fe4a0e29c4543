import type { GatewayError } from '../../errors.js';
import type { RenderedError } from '../../gateway/endpoint.js';
import { renderError as renderOpenAIError } from '../openai-chat/render-error.js';

// SPEC §6: the statuses of §3 in Anthropic's error shape, so that Anthropic's SDKs (and Claude
// Code) raise the error class they know for each. The headers are §3's (retry-after,
// x-should-retry: Anthropic's SDKs read both), with `request-id`, where Anthropic's SDKs look
// for the id, beside `x-request-id`.

/** Anthropic's error type for each status the gateway answers with. */
export function anthropicErrorType(status: number): string {
  switch (status) {
    case 401:
      return 'authentication_error';
    case 402:
      return 'billing_error';
    case 403:
      return 'permission_error';
    case 404:
      return 'not_found_error';
    case 413:
      return 'request_too_large';
    case 429:
      return 'rate_limit_error';
    case 503:
      return 'overloaded_error';
    default:
      return status >= 500 ? 'api_error' : 'invalid_request_error';
  }
}

export function renderError(err: GatewayError, traceId: string): RenderedError {
  const r = renderOpenAIError(err, traceId);
  return { status: r.status, headers: { ...r.headers, 'request-id': traceId }, body: errorBody(err, traceId) };
}

/** The body alone; also the data of a stream's `error` event. */
export function errorBody(err: GatewayError, traceId: string): string {
  return JSON.stringify({ type: 'error', error: { type: anthropicErrorType(err.status), message: err.message }, request_id: traceId });
}
