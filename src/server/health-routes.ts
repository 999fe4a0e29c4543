import type { FastifyInstance } from 'fastify';
import type { Gateway } from '../gateway/gateway.js';
import { methodNotAllowed } from './method-not-allowed.js';

/** What start-up and shutdown tell the probes; `closing` turns true once shutdown has begun. */
export interface Lifecycle {
  closing: boolean;
}

/** A dependency slower than this is as good as down for a probe that a load balancer times out. */
const CHECK_TIMEOUT_MS = 1000;

/**
 * SPEC §8. `/healthz` says the process runs (503 once it is shutting down, so a load balancer
 * stops sending before the listener goes); `/readyz` says it could serve a request now. Neither
 * needs a key: probes carry none.
 */
export function registerHealthRoutes(app: FastifyInstance, gw: Gateway, lifecycle: Lifecycle): void {
  const live = async (_req: unknown, reply: { code(n: number): unknown }): Promise<{ status: string }> => {
    if (!lifecycle.closing) return { status: 'ok' };
    reply.code(503);
    return { status: 'shutting_down' };
  };
  for (const url of ['/healthz', '/health']) {
    app.get(url, live);
    methodNotAllowed(app, url, ['GET']);
  }
  app.get('/readyz', async (_req, reply) => {
    const failing = await unready(gw);
    if (lifecycle.closing) failing.unshift('shutting_down');
    if (failing.length === 0) return { status: 'ok' };
    reply.code(503);
    return { status: 'unready', failing };
  });
  methodNotAllowed(app, '/readyz', ['GET']);
}

/** The names of what keeps this process from serving: `store`, `redis`, `model:<id>` (every deployment's circuit open). */
export async function unready(gw: Gateway): Promise<string[]> {
  const [store, redis] = await Promise.all([
    // A read by primary key: cheap, and it fails when the database cannot be reached.
    answers(gw.store.getSetting('readyz').then(() => true)),
    answers(gw.limiter.ping()),
  ]);
  const failing: string[] = [];
  if (!store) failing.push('store');
  if (!redis) failing.push('redis');
  const health = gw.routing.health;
  const now = health.now();
  for (const route of gw.catalog.all()) {
    const open = route.tiers.every((tier) => tier.every((d) => health.of(d).circuit.state(now) === 'open'));
    if (open) failing.push(`model:${route.id}`);
  }
  return failing;
}

function answers(check: Promise<boolean>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), CHECK_TIMEOUT_MS)));
  return Promise.race([check.catch(() => false), late]).finally(() => clearTimeout(timer));
}
