import { authenticate } from '../auth/authenticate.js';
import { authorize } from '../auth/authorize.js';
import { costOfUsage } from '../billing/cost.js';
import { countText, estimatePromptTokens } from '../billing/estimate.js';
import { Meter } from '../billing/meter.js';
import { usdNumber } from '../billing/money.js';
import type { ChatCall, JsonObject, TokenUsage } from '../providers/types.js';
import type { Deployment, ModelRoute } from '../routing/catalog.js';
import { withFailover } from '../routing/failover.js';
import type { Answer, Exchange, Gateway } from './gateway.js';
import { presentResult } from './present.js';
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
  try {
    const body = parseJsonBody(ex.rawBody);
    meter.model = requireModel(body);
    route = resolveModel(gw.catalog, meter.model);
    authorize(key, route.id);
    params = validateChat(body, meter.model);
    meter.stream = params.stream;
    promptTokens = estimatePromptTokens(body);
    const requested = params.maxTokens === null ? null : params.maxTokens * params.n;
    const maxTokens = await reserve(gw, ex, key, meter, route, { promptTokens, requested });
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

  try {
    if (!params.stream) {
      const result = await forward((c, d) => d.provider.chat(c));
      const usage = result.usage ?? { promptTokens, completionTokens: countText(contentOf(result.body)), cachedTokens: 0 };
      const cost = costOfUsage(usage, route.price);
      presentResult(result.body, meter.model, cost);
      meter.finish(200, null, usage, cost);
      return { status: 200, body: JSON.stringify(result.body) };
    }
    const stream = await forward((c, d) => d.provider.chatStream(c));
    const outcome = await relayStream(stream, ex.res, {
      traceId: ex.traceId, model: meter.model, includeUsage: params.includeUsage, headers: ex.headers, started: ex.started,
      signal: ex.signal, abort: ex.abort, streams: gw.streams, costOf: (u) => usdNumber(costOfUsage(u, route.price)),
    });
    meter.ttftMs = outcome.ttftMs;
    // A cut stream is billed for what was generated: the upstream's count if it came, else the delivered text counted.
    const usage: TokenUsage = outcome.usage ?? { promptTokens, completionTokens: countText(outcome.delivered), cachedTokens: 0 };
    const cost = costOfUsage(usage, route.price);
    if (outcome.clientGone) meter.finish(499, 'client_closed', usage, cost);
    else if (outcome.error !== null) meter.finish(outcome.error.status, outcome.error.type, usage, cost);
    else meter.finish(200, null, usage, cost);
    return null;
  } catch (e) {
    const err = meter.failAfterHold(e);
    if (err === null) return null;
    throw err;
  }
}

function contentOf(body: JsonObject): string {
  const choices = body['choices'];
  if (!Array.isArray(choices)) return '';
  let text = '';
  for (const c of choices as { message?: { content?: unknown } }[]) {
    if (typeof c.message?.content === 'string') text += c.message.content;
  }
  return text;
}
