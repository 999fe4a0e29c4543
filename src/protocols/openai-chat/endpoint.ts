import type { Bill } from '../../billing/bill.js';
import { estimatePromptTokens } from '../../billing/estimate.js';
import type { Endpoint, EndpointResult, RequestHeaders, StreamEncoder } from '../../gateway/endpoint.js';
import { openAISession } from '../../gateway/session.js';
import { answerOutput } from '../../gateway/output.js';
import { billedUsage } from '../../gateway/present.js';
import { parseJsonBody, requireModel, validateChat, type ChatParams } from '../../gateway/validate-chat.js';
import type { GatewayError } from '../../errors.js';
import type { ChatRequest, ChatResponse, JsonObject, StreamEvent } from '../../types/chat.js';
import { ChunkEncoder, encodeChatResponse } from './encode.js';
import { parseChatRequest } from './parse.js';
import { errorBody, renderError } from './render-error.js';

interface ChatInput {
  body: JsonObject;
  params: ChatParams;
  request: ChatRequest;
}

/** `Authorization: Bearer <key>`, as the OpenAI SDKs send it. */
export function bearer(h: RequestHeaders): string | undefined {
  const v = h['authorization'];
  return typeof v === 'string' ? v : undefined;
}

/** POST /v1/chat/completions. */
export const openAIChat: Endpoint<ChatInput> = {
  name: 'chat',
  credential: bearer,
  parse(raw) {
    const body = parseJsonBody(raw);
    return { model: requireModel(body), body };
  },
  validate(body, model) {
    const params = validateChat(body, model);
    const request = parseChatRequest(body);
    request.source = { protocol: 'openai-chat', body };
    return { body, params, request };
  },
  stream: (p) => p.params.stream,
  session: (p, h) => openAISession(p.body, h),
  estimate: (p) => ({ promptTokens: estimatePromptTokens(p.body), maxOutput: p.params.maxTokens, choices: p.params.n }),
  async call(p, d, maxTokens, signal, trace, firstByte) {
    const r = await d.provider.chat({ request: p.request, upstreamModel: d.upstreamModel, maxTokens, signal, trace, firstByte });
    return result(r);
  },
  open: (p, d, maxTokens, signal, trace) => d.provider.chatStream({ request: p.request, upstreamModel: d.upstreamModel, maxTokens, signal, trace }),
  encoder: (p, model) => new ChatStreamEncoder(model, p.params.includeUsage),
  renderError,
};

function result(r: ChatResponse): EndpointResult {
  return {
    usage: r.usage,
    delivered: () => answerOutput(r),
    encode: (model, b) => JSON.stringify(encodeChatResponse(r, model, billedUsage(b))),
  };
}


class ChatStreamEncoder implements StreamEncoder {
  private readonly chunks: ChunkEncoder;

  constructor(
    model: string,
    private readonly includeUsage: boolean,
  ) {
    this.chunks = new ChunkEncoder(model, includeUsage);
  }

  event(ev: StreamEvent): string | null {
    const c = this.chunks.encode(ev);
    return c === null ? null : `data: ${JSON.stringify(c)}\n\n`;
  }

  capped(open: readonly number[]): string {
    return `data: ${JSON.stringify(this.chunks.capped(open))}\n\n`;
  }

  end(b: Bill): string {
    return (this.includeUsage ? `data: ${JSON.stringify(this.chunks.usage(billedUsage(b)))}\n\n` : '') + 'data: [DONE]\n\n';
  }

  error(err: GatewayError, traceId: string): string {
    return `data: ${errorBody(err, traceId)}\n\n`;
  }
}
