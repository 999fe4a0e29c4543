import type { Endpoint, EndpointResult, RequestHeaders } from '../../gateway/endpoint.js';
import { anthropicSession } from '../../gateway/session.js';
import { parseJsonBody } from '../../gateway/validate-chat.js';
import { badRequest } from '../../errors.js';
import type { ChatRequest, ChatResponse, JsonObject } from '../../types/chat.js';
import { answerOutput } from '../../gateway/output.js';
import { encodeMessage } from './encode.js';
import { estimateMessagesTokens } from './estimate.js';
import { forwardedHeaders, parseMessagesRequest } from './parse.js';
import { renderError } from './render-error.js';
import { MessagesStreamEncoder } from './stream.js';
import { validateMessages, type MessagesParams } from './validate.js';

export interface MessagesInput {
  body: JsonObject;
  params: MessagesParams;
  request: ChatRequest;
  promptTokens: number;
}

/**
 * Anthropic's SDKs send the key as `x-api-key` (older ones, curl examples) or as a Bearer token
 * (current ones, Claude Code with ANTHROPIC_AUTH_TOKEN); authentication reads a Bearer header.
 */
export function anthropicCredential(h: RequestHeaders): string | undefined {
  const key = h['x-api-key'];
  if (typeof key === 'string' && key !== '') return `Bearer ${key}`;
  const auth = h['authorization'];
  return typeof auth === 'string' ? auth : undefined;
}

/** The body as JSON and its model: 400 in Anthropic's words when it is neither. */
export function parseMessagesBody(raw: string | undefined): { model: string; body: JsonObject } {
  const body = parseJsonBody(raw);
  const model = body['model'];
  if (model === undefined || model === null) throw badRequest('model: Field required', 'model');
  if (typeof model !== 'string' || model === '') throw badRequest('model: Input should be a non-empty string', 'model');
  return { model, body };
}

/** The request in the gateway's terms, its source kept for an Anthropic upstream. */
export function readMessages(body: JsonObject, h: RequestHeaders, countOnly = false): MessagesInput {
  const params = validateMessages(body, countOnly);
  const request = parseMessagesRequest(body, forwardedHeaders(h));
  return { body, params, request, promptTokens: estimateMessagesTokens(request, body) };
}

/** POST /v1/messages. */
export const anthropicMessages: Endpoint<MessagesInput> = {
  name: 'messages',
  credential: anthropicCredential,
  parse: parseMessagesBody,
  validate: (body, _model, h) => readMessages(body, h),
  stream: (p) => p.params.stream,
  session: (p, h) => anthropicSession(p.body, h),
  estimate: (p) => ({ promptTokens: p.promptTokens, maxOutput: p.params.maxTokens, choices: 1 }),
  async call(p, d, maxTokens, signal, trace, firstByte) {
    return result(await d.provider.chat({ request: p.request, upstreamModel: d.upstreamModel, maxTokens, signal, trace, firstByte }));
  },
  open: (p, d, maxTokens, signal, trace) => d.provider.chatStream({ request: p.request, upstreamModel: d.upstreamModel, maxTokens, signal, trace }),
  encoder: (p, model) => new MessagesStreamEncoder(model, p.promptTokens),
  renderError,
  traceHeader: 'request-id',
};

function result(r: ChatResponse): EndpointResult {
  return {
    usage: r.usage,
    delivered: () => answerOutput(r),
    encode: (model, b) => JSON.stringify(encodeMessage(r, model, b.usage)),
  };
}
