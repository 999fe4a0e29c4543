import type { FastifyInstance } from 'fastify';
import { GatewayError } from '../errors.js';

// A module of its own so that the route files and app.ts, which registers them, do not import each other.

/** Answers any other method on a known path with 405 and `Allow`. */
export function methodNotAllowed(app: FastifyInstance, url: string, allowed: readonly string[]): void {
  const all = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];
  const others = all.filter((m) => !allowed.includes(m));
  app.route({
    method: others as ('GET' | 'POST')[],
    url,
    handler: async () => {
      throw new GatewayError('method_not_allowed', { headers: { allow: allowed.join(', ') } });
    },
  });
}
