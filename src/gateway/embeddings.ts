import { authenticate } from '../auth/authenticate.js';
import { authorize } from '../auth/authorize.js';
import { bill } from '../billing/bill.js';
import { countText } from '../billing/estimate.js';
import { Meter } from '../billing/meter.js';
import { badRequest } from '../errors.js';
import { refusedHeaders } from './rate-headers.js';
import { withFailover } from '../routing/failover.js';
import type { Answer, Exchange, Gateway } from './gateway.js';
import { presentRaw, presentResult } from './present.js';
import { reserve } from './reserve.js';
import { resolveModel } from './resolve-model.js';
import { parseJsonBody, requireModel } from './validate-chat.js';

/** POST /v1/embeddings: the chat path's steps, with input tokens only. */
export async function embeddings(gw: Gateway, ex: Exchange): Promise<Answer> {
  const key = await authenticate(gw.keys, ex.authorization);
  const meter = new Meter(gw, ex, key);
  try {
    const body = parseJsonBody(ex.rawBody);
    meter.model = requireModel(body);
    const route = resolveModel(gw.catalog, meter.model);
    authorize(key, route.id);
    const promptTokens = inputTokens(body['input']);
    await reserve(gw, ex, key, meter, route, { promptTokens, requested: 0 });
    const { result, deployment } = await withFailover(route, ex.signal, (d) =>
      d.provider.embeddings({ body, upstreamModel: d.upstreamModel, signal: ex.signal }),
    );
    // The upstream's bytes count against the buffer budget until they have gone to the client.
    if ('raw' in result) {
      if (ex.signal.aborted) result.raw.release();
      else ex.res.once('close', result.raw.release);
    }
    meter.provider = deployment.provider.name;
    meter.upstreamModel = deployment.upstreamModel;
    const b = bill({
      reported: result.usage,
      counted: () => ({ promptTokens, completionTokens: 0, cachedTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 }),
      price: route.price,
      hold: meter.hold?.amount ?? 0n,
      outputCap: 0,
    });
    if (b.distrusted) gw.log.warn({ traceId: ex.traceId, reported: result.usage }, 'upstream usage is not believable: billed the input counted');
    // The answer leaves once its settlement is committed: a client that got it has been billed.
    await meter.finish(200, null, b.usage, b.cost);
    if ('raw' in result) return { status: 200, body: presentRaw(result.raw, meter.model, b) };
    presentResult(result.body, meter.model, b);
    return { status: 200, body: JSON.stringify(result.body) };
  } catch (e) {
    if (meter.admission === null) await refusedHeaders(gw, key, ex);
    const err = meter.failAfterHold(e);
    if (err === null) return null;
    throw err;
  }
}

function inputTokens(input: unknown): number {
  if (typeof input === 'string') return countText(input);
  if (Array.isArray(input) && input.length > 0 && input.length <= 2048) {
    let n = 0;
    for (const item of input as unknown[]) {
      if (typeof item === 'string') n += countText(item);
      else if (Array.isArray(item) && item.every((t) => Number.isInteger(t))) n += item.length;
      else throw badRequest("Invalid 'input': expected a string, an array of strings, or an array of token arrays", 'input');
    }
    return n;
  }
  if (input === undefined || input === null) throw badRequest("Missing required parameter: 'input'", 'input');
  throw badRequest("Invalid 'input': expected a string, an array of strings, or an array of token arrays", 'input');
}
