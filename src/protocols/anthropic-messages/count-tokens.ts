import { authenticate } from '../../auth/authenticate.js';
import { authorize } from '../../auth/authorize.js';
import { GatewayError, isGatewayError } from '../../errors.js';
import type { RenderedError, RequestHeaders } from '../../gateway/endpoint.js';
import type { Gateway } from '../../gateway/gateway.js';
import { resolveModel } from '../../gateway/resolve-model.js';
import { anthropicCredential, parseMessagesBody, readMessages } from './endpoint.js';
import { renderError } from './render-error.js';

// POST /v1/messages/count_tokens (SPEC §6): free. It is not a pipeline request: no hold, no
// usage record, nothing counted by the limits; the same key, model and body checks as
// /v1/messages, and the gateway's own prompt estimate (the number its holds use).

export interface CountRequest {
  traceId: string;
  headers: RequestHeaders;
  rawBody: string | undefined;
  /** What an error becomes for this client (repeated authentication failures turn into 429). */
  judge: (err: GatewayError) => GatewayError;
}

export async function countTokens(gw: Gateway, req: CountRequest): Promise<RenderedError> {
  try {
    const key = await authenticate(gw.keys, anthropicCredential(req.headers));
    const { model, body } = parseMessagesBody(req.rawBody);
    authorize(key, resolveModel(gw.catalog, model).id);
    const input = readMessages(body, req.headers, true);
    return {
      status: 200,
      headers: { 'content-type': 'application/json; charset=utf-8', 'x-request-id': req.traceId, 'request-id': req.traceId },
      body: JSON.stringify({ input_tokens: input.promptTokens }),
    };
  } catch (e) {
    if (!isGatewayError(e)) gw.log.error({ err: e, traceId: req.traceId }, 'count_tokens failed');
    return renderError(req.judge(isGatewayError(e) ? e : new GatewayError('internal')), req.traceId);
  }
}
