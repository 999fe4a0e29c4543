import { performance } from 'node:perf_hooks';
import { authenticate } from '../auth/authenticate.js';
import { authorize } from '../auth/authorize.js';
import { bill, outputAllowance, type Bill } from '../billing/bill.js';
import { countText } from '../billing/estimate.js';
import { GatewayError, isGatewayError } from '../errors.js';
import { UpstreamError } from '../providers/upstream-error.js';
import type { FirstByte } from '../providers/contract.js';
import type { Deployment } from '../routing/catalog.js';
import { routeRequest, streamBroke } from '../routing/retry.js';
import type { Usage } from '../types/chat.js';
import { newContext, type Exchange, type RequestContext } from './context.js';
import type { Endpoint } from './endpoint.js';
import type { Gateway } from './gateway.js';
import { refusedLine } from './log-sink.js';
import { finish } from './outcome.js';
import { refusedHeaders } from './rate-headers.js';
import { relay, type StreamOutcome } from './relay.js';
import { admit, hold } from './reserve.js';
import { resolveModel } from './resolve-model.js';
import { upstreamTrace } from './trace.js';

/** What the HTTP layer sends: a body, or frames to write one by one as the client takes them. */
export type Reply =
  | { status: number; headers: Record<string, string>; body: string | readonly Buffer[]; release?: (() => void) | undefined }
  | { status: 200; headers: Record<string, string>; frames: AsyncGenerator<string, void, undefined> };

const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * The request pipeline, for every endpoint: authenticate → parse → resolve → authorize →
 * validate → admit → hold → route → relay → settle → record. Each step is its own module; this
 * function only puts them in order and turns failures into the endpoint's error replies. It
 * knows nothing of HTTP: it returns a reply for the HTTP layer to write.
 */
export async function handle<P>(gw: Gateway, ep: Endpoint<P>, ex: Exchange): Promise<Reply> {
  let ctx: RequestContext<P>;
  try {
    ctx = newContext(ex, await authenticate(gw.keys, ep.credential(ex.requestHeaders)), ep.name);
    gw.signals.requestStarted();
  } catch (e) {
    // No key, so no outcome and no sink: the request line is written here (SPEC §8).
    const err = judged(gw, ex, e);
    gw.log.info(refusedLine(ex, ep.name, err.status, err.type, performance.now() - ex.started), 'request');
    return render(ep, ex, err, NOT_ROUTED);
  }
  let p: P;
  try {
    const parsed = ep.parse(ex.rawBody);
    ctx.model = parsed.model;
    const route = (ctx.route = resolveModel(gw.catalog, parsed.model));
    authorize(ctx.key, route.id);
    p = ctx.request = ep.validate(parsed.body, parsed.model, ex.requestHeaders, ctx.key);
    if (ep.narrow !== undefined) ctx.route = await ep.narrow(p, route);
    ctx.stream = ep.stream(p);
    const estimate = (ctx.estimate = ep.estimate(p, ctx.route));
    await admit(gw, ctx, estimate);
    await hold(gw, ctx, route, estimate);
  } catch (e) {
    if (isGatewayError(e) && e.limit !== undefined) gw.signals.limitRefused(e.limit);
    void finish(gw.sinks, ctx, ...failure(e));
    if (ctx.admission === null) await refusedHeaders(gw, ctx.key, ex);
    return errorReply(gw, ep, ex, e, NOT_ROUTED);
  }

  try {
    // Built once: every attempt (retries, failover) carries the same ids.
    const t = upstreamTrace(ex.traceId, ex.clientRequestId, ex.traceParent);
    if (!ctx.stream) {
      const r = await route(gw, ep, ctx, (d, signal, firstByte) => ep.call(p, d, ctx.maxTokens, signal, t, firstByte));
      const b = charge(gw, ctx, r.usage, () => r.delivered());
      // The answer leaves once its settlement is durable: a client that got it has been billed.
      await finish(gw.sinks, ctx, 200, null, b.usage, b.cost);
      return { status: 200, headers: { ...rate(ep, ex), 'content-type': JSON_TYPE, ...trace(ep, ex), ...routed(ctx) }, body: r.encode(ctx.model, b), release: r.release };
    }
    const upstream = await route(gw, ep, ctx, (d, signal) => ep.open(p, d, ctx.maxTokens, signal, t));
    const frames = relay(upstream, ep.encoder(p, ctx.model), {
      traceId: ex.traceId,
      signal: ex.signal,
      abort: ex.abort,
      streams: gw.streams,
      outputLimit: outputAllowance(ctx.outputCap),
      onFirstFrame: () => (ctx.ttftMs = performance.now() - ex.started),
      settle: (o) => settleStream(gw, ctx, o),
    });
    return { status: 200, headers: { ...rate(ep, ex), ...SSE_HEADERS, ...trace(ep, ex), ...routed(ctx) }, frames };
  } catch (e) {
    // The client went away: nobody to answer.
    if (e instanceof UpstreamError && e.failure === 'aborted') {
      void finish(gw.sinks, ctx, 499, 'client_closed', null, 0n);
      return errorReply(gw, ep, ex, new GatewayError('upstream_failed'), routed(ctx));
    }
    void finish(gw.sinks, ctx, ...failure(e));
    return errorReply(gw, ep, ex, e instanceof UpstreamError ? new GatewayError('upstream_failed') : e, routed(ctx));
  }
}

const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' };

/**
 * Route: retries and failover across the model's deployments (routing/retry.ts); each attempt
 * notes its deployment and number, so the record and the headers say how the answer came.
 */
function route<P, T>(gw: Gateway, ep: Endpoint<P>, ctx: RequestContext<P>, send: (d: Deployment, signal: AbortSignal, firstByte: FirstByte) => Promise<T>): Promise<T> {
  const session = ep.session?.(ctx.request!, ctx.ex.requestHeaders);
  ctx.attempts = 0;
  const began = performance.now();
  return routeRequest(
    gw.routing,
    ctx.route!,
    {
      signal: ctx.ex.signal,
      traceId: ctx.ex.traceId,
      // Per key and model: one key's sessions never steer another's, and a session may use several models.
      session: session === undefined ? null : `${ctx.key.id}\n${ctx.route!.id}\n${session}`,
      onAttempt: (d, n) => {
        ctx.deployment = d;
        ctx.provider = d.provider.name;
        ctx.upstreamModel = d.upstreamModel;
        ctx.attempts = n;
      },
    },
    send,
  ).then((r) => {
    // The whole answer for a call, the headers and first event for a stream (chatStream resolves then).
    ctx.upstreamWaitMs = performance.now() - began;
    return r;
  });
}

/** A request refused before routing: no upstream request was made (SPEC §7: every answer says how it went). */
const NOT_ROUTED: Readonly<Record<string, string>> = { 'x-token360-attempts': '0' };

/** How the answer came (SPEC §7): on every reply once routing has begun; no deployment when none was tried (all circuits open). */
function routed<P>(ctx: RequestContext<P>): Record<string, string> | null {
  if (ctx.attempts === null) return null;
  const h: Record<string, string> = { 'x-token360-attempts': String(ctx.attempts) };
  if (ctx.provider !== null) h['x-token360-deployment'] = `${ctx.provider}/${ctx.upstreamModel}`;
  return h;
}

/** Settle: what the request is charged, the upstream's usage when believable, else the delivered output counted; at most the hold. */
function charge<P>(gw: Gateway, ctx: RequestContext<P>, reported: Usage | null, delivered: () => string): Bill {
  const b = bill({
    reported,
    counted: () => ({ promptTokens: ctx.estimate!.promptTokens, completionTokens: countText(delivered()), cachedTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 }),
    price: ctx.route!.price,
    hold: ctx.hold?.amount ?? 0n,
    outputCap: ctx.outputCap,
  });
  if (b.distrusted) {
    gw.log.warn(
      { traceId: ctx.ex.traceId, deployment: `${ctx.provider}/${ctx.upstreamModel}`, reported: reported === null ? null : { ...reported, raw: undefined } },
      'upstream usage is not believable (negative, fractional, not a number, or beyond the hold): billed the delivered output, counted',
    );
  }
  return b;
}

/**
 * A stream's settlement: a cut stream is billed for what was generated (the upstream's count if it
 * came, else the delivered text counted). An upstream that broke it off is told to routing, which
 * could no longer fail over but keeps the deployment's health.
 */
function settleStream<P>(gw: Gateway, ctx: RequestContext<P>, o: StreamOutcome): { bill: Bill; durable: Promise<unknown> } {
  if (o.failure !== null) streamBroke(gw.routing, ctx.route!, ctx.deployment!, ctx.ex.traceId, ctx.attempts!, o.failure);
  const b = charge(gw, ctx, o.usage, () => o.delivered);
  const [status, type] = o.clientGone ? [499, 'client_closed'] : o.error !== null ? [o.error.status, o.error.type] : [200, null];
  return { bill: b, durable: finish(gw.sinks, ctx, status, type, b.usage, b.cost) };
}

/** Record: a request that produced nothing costs nothing. */
function failure(e: unknown): [number, string, null, bigint] {
  return isGatewayError(e) ? [e.status, e.type, null, 0n] : [500, 'api_error', null, 0n];
}

function errorReply<P>(gw: Gateway, ep: Endpoint<P>, ex: Exchange, e: unknown, extra: Record<string, string> | null = null): Reply {
  return render(ep, ex, judged(gw, ex, e), extra);
}

/** What the client is told: a failure that is not a GatewayError is logged and becomes `internal`. */
function judged(gw: Gateway, ex: Exchange, e: unknown): GatewayError {
  if (!isGatewayError(e)) gw.log.error({ err: e, traceId: ex.traceId }, 'request failed');
  return ex.judge(isGatewayError(e) ? e : new GatewayError('internal'));
}

function render<P>(ep: Endpoint<P>, ex: Exchange, err: GatewayError, extra: Record<string, string> | null = null): Reply {
  const r = ep.renderError(err, ex.traceId);
  return { status: r.status, headers: { ...rate(ep, ex), ...r.headers, ...extra }, body: r.body };
}

/** The trace id, in the endpoint's own header too when its SDKs read another. */
function trace<P>(ep: Endpoint<P>, ex: Exchange): Record<string, string> {
  return ep.traceHeader === undefined ? { 'x-request-id': ex.traceId } : { 'x-request-id': ex.traceId, [ep.traceHeader]: ex.traceId };
}

/** The rate-limit headers every response carries (SPEC §2), in the endpoint's words. */
function rate<P>(ep: Endpoint<P>, ex: Exchange): Record<string, string> {
  return ep.rateHeaders === undefined ? ex.headers : ep.rateHeaders(ex.headers);
}
