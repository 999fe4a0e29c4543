import { performance } from 'node:perf_hooks';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { authenticate } from '../auth/authenticate.js';
import { peekHeaders } from '../limits/admit.js';
import { utcDay } from '../limits/types.js';
import { authorize, mayUse } from '../auth/authorize.js';
import { presentLimits } from '../admin/present.js';
import { formatUsd } from '../billing/money.js';
import { GatewayError, isGatewayError } from '../errors.js';
import { chatCompletions } from '../gateway/chat.js';
import { embeddings } from '../gateway/embeddings.js';
import type { Answer, Exchange, Gateway } from '../gateway/gateway.js';
import { resolveModel } from '../gateway/resolve-model.js';
import type { JudgeAuthFailure } from '../auth/failures.js';
import { methodNotAllowed } from './method-not-allowed.js';
import { renderError } from './render-error.js';

const JSON_TYPE = 'application/json; charset=utf-8';

export function registerV1Routes(app: FastifyInstance, gw: Gateway, opts: { maxConcurrent: number; judge: JudgeAuthFailure }): void {
  app.register(async (scope) => {
    // Shedding comes before authentication, so it stays cheap under overload, and after the
    // body has arrived, so that clients trickling bodies hold no slot. It belongs to the routes
    // of this scope, whatever spelling of the URL reached them (absolute form, %-encoding).
    let inFlight = 0;
    scope.addHook('preValidation', (req, reply, done) => {
      if (inFlight >= opts.maxConcurrent) {
        const r = renderError(new GatewayError('overloaded', { retryAfterMs: 1000 }), req.id);
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
  /** The request path writes its own responses (streams go out chunk by chunk), so these routes bypass fastify's reply. */
  const raw = (run: (gw: Gateway, ex: Exchange) => Promise<Answer>) => async (req: FastifyRequest, reply: FastifyReply) => {
    reply.hijack();
    const res = reply.raw;
    const ac = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) ac.abort();
    });
    const ex: Exchange = {
      traceId: req.id,
      started: performance.now(),
      authorization: req.headers.authorization,
      rawBody: typeof req.body === 'string' ? req.body : undefined,
      signal: ac.signal,
      abort: () => ac.abort(),
      res,
      headers: {},
    };
    try {
      const answer = await run(gw, ex);
      if (answer !== null && !res.headersSent) {
        res.writeHead(answer.status, { ...ex.headers, 'content-type': JSON_TYPE, 'x-request-id': ex.traceId });
        if (typeof answer.body === 'string') res.end(answer.body);
        else {
          for (const piece of answer.body) res.write(piece);
          res.end();
        }
      }
    } catch (e) {
      if (!isGatewayError(e)) gw.log.error({ err: e, traceId: ex.traceId }, 'request failed');
      if (res.headersSent || res.destroyed) return;
      const r = renderError(judge(isGatewayError(e) ? e : new GatewayError('internal'), req), ex.traceId);
      res.writeHead(r.status, { ...ex.headers, ...r.headers });
      res.end(r.body);
    }
  };

  app.post('/v1/chat/completions', raw(chatCompletions));
  methodNotAllowed(app, '/v1/chat/completions', ['POST']);
  app.post('/v1/embeddings', raw(embeddings));
  methodNotAllowed(app, '/v1/embeddings', ['POST']);

  /** Authenticates, and gives the response the key's rate-limit headers (SPEC §2: every response). */
  const keyOf = async (req: FastifyRequest, reply: FastifyReply) => {
    const key = await authenticate(gw.keys, req.headers.authorization);
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
    return route.listing;
  });
  methodNotAllowed(app, '/v1/models/*', ['GET']);

  app.get('/v1/me', async (req, reply) => {
    const key = await keyOf(req, reply);
    const account = await gw.store.getAccount(key.accountId);
    if (account === null) throw new GatewayError('invalid_api_key');
    const dayStart = Date.parse(utcDay(Date.now()));
    const [accountToday, keyToday] = await Promise.all([
      gw.store.spendSince(account.id, dayStart),
      gw.store.spendSince(account.id, dayStart, key.id),
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
    };
  });
  methodNotAllowed(app, '/v1/me', ['GET']);
}
