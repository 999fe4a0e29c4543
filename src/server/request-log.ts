import type { IncomingMessage } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { LineLog } from '../gateway/log-sink.js';

// One request line for every response that carries an x-request-id (SPEC §8). The pipeline's
// requests get theirs from the pipeline (their outcome, or their refusal before authentication:
// gateway/log-sink.ts); every other request (the admin API, /v1/models, probes, a 404, a request
// shed or refused before it reached the pipeline) gets this shorter one when its response ends.

/** Requests whose line the pipeline writes. */
const byPipeline = new WeakSet<IncomingMessage>();

/** The pipeline takes this request: its line is the pipeline's to write. */
export function handledByPipeline(req: IncomingMessage): void {
  byPipeline.add(req);
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
  app.addHook('onResponse', (req, reply, done) => {
    if (!byPipeline.has(req.raw)) log.info(accessLine(req.id, req.method, req.url, req.ip, reply.statusCode, reply.elapsedTime), 'request');
    done();
  });
}
