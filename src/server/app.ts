import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { GatewayError, isGatewayError } from '../errors.js';
import { methodNotAllowed } from './method-not-allowed.js';
import type { Gateway } from '../gateway/gateway.js';
import { registerAdminRoutes } from './admin-routes.js';
import { renderError } from './render-error.js';
import { registerV1Routes } from './v1-routes.js';

export interface AppOptions {
  gateway: Omit<Gateway, 'log'>;
  /** The admin key's hash; a function because a first start settles it only once the server listens. */
  adminHash: () => string;
  bodyLimit: number;
  maxConcurrentRequests: number;
  log: Logger;
}

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
    clientErrorHandler: answerMalformed,
    // URLs the router cannot read (bad percent-encoding, an over-long path parameter) would otherwise get fastify's own body.
    frameworkErrors: (err, req, reply) => sendError(reply, toGatewayError(err, req), req.id),
    bodyLimit: opts.bodyLimit,
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
    done();
  });

  app.setErrorHandler((err: FastifyError | GatewayError, req: FastifyRequest, reply: FastifyReply) => {
    sendError(reply, toGatewayError(err, req), req.id);
  });
  app.setNotFoundHandler((req, reply) => {
    sendError(reply, new GatewayError('not_found', { message: `Unknown path: ${req.method} ${req.url.split('?')[0]!.slice(0, 200)}` }), req.id);
  });

  registerV1Routes(app, gateway, opts.maxConcurrentRequests);
  registerAdminRoutes(app, gateway.store, opts.adminHash);
  app.get('/health', async () => ({ status: 'ok' }));
  methodNotAllowed(app, '/health', ['GET']);
  return { app, gateway };
}

/** Requests node's HTTP parser rejects never reach a route; they still get our error shape. */
function answerMalformed(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const e =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? new GatewayError('request_timeout')
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? new GatewayError('headers_too_large')
        : new GatewayError('invalid_request', { message: 'The request is not valid HTTP' });
  const r = renderError(e, traceId());
  if (socket.writable) {
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

export function sendError(reply: FastifyReply, err: GatewayError, id: string): void {
  const r = renderError(err, id);
  void reply.code(r.status).headers(r.headers).send(r.body);
}
