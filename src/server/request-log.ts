import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { LineLog } from '../gateway/log-sink.js';

// One request line for every response that carries an x-request-id (SPEC §8). The pipeline's
// requests get theirs from the pipeline (their outcome, or their refusal before authentication:
// gateway/log-sink.ts); every other request (the admin API, /v1/models, probes, a 404, a request
// shed or refused before it reached the pipeline) gets this shorter one when its response ends.

declare module 'fastify' {
  interface FastifyRequest {
    /** The pipeline took this request: its line is the pipeline's to write. */
    pipelined: boolean;
  }
}

/** The pipeline takes this request: its line is the pipeline's to write. */
export function handledByPipeline(req: FastifyRequest): void {
  req.pipelined = true;
}

/** What an access line says: no key, account or body; the path without its query (a query may carry a credential). */
export function accessLine(traceId: string, method: string, url: string, ip: string, status: number, latencyMs: number): object {
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  return {
    traceId,
    method,
    path: path.length > 200 ? path.slice(0, 200) : path,
    ip,
    status,
    latency_ms: Math.round(latencyMs),
  };
}

export function registerRequestLog(app: FastifyInstance, log: LineLog): void {
  // A flag on fastify's request (declared once, so every request has the same shape), not a
  // WeakSet of them: the collector pays for every entry of a weak set.
  app.decorateRequest('pipelined', false);
  app.addHook('onResponse', (req, reply, done) => {
    if (!req.pipelined) log.info(accessLine(req.id, req.method, req.url, req.ip, reply.statusCode, reply.elapsedTime), 'request');
    done();
  });
}
