import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { authenticateAdmin } from '../auth/admin.js';
import { methodNotAllowed } from './method-not-allowed.js';

/** What /metrics shows: a prom-client Registry, or under `serve --workers` every worker's series gathered by the primary. */
export interface Scrape {
  readonly contentType: string;
  metrics(): Promise<string>;
}

/** SPEC §8: `/metrics` on the gateway's port needs the admin key (it tells traffic and spend). */
export function registerMetricsRoute(app: FastifyInstance, registry: Scrape, adminHash: () => string): void {
  app.get('/metrics', { onRequest: async (req) => authenticateAdmin(adminHash(), req.headers.authorization) }, async (_req, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
  methodNotAllowed(app, '/metrics', ['GET']);
}

/**
 * `metrics.port`: the same text without a key, on 127.0.0.1 only, for a scraper beside the
 * process; anything but GET /metrics is a 404.
 */
export async function serveMetrics(registry: Scrape, port: number): Promise<{ port: number; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      () => res.writeHead(500).end(),
    );
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', () => resolve()));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))),
  };
}
