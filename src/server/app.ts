import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { AuthFailures, type JudgeAuthFailure } from '../auth/failures.js';
import { GatewayError, isGatewayError } from '../errors.js';
import { registerCors } from './cors.js';
import type { Gateway } from '../gateway/gateway.js';
import { clientRequestId } from '../gateway/trace.js';
import { registerAdminRoutes } from './admin-routes.js';
import { registerHealthRoutes, type Lifecycle } from './health-routes.js';
import { registerMetricsRoute, type Scrape } from './metrics-routes.js';
import { accessLine, registerRequestLog } from './request-log.js';
import { renderError } from '../protocols/openai-chat/render-error.js';
import { rendererFor } from './error-shape.js';
import { registerV1Routes } from './v1-routes.js';

export interface AppOptions {
  gateway: Omit<Gateway, 'log'>;
  /** The admin key's hash; a function because a first start settles it only once the server listens. */
  adminHash: () => string;
  bodyLimit: number;
  bodyTimeoutMs: number;
  maxConcurrentRequests: number;
  authFailuresPerMinute: number;
  trustProxy: boolean | string[];
  /** Origins browsers may call /v1 from (`*`: any); empty: none. */
  corsOrigins: readonly string[];
  /** Shared with the shutdown that sets `closing`: the probes read it. */
  lifecycle: Lifecycle;
  /** What GET /metrics (admin key) shows; null when metrics are off (`metrics.enabled: false`): no such route. */
  metrics: Scrape | null;
  log: Logger;
}


/**
 * Sockets whose request was answered before its body had all arrived, while the rest of the
 * body is read and dropped: a timeout there closes the socket without a second answer.
 */
const draining = new WeakSet<Duplex>();

/** What a load balancer and a scraper call: they answer during shutdown too. */
const PROBES = new Set(['/healthz', '/health', '/readyz', '/metrics']);

/** `req_` and 32 hex digits. randomUUID draws from a cached entropy pool: no system call per request. */
function traceId(): string {
  return `req_${randomUUID().replaceAll('-', '')}`;
}

/**
 * The HTTP layer: it translates between HTTP and the request path and nothing more. Every
 * response, errors of fastify's own included, carries `x-request-id`, and every error goes
 * through the one renderer.
 */
export function buildApp(opts: AppOptions): { app: FastifyInstance; gateway: Gateway } {
  const app = Fastify({
    loggerInstance: opts.log as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    clientErrorHandler: (err, socket) => answerMalformed(err, socket, opts.log),
    // URLs the router cannot read (bad percent-encoding, an over-long path parameter) would
    // otherwise get fastify's own body. No route, so no onResponse hook: their line is written here.
    frameworkErrors: (err, req, reply) => {
      const e = toGatewayError(err, req);
      opts.log.info(accessLine(req.id, req.method, req.url, req.ip, e.status, 0), 'request');
      sendError(req, reply, e);
    },
    bodyLimit: opts.bodyLimit,
    // Node's request timeout covers the headers and the body, and only while they arrive; its
    // sweep runs every connectionsCheckingInterval (30 s by default: too coarse for the bound).
    requestTimeout: opts.bodyTimeoutMs,
    http: {
      requestTimeout: opts.bodyTimeoutMs,
      headersTimeout: Math.min(60_000, opts.bodyTimeoutMs),
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(opts.bodyTimeoutMs / 4))),
    },
    trustProxy: opts.trustProxy,
    genReqId: traceId,
    requestIdHeader: false,
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 2048 },
  });
  const gateway: Gateway = { ...opts.gateway, log: app.log };
  // fastify would build a child logger per request to bind its id; the lines that matter carry
  // `traceId` themselves, so every request shares the one logger.
  app.setChildLoggerFactory((logger) => logger);

  // Bodies arrive as text whatever their content type: the request path authenticates before it
  // parses, and a body that is not JSON is a 400 in our shape, never fastify's 415.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => done(null, body));

  app.addHook('onRequest', (req, reply, done) => {
    reply.header('x-request-id', req.id);
    // On the raw response, so that routes that write it themselves (the pipeline's) echo it too.
    const clientId = clientRequestId(req.headers);
    if (clientId !== null) reply.raw.setHeader('x-client-request-id', clientId);
    done();
  });
  registerRequestLog(app, opts.log);

  // Shutdown has begun (SPEC §8): a request that still arrives on a connection opened before gets
  // 503 and the connection closes after it; the probes keep answering. Here rather than in
  // onRequest so that the body has been read and closing cannot reset an unread answer.
  app.addHook('preValidation', (req, reply, done) => {
    if (!opts.lifecycle.closing || PROBES.has(req.routeOptions.url ?? '')) {
      done();
      return;
    }
    reply.header('connection', 'close');
    sendError(req, reply, new GatewayError('shutting_down', { retryAfterMs: 1000 }));
  });

  const failures = new AuthFailures(opts.authFailuresPerMinute);
  const judge: JudgeAuthFailure = (err, req) => {
    if (err.code !== 'invalid_api_key') return err;
    const wait = failures.fail(req.ip);
    return wait === 0 ? err : new GatewayError('too_many_auth_failures', { retryAfterMs: wait });
  };

  app.setErrorHandler((err: FastifyError | GatewayError, req: FastifyRequest, reply: FastifyReply) => {
    sendError(req, reply, judge(toGatewayError(err, req), req));
  });
  app.setNotFoundHandler((req, reply) => {
    sendError(req, reply, new GatewayError('not_found', { message: `Unknown path: ${req.method} ${req.url.split('?')[0]!.slice(0, 200)}` }));
  });

  // Without a listener node sends `100 Continue` itself, and the client then sends a body the
  // gateway is bound to refuse. Over the limit, the 413 goes out instead; node closes the
  // connection after it, the client not having sent the body.
  app.server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    if (Number(req.headers['content-length']) > opts.bodyLimit) {
      const id = traceId();
      const r = rendererFor(req.url ?? '/', req.headers)(new GatewayError('payload_too_large'), id);
      opts.log.info(accessLine(id, req.method ?? '', req.url ?? '/', req.socket.remoteAddress ?? '', r.status, 0), 'request');
      res.writeHead(r.status, { ...r.headers, 'content-length': String(Buffer.byteLength(r.body)) }).end(r.body);
      return;
    }
    res.writeContinue();
    app.server.emit('request', req, res);
  });

  registerCors(app, opts.corsOrigins);
  registerV1Routes(app, gateway, { maxConcurrent: opts.maxConcurrentRequests, judge });
  registerAdminRoutes(app, gateway.store, opts.adminHash, gateway.routing.health, opts.log);
  registerHealthRoutes(app, gateway, opts.lifecycle);
  if (opts.metrics !== null) registerMetricsRoute(app, opts.metrics, opts.adminHash);
  return { app, gateway };
}

/** Requests node's HTTP parser rejects never reach a route; they still get our error shape. */
function answerMalformed(err: NodeJS.ErrnoException, socket: Duplex, log: Logger): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  if (draining.has(socket)) {
    socket.destroy();
    return;
  }
  const e =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? new GatewayError('request_timeout')
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? new GatewayError('headers_too_large')
        : new GatewayError('invalid_request', { message: 'The request is not valid HTTP' });
  // No request was read, so no path to choose the shape by: SPEC §3's.
  const id = traceId();
  const r = renderError(e, id);
  if (socket.writable) {
    log.info(accessLine(id, '', '', (socket as Socket).remoteAddress ?? '', r.status, 0), 'request');
    const head = Object.entries({ ...r.headers, 'content-length': String(Buffer.byteLength(r.body)), connection: 'close' })
      .map(([k, v]) => `${k}: ${v}`)
      .join('\r\n');
    socket.write(`HTTP/1.1 ${r.status} ${STATUS_CODES[r.status]}\r\n${head}\r\n\r\n${r.body}`);
  }
  socket.destroy();
}

function toGatewayError(err: FastifyError | GatewayError, req: FastifyRequest): GatewayError {
  if (isGatewayError(err)) return err;
  const code = (err as FastifyError).code;
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new GatewayError('payload_too_large');
  if (code === 'FST_ERR_BAD_URL' || code === 'FST_ERR_MAX_PARAM_LENGTH') return new GatewayError('invalid_request', { message: 'The request URL is not valid' });
  const status = (err as FastifyError).statusCode;
  if (status !== undefined && status >= 400 && status < 500) {
    return new GatewayError('invalid_request', { message: 'The request could not be read' });
  }
  req.log.error({ err, traceId: req.id }, 'unhandled error');
  return new GatewayError('internal');
}

function sendError(req: FastifyRequest, reply: FastifyReply, err: GatewayError): void {
  const r = rendererFor(req.url, req.headers)(err, req.id);
  if (!req.raw.complete) drainBody(req.raw, reply);
  void reply.code(r.status).headers(r.headers).send(r.body);
}

/**
 * An answer that leaves before the request's body has arrived (a 413, a refused admin key): the
 * rest of the body is read and dropped until it ends, so the connection stays usable. Closing
 * at once (as fastify asks with `connection: close`) would make the kernel reset the
 * connection when the client's next bytes arrive, and a reset discards the answer the client
 * has not read yet. The body timeout still bounds how long the body may take.
 */
function drainBody(req: IncomingMessage, reply: FastifyReply): void {
  reply.removeHeader('connection');
  const socket = req.socket;
  draining.add(socket);
  req.once('end', () => draining.delete(socket));
  req.resume();
}
