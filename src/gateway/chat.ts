import { authenticate } from '../auth/authenticate.js';
import { authorize } from '../auth/authorize.js';
import { bill, outputAllowance, type Bill } from '../billing/bill.js';
import { countText, estimatePromptTokens } from '../billing/estimate.js';
import { Meter } from '../billing/meter.js';
import type { ChatCall, JsonObject, TokenUsage } from '../providers/types.js';
import type { Deployment, ModelRoute } from '../routing/catalog.js';
import { withFailover } from '../routing/failover.js';
import type { Answer, Exchange, Gateway } from './gateway.js';
import { billedUsage, presentResult } from './present.js';
import { refusedHeaders } from './rate-headers.js';
import { relayStream } from './relay-stream.js';
import { reserve } from './reserve.js';
import { resolveModel } from './resolve-model.js';
import { parseJsonBody, requireModel, validateChat } from './validate-chat.js';

/**
 * POST /v1/chat/completions — the request path, step by step:
 * authenticate → resolve model → authorize → validate → admit (limits) → hold (balance, then
 * daily quota) → route (failover) → relay → settle and record.
 * Each step is its own module; this file only puts them in order.
 */
export async function chatCompletions(gw: Gateway, ex: Exchange): Promise<Answer> {
  const key = await authenticate(gw.keys, ex.authorization);
  const meter = new Meter(gw, ex, key);
  let route: ModelRoute;
  let call: ChatCall;
  let params: ReturnType<typeof validateChat>;
  let promptTokens: number;
  /** Output tokens the hold covers, all choices together. */
  let outputCap: number;
  try {
    const body = parseJsonBody(ex.rawBody);
    meter.model = requireModel(body);
    route = resolveModel(gw.catalog, meter.model);
    authorize(key, route.id);
    params = validateChat(body, meter.model);
    meter.stream = params.stream;
    promptTokens = estimatePromptTokens(body);
    const requested = params.maxTokens === null ? null : params.maxTokens * params.n;
    const planned = await reserve(gw, ex, key, meter, route, { promptTokens, requested });
    outputCap = requested ?? planned ?? route.maxOutputTokens;
    // The cap the balance affords covers every choice together; the upstream's max_tokens is per choice.
    const maxTokens = planned === null ? null : Math.max(1, Math.floor(planned / params.n));
    call = { body, upstreamModel: '', maxTokens, signal: ex.signal };
  } catch (e) {
    meter.fail(e);
    if (meter.admission === null) await refusedHeaders(gw, key, ex);
    throw e;
  }

  // Route: each attempt records which deployment served, so the usage record names it.
  const forward = <T>(send: (c: ChatCall, d: Deployment) => Promise<T>): Promise<T> =>
    withFailover(route, ex.signal, (d) => {
      meter.provider = d.provider.name;
      meter.upstreamModel = d.upstreamModel;
      return send({ ...call, upstreamModel: d.upstreamModel }, d);
    }).then((r) => r.result);

  /** What the request is charged: the upstream's usage when believable, else the delivered output counted; at most the hold. */
  const charge = (reported: TokenUsage | null, delivered: () => string): Bill => {
    const b = bill({
      reported,
      counted: () => ({ promptTokens, completionTokens: countText(delivered()), cachedTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 }),
      price: route.price,
      hold: meter.hold?.amount ?? 0n,
      outputCap,
    });
    if (b.distrusted) {
      gw.log.warn(
        { traceId: ex.traceId, deployment: `${meter.provider}/${meter.upstreamModel}`, reported },
        'upstream usage is not believable (negative, fractional, not a number, or beyond the hold): billed the delivered output, counted',
      );
    }
    return b;
  };

  try {
    if (!params.stream) {
      const result = await forward((c, d) => d.provider.chat(c));
      const b = charge(result.usage, () => outputOf(result.body));
      presentResult(result.body, meter.model, b);
      // The answer leaves once its settlement is committed: a client that got it has been billed.
      await meter.finish(200, null, b.usage, b.cost);
      return { status: 200, body: JSON.stringify(result.body) };
    }
    const stream = await forward((c, d) => d.provider.chatStream(c));
    await relayStream(stream, ex.res, {
      traceId: ex.traceId, model: meter.model, includeUsage: params.includeUsage, headers: ex.headers, started: ex.started,
      signal: ex.signal, abort: ex.abort, streams: gw.streams, outputLimit: outputAllowance(outputCap),
      settle: (outcome) => {
        meter.ttftMs = outcome.ttftMs;
        // A cut stream is billed for what was generated: the upstream's count if it came, else the delivered text counted.
        const b = charge(outcome.usage, () => outcome.delivered);
        const [status, type] = outcome.clientGone ? [499, 'client_closed'] : outcome.error !== null ? [outcome.error.status, outcome.error.type] : [200, null];
        const durable = meter.finish(status, type, b.usage, b.cost);
        return { usage: billedUsage(outcome.rawUsage, b), durable };
      },
    });
    return null;
  } catch (e) {
    const err = meter.failAfterHold(e);
    if (err === null) return null;
    throw err;
  }
}

/** Everything a non-streamed completion generated: content, reasoning, refusals and tool calls of every choice. */
function outputOf(body: JsonObject): string {
  const choices = body['choices'];
  if (!Array.isArray(choices)) return '';
  let text = '';
  for (const c of choices as { message?: Record<string, unknown> }[]) {
    const m = c?.message;
    if (m === null || typeof m !== 'object') continue;
    for (const k of ['content', 'reasoning_content', 'refusal']) if (typeof m[k] === 'string') text += m[k];
    if (Array.isArray(m['tool_calls'])) text += JSON.stringify(m['tool_calls']);
  }
  return text;
}
