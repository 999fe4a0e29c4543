import type { Bill } from '../../billing/bill.js';
import { estimateChatTokens } from '../../billing/estimate.js';
import { badRequest } from '../../errors.js';
import type { Endpoint, EndpointResult, StreamEncoder } from '../../gateway/endpoint.js';
import { answerOutput } from '../../gateway/output.js';
import { openAISession } from '../../gateway/session.js';
import { parseJsonBody, requireModel } from '../../gateway/validate-chat.js';
import type { ChatStream } from '../../providers/contract.js';
import type { Deployment, ModelRoute } from '../../routing/catalog.js';
import type { Store } from '../../store/types.js';
import type { ChatRequest, ChatResponse, JsonObject, StreamEvent } from '../../types/chat.js';
import { bearer } from '../openai-chat/endpoint.js';
import { renderError } from '../openai-chat/render-error.js';
import { echoOf, encodeResponse, responsesUsage } from './encode.js';
import { NativeResponsesEncoder, presentNative } from './native.js';
import { needsNative, parseResponsesRequest, validateResponses, type ResponsesParams } from './parse.js';
import { ResponsesStreamEncoder } from './stream.js';
import { usdNumber } from '../../billing/money.js';

interface ResponsesInput {
  body: JsonObject;
  params: ResponsesParams;
  request: ChatRequest;
  /** The field only a native deployment can serve (parse.ts needsNative), or null. */
  nativeOnly: string | null;
  /** The key's account: a response it makes is its own, and it continues only its own. */
  accountId: string;
}

/** Where the gateway remembers which deployment created a response (any replica reads it). */
export type ResponseOrigins = Pick<Store, 'rememberResponse' | 'findResponse'>;

/** OpenAI keeps a stored response for 30 days; a continuation must find its deployment as long. */
const ORIGIN_TTL_MS = 30 * 24 * 3600 * 1000;

const PROTOCOL = 'openai-responses';
const isNative = (d: Deployment): boolean => d.provider.nativeProtocols?.includes(PROTOCOL) === true;

/** POST /v1/responses: native deployments get the body as it came, every other one a translation through the typed form. */
export function openAIResponses(origins: ResponseOrigins): Endpoint<ResponsesInput> {
  const remember = async (id: unknown, d: Deployment, accountId: string): Promise<void> => {
    if (typeof id !== 'string' || id === '') return;
    // The answer matters more than a later continuation's routing: a write the store cannot make
    // now is dropped, and a continuation of this response then goes to any native deployment.
    await origins.rememberResponse(id, { provider: d.provider.name, upstreamModel: d.upstreamModel, accountId }, Date.now() + ORIGIN_TTL_MS).catch(() => undefined);
  };

  return {
    name: 'responses',
    credential: bearer,
    parse(raw) {
      const body = parseJsonBody(raw);
      return { model: requireModel(body), body };
    },
    validate(body, _model, _headers, key) {
      const params = validateResponses(body);
      const request = parseResponsesRequest(body);
      request.source = { protocol: PROTOCOL, body };
      return { body, params, request, nativeOnly: needsNative(body), accountId: key.accountId };
    },
    stream: (p) => p.params.stream,
    session: (p, h) => openAISession(p.body, h),
    estimate: (p, route) => ({ promptTokens: promptEstimate(p.request, route), maxOutput: p.params.maxOutput, choices: 1 }),

    /**
     * A request that only a native deployment can serve goes only to those; one continuing a
     * response goes only to the deployment that created it, when the gateway knows it.
     */
    async narrow(p, route) {
      if (p.nativeOnly === null) return route;
      const id = p.params.previousResponseId;
      if (id !== null) {
        const origin = await origins.findResponse(id, Date.now());
        // Another account's response is not continued: as at OpenAI for an id it does not know.
        // (An entry from before accounts were noted has none, and keeps routing as it did.)
        if (origin !== null && origin.accountId !== null && origin.accountId !== p.accountId) {
          throw badRequest(`Previous response with id '${id}' not found.`, 'previous_response_id');
        }
        if (origin !== null) {
          for (const tier of route.tiers) {
            for (const d of tier) if (d.provider.name === origin.provider && d.upstreamModel === origin.upstreamModel) return { ...route, tiers: [[d]] };
          }
          throw badRequest(`Invalid 'previous_response_id': that response was made by a deployment model '${route.id}' does not have`, 'previous_response_id');
        }
      }
      const tiers = route.tiers.map((t) => t.filter(isNative)).filter((t) => t.length > 0);
      if (tiers.length === 0) throw badRequest(unsupported(p.nativeOnly, route.id), p.nativeOnly);
      return { ...route, tiers };
    },

    async call(p, d, maxTokens, signal, trace, firstByte) {
      check(p, d);
      const r = await d.provider.chat({ request: p.request, upstreamModel: d.upstreamModel, maxTokens, signal, trace, firstByte });
      const native = r.native?.protocol === PROTOCOL ? r.native.body : null;
      if (native !== null && p.params.store) await remember(native['id'], d, p.accountId);
      return result(r, native, p.body);
    },

    async open(p, d, maxTokens, signal, trace) {
      check(p, d);
      const stream = await d.provider.chatStream({ request: p.request, upstreamModel: d.upstreamModel, maxTokens, signal, trace });
      return p.params.store && isNative(d) ? remembering(stream, (id) => remember(id, d, p.accountId)) : stream;
    },

    encoder: (p, model) => new ResponsesEncoder(model, echoOf(p.body)),
    renderError,
  };
}

function unsupported(field: string, model: string): string {
  const what = field === 'previous_response_id' || field.endsWith('.id') ? 'needs state the gateway does not keep' : 'has no translation to chat completions';
  return `Invalid '${field}': it ${what}, and no deployment of model '${model}' serves the Responses API natively`;
}

/** After narrowing this cannot fail; it keeps a translated deployment from ever dropping what the client sent. */
function check(p: ResponsesInput, d: Deployment): void {
  if (p.nativeOnly !== null && !isNative(d)) throw badRequest(unsupported(p.nativeOnly, p.request.model), p.nativeOnly);
}

function result(r: ChatResponse, native: JsonObject | null, body: JsonObject): EndpointResult {
  return {
    usage: r.usage,
    delivered: () => answerOutput(r),
    encode: (model, b: Bill) =>
      JSON.stringify(native !== null ? presentNative(native, model, b) : encodeResponse(r, model, echoOf(body), responsesUsage(b.usage, usdNumber(b.cost)))),
  };
}


/** Remembers the response's id from the upstream's `response.created`, before the client can continue it. */
function remembering(stream: ChatStream, remember: (id: unknown) => Promise<void>): ChatStream {
  return {
    async *[Symbol.asyncIterator]() {
      let done = false;
      for await (const ev of stream) {
        if (!done && ev.type === 'native' && ev.event === 'response.created') {
          done = true;
          await remember(idOf(ev.data));
        }
        yield ev;
      }
    },
  };
}

function idOf(data: string): unknown {
  try {
    const v: unknown = JSON.parse(data);
    const r = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)['response'] : undefined;
    return r !== null && typeof r === 'object' ? (r as Record<string, unknown>)['id'] : undefined;
  } catch {
    return undefined;
  }
}

/** Native or translated is known from the first event: a native deployment's streams start with one of its own. */
class ResponsesEncoder implements StreamEncoder {
  private inner: StreamEncoder | null = null;

  constructor(
    private readonly model: string,
    private readonly echo: JsonObject,
  ) {}

  private of(ev: StreamEvent | null): StreamEncoder {
    this.inner ??= ev?.type === 'native' && ev.protocol === PROTOCOL ? new NativeResponsesEncoder(this.model) : new ResponsesStreamEncoder(this.model, this.echo);
    return this.inner;
  }

  event(ev: StreamEvent): string | null {
    return this.of(ev).event(ev);
  }
  capped(open: readonly number[]): string {
    return this.of(null).capped(open);
  }
  end(b: Bill): string {
    return this.of(null).end(b);
  }
  error(err: Parameters<StreamEncoder['error']>[0], traceId: string): string {
    return this.of(null).error(err, traceId);
  }
}

/** Prompt tokens a continuation may bring that the body does not show (the stored conversation), when the model has no context_window. */
const UNSEEN_CONVERSATION_TOKENS = 128_000;

/**
 * What the prompt may cost. A continuation (`previous_response_id`) carries a conversation the
 * gateway never sees, so its hold covers the model's whole context window: the upstream's usage
 * must fit the hold to be billed as reported.
 */
function promptEstimate(request: ChatRequest, route: ModelRoute): number {
  const seen = estimateChatTokens(request);
  const previous = request.source?.body['previous_response_id'];
  if (typeof previous !== 'string') return seen;
  return Math.max(seen, route.contextWindow ?? UNSEEN_CONVERSATION_TOKENS);
}
