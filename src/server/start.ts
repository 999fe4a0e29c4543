import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { resolveAdminKey } from '../auth/admin.js';
import { GatewayError } from '../errors.js';
import { KeyCache } from '../auth/authenticate.js';
import { generateKey } from '../auth/keys.js';
import { parseUsd } from '../billing/money.js';
import type { Config } from '../config/schema.js';
import type { Gateway } from '../gateway/gateway.js';
import { createProviders } from '../providers/registry.js';
import { ByteBudget } from '../providers/whole-body.js';
import { Catalog } from '../routing/catalog.js';
import { openLimiter } from '../limits/open.js';
import { openStore } from '../store/open.js';
import type { Store } from '../store/types.js';
import { buildApp } from './app.js';

export interface RunningGateway {
  app: FastifyInstance;
  gateway: Gateway;
  store: Store;
  url: string;
  /** Secrets created on this start (first start only); printed once by `serve`. */
  created: { demoKey: string | null; adminKey: string | null };
  close(): Promise<void>;
}

const DEMO_CREDIT = '10';

/** Opens the store, builds providers and routes once, bootstraps a first start, and listens. */
export async function startGateway(config: Config, opts: { store?: Store } = {}): Promise<RunningGateway> {
  const store = opts.store ?? (await openStore(config.database));
  const providers = createProviders(config.providers, {
    maxResponseBytes: config.server.max_upstream_response_bytes,
    maxEventBytes: config.server.max_stream_event_bytes,
    budget: new ByteBudget(config.server.max_buffered_response_bytes),
  });
  const catalog = new Catalog(config, providers);
  const admin = await resolveAdminKey(store, config.admin_key);
  const demoKey = await bootstrapDemo(store);
  const recovered = await store.recoverHolds();

  const log = pino({ level: config.log_level, redact: ['req.headers.authorization', 'headers.authorization'] });
  const limiter = await openLimiter(config.redis, log);
  const { app, gateway } = buildApp({
    gateway: { store, catalog, keys: new KeyCache(store), limiter, background: new Set(), streams: new Set() },
    adminHash: admin.hash,
    bodyLimit: config.server.body_limit,
    maxConcurrentRequests: config.server.max_concurrent_requests,
    log,
  });
  if (recovered > 0) app.log.warn({ holds: recovered }, 'released holds left by a process that stopped mid-request');
  await app.listen({ host: config.server.host, port: config.server.port });
  const addr = app.server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      // In-flight requests get shutdown_timeout_ms; then open streams end with a 503 error event
      // (SPEC §3) and whatever else is left is cut.
      const deadline = setTimeout(() => {
        for (const cut of [...gateway.streams]) cut(new GatewayError('shutting_down'));
        setTimeout(() => app.server.closeAllConnections(), 100).unref();
      }, config.server.shutdown_timeout_ms);
      await app.close();
      clearTimeout(deadline);
      await Promise.allSettled([...gateway.background]);
      await Promise.allSettled([...providers.values()].map((p) => p.close()));
      await limiter.close();
      if (opts.store === undefined) await store.close();
    })());

  return { app, gateway, store, url: `http://${host}:${addr.port}`, created: { demoKey, adminKey: admin.generated }, close };
}

/** On a first start with an empty database: a demo account with some credit and a key for it. */
async function bootstrapDemo(store: Store): Promise<string | null> {
  if ((await store.countAccounts()) > 0) return null;
  const account = await store.createAccount({ name: 'demo', credit: parseUsd(DEMO_CREDIT)! });
  const { key, prefix, hash } = generateKey();
  await store.createKey({ accountId: account.id, name: 'demo', prefix, hash, models: null, limits: null, expiresAt: null });
  return key;
}

