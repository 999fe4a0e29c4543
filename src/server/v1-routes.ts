import { performance } from 'node:perf_hooks';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { authenticate } from '../auth/authenticate.js';
import { peekHeaders } from '../limits/admit.js';
import { utcDay } from '../limits/types.js';
import { authorize, mayUse } from '../auth/authorize.js';
import { presentLimits, presentPeriod } from '../admin/present.js';
import { recentKeyUsage } from '../admin/service.js';
import { formatUsd } from '../billing/money.js';
import { GatewayError } from '../errors.js';
import type { Exchange } from '../gateway/context.js';
import { clientRequestId, traceParent, upstreamTrace } from '../gateway/trace.js';
import type { Endpoint } from '../gateway/endpoint.js';
import type { Gateway } from '../gateway/gateway.js';
import { handle } from '../gateway/pipeline.js';
import { openAIChat } from '../protocols/openai-chat/endpoint.js';
import { openAIEmbeddings } from '../protocols/openai-embeddings/endpoint.js';
import { openAIResponses } from '../protocols/openai-responses/endpoint.js';
import { storedResponse } from '../protocols/openai-responses/stored.js';
import { writeBody, writeFrames } from './write-reply.js';
import { resolveModel } from '../gateway/resolve-model.js';
import type { JudgeAuthFailure } from '../auth/failures.js';
import { methodNotAllowed } from './method-not-allowed.js';
import { handledByPipeline } from './request-log.js';
import { rendererFor } from './error-shape.js';
import { anthropicMessages } from '../protocols/anthropic-messages/endpoint.js';
import { countTokens } from '../protocols/anthropic-messages/count-tokens.js';
import { anthropicModel, anthropicModelList } from '../protocols/anthropic-messages/models.js';
import { anthropicCredential } from '../protocols/anthropic-messages/endpoint.js';

export function registerV1Routes(app: FastifyInstance, gw: Gateway, opts: { maxConcurrent: number; judge: JudgeAuthFailure }): void {
  app.register(async (scope) => {
    // Shedding comes before authentication, so it stays cheap under overload, and after the
    // body has arrived, so that clients trickling bodies hold no slot. It belongs to the routes
    // of this scope, whatever spelling of the URL reached them (absolute form, %-encoding).
    let inFlight = 0;
    scope.addHook('preValidation', (req, reply, done) => {
      if (inFlight >= opts.maxConcurrent) {
        gw.signals.limitRefused('overload');
        const r = rendererFor(req.url, req.headers)(new GatewayError('overloaded', { retryAfterMs: 1000, limit: 'overload' }), req.id);
        void reply.code(r.status).headers(r.headers).send(r.body);
        return;
      }
      inFlight++;
      reply.raw.once('close', () => inFlight--);
      done();
    });
    registerCounted(scope, gw, opts.judge);
  });
}

function registerCounted(app: FastifyInstance, gw: Gateway, judge: JudgeAuthFailure): void {
  /**
   * The pipeline's routes write their own responses (streams go out frame by frame), so they
   * bypass fastify's reply. This is all the HTTP layer does for them: an exchange in, a reply out.
   */
  const serve = <P>(ep: Endpoint<P>) => async (req: FastifyRequest, reply: FastifyReply) => {
    reply.hijack();
    handledByPipeline(req);
    const res = reply.raw;
    const ac = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) ac.abort();
    });
    const ex: Exchange = {
      traceId: req.id,
      clientRequestId: clientRequestId(req.headers),
      traceParent: traceParent(req.headers),
      started: performance.now(),
      requestHeaders: req.headers,
      rawBody: typeof req.body === 'string' ? req.body : undefined,
      signal: ac.signal,
      abort: () => ac.abort(),
      headers: {},
      judge: (err) => judge(err, req),
    };
    const out = await handle(gw, ep, ex);
    if ('frames' in out) await writeFrames(res, out.status, out.headers, out.frames);
    else writeBody(res, out.status, out.headers, out.body, out.release);
  };

  // The pipeline's endpoints: a client API is a descriptor (src/protocols/<api>/) and a line here.
  const endpoints: [path: string, handler: ReturnType<typeof serve>][] = [
    ['/v1/chat/completions', serve(openAIChat)],
    ['/v1/embeddings', serve(openAIEmbeddings)],
    ['/v1/responses', serve(openAIResponses(gw.store))],
    ['/v1/messages', serve(anthropicMessages)],
  ];
  for (const [path, handler] of endpoints) {
    app.post(path, handler);
    methodNotAllowed(app, path, ['POST']);
  }

  // Free and outside the pipeline (SPEC §6): no hold, no usage record, no limits.
  app.post('/v1/messages/count_tokens', async (req, reply) => {
    const r = await countTokens(gw, {
      traceId: req.id,
      headers: req.headers,
      rawBody: typeof req.body === 'string' ? req.body : undefined,
      judge: (err) => judge(err, req),
    });
    return reply.code(r.status).headers(r.headers).send(r.body);
  });
  methodNotAllowed(app, '/v1/messages/count_tokens', ['POST']);

  /** Authenticates, and gives the response the key's rate-limit headers (SPEC §2: every response). */
  const keyOf = async (req: FastifyRequest, reply: FastifyReply) => {
    // An Anthropic client may send its key as x-api-key.
    const anthropic = req.headers['anthropic-version'] !== undefined;
    const key = await authenticate(gw.keys, anthropic ? anthropicCredential(req.headers) : req.headers.authorization);
    const headers: Record<string, string> = {};
    await peekHeaders(gw.limiter, key, headers);
    reply.headers(headers);
    return key;
  };

  app.get('/v1/models', async (req, reply) => {
    const key = await keyOf(req, reply);
    if (key.frozen) throw new GatewayError('api_key_frozen');
    const data = [];
    for (const m of gw.catalog.all()) if (mayUse(key, m.id)) data.push(m.listing);
    // Anthropic's SDKs always send anthropic-version, and read only their own list shape.
    if (req.headers['anthropic-version'] !== undefined) return anthropicModelList(data);
    return { object: 'list', data };
  });
  methodNotAllowed(app, '/v1/models', ['GET']);

  // Model ids may contain `/` (`org/model`), sent percent-encoded or not.
  app.get('/v1/models/*', async (req, reply) => {
    const key = await keyOf(req, reply);
    const rawId = req.url.slice('/v1/models/'.length).split('?')[0]!;
    let id: string;
    try {
      id = decodeURIComponent(rawId);
    } catch {
      throw new GatewayError('model_not_found', { param: 'model' });
    }
    const route = resolveModel(gw.catalog, id);
    authorize(key, route.id);
    return req.headers['anthropic-version'] !== undefined ? anthropicModel(route.listing) : route.listing;
  });
  methodNotAllowed(app, '/v1/models/*', ['GET']);

  // A stored response, at the native deployment that made it (SPEC §6). Free: no hold, no usage
  // record, not counted by limits. `:id`, not `*`: `/v1/responses/{id}/cancel` and
  // `/input_items` are not served, and stay unknown routes.
  const stored = (method: 'GET' | 'DELETE') => async (req: FastifyRequest<{ Params: { id: string } }>, reply: FastifyReply) => {
    const key = await keyOf(req, reply);
    const ac = new AbortController();
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) ac.abort();
    });
    const q = req.url.indexOf('?');
    const trace = upstreamTrace(req.id, clientRequestId(req.headers), traceParent(req.headers));
    const r = await storedResponse(gw.catalog, gw.store, { method, id: req.params.id, query: q < 0 ? '' : req.url.slice(q + 1), key, signal: ac.signal, trace });
    return reply.code(r.status).send(r.body);
  };
  app.get('/v1/responses/:id', stored('GET'));
  app.delete('/v1/responses/:id', stored('DELETE'));
  methodNotAllowed(app, '/v1/responses/:id', ['GET', 'DELETE']);

  app.get('/v1/me', async (req, reply) => {
    const key = await keyOf(req, reply);
    const account = await gw.store.getAccount(key.accountId);
    if (account === null) throw new GatewayError('invalid_api_key');
    const dayStart = Date.parse(utcDay(Date.now()));
    const [accountToday, keyToday, usage] = await Promise.all([
      gw.store.spendSince(account.id, dayStart),
      gw.store.spendSince(account.id, dayStart, key.id),
      recentKeyUsage(gw.store, key),
    ]);
    return {
      object: 'me',
      account: {
        id: account.id,
        name: account.name,
        balance: formatUsd(account.balance),
        held: formatUsd(account.held),
        available: formatUsd(account.balance - account.held),
        limits: presentLimits(account.limits),
        spend_today: formatUsd(accountToday),
      },
      key: {
        id: key.id,
        prefix: key.prefix,
        name: key.name,
        models: key.models,
        frozen: key.frozen,
        expires_at: key.expiresAt === null ? null : new Date(key.expiresAt).toISOString(),
        limits: presentLimits(key.limits),
        spend_today: formatUsd(keyToday),
      },
      // This key's own requests (not its account's): what the holder of the key did.
      usage: { today: presentPeriod(usage.today), last_30_days: presentPeriod(usage.last30Days) },
    };
  });
  methodNotAllowed(app, '/v1/me', ['GET']);
}
