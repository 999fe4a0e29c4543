import type { IncomingHttpHeaders } from 'node:http';
import type { GatewayError } from '../errors.js';
import type { RenderedError } from '../gateway/endpoint.js';
import { renderError as renderAnthropicError } from '../protocols/anthropic-messages/render-error.js';
import { renderError } from '../protocols/openai-chat/render-error.js';

// Errors rendered outside the pipeline (overload shedding, 404/405, bodies too large or
// unreadable, authentication on /v1/models) in the shape of the API the client speaks: Anthropic's
// on its routes, and on /v1/models when the request says it is an Anthropic client
// (`anthropic-version`, which Anthropic's SDKs always send); SPEC §3's everywhere else.

export type ErrorRenderer = (err: GatewayError, traceId: string) => RenderedError;

export function rendererFor(url: string, headers: IncomingHttpHeaders): ErrorRenderer {
  const path = url.split('?', 1)[0]!;
  if (path === '/v1/messages' || path.startsWith('/v1/messages/')) return renderAnthropicError;
  if ((path === '/v1/models' || path.startsWith('/v1/models/')) && headers['anthropic-version'] !== undefined) return renderAnthropicError;
  return renderError;
}
