import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import type { DestinationStream } from 'pino';
import { ADMIN_KEY_SETTING, resolveAdminKey } from '../auth/admin.js';
import { GatewayError } from '../errors.js';
import { KeyCache } from '../auth/authenticate.js';
import { generateKey } from '../auth/keys.js';
import { parseUsd } from '../billing/money.js';
import type { Config } from '../config/schema.js';
import type { Gateway } from '../gateway/gateway.js';
import { createProviders } from '../providers/registry.js';
import { ByteBudget } from '../providers/whole-body.js';
import { createLogger, infoLines } from './logger.js';
import { Affinity } from '../routing/affinity.js';
import { Catalog } from '../routing/catalog.js';
import { Health } from '../routing/health.js';
import { openLimiter } from '../limits/open.js';
import { openStore } from '../store/open.js';
import { startRetention } from '../store/retention.js';
import type { Store } from '../store/types.js';
import type { Limiter } from '../limits/types.js';
import { buildApp } from '../server/app.js';
import { billingSink, limitsSink } from '../gateway/sinks.js';
import { logSink } from '../gateway/log-sink.js';
import { Metrics, metricsSink } from '../metrics/metrics.js';
import { NO_SIGNALS } from '../types/signals.js';
import { serveMetrics } from '../server/metrics-routes.js';

export interface RunningGateway {
  app: FastifyInstance;
  gateway: Gateway;
  store: Store;
  url: string;
  /** The keyless metrics listener's port when `metrics.port` is set. */
  metricsPort: number | null;
  /** Secrets created on this start (first start only); printed once by `serve`. */
  created: { demoKey: string | null; adminKey: string | null };
  close(): Promise<void>;
}

const DEMO_CREDIT = '10';

/**
 * Opens the store, builds providers and routes once, listens, and then makes a first start's
 * writes: the demo account and a generated admin key exist only once the server listens, so a
 * start that fails (port in use) leaves none that were never shown, and the next start makes them.
 * `logStream`: where the log lines go instead of stdout (tests read them back).
 */
export interface StartOptions {
  store?: Store;
  /** A worker of `serve --workers` without Redis: the limiter the primary keeps for all workers. */
  limiter?: Limiter;
  /** A worker of `serve --workers`: /metrics shows what the primary gathers from every worker, and `metrics.port` is the primary's. */
  clusterScrape?: () => Promise<string>;
  /** Where the log lines go instead of stdout (tests read them back). */
  logStream?: DestinationStream;
}

export async function startGateway(config: Config, opts: StartOptions = {}): Promise<RunningGateway> {
  const log = createLogger(config.log_level, opts.logStream);
  const store = opts.store ?? (await openStore(config.database, {
      leaseMs: config.store.lease_ms,
      lockTimeoutMs: config.store.lock_timeout_ms,
      poolSize: config.store.pool_size,
      connectTimeoutMs: config.store.connect_timeout_ms,
      log,
    }));
  const providers = createProviders(config.providers, {
    limits: {
      maxResponseBytes: config.server.max_upstream_response_bytes,
      maxEventBytes: config.server.max_stream_event_bytes,
      budget: new ByteBudget(config.server.max_buffered_response_bytes),
    },
  });
  const catalog = new Catalog(config, providers);
  const admin = await resolveAdminKey(store, config.admin_key);
  // Left for the store's own sweep when the database cannot be written right now.
  const recovered = await store.recoverHolds().catch((err: unknown) => (log.warn({ err }, 'could not release holds of stopped processes yet'), 0));

  const limiter = opts.limiter ?? (await openLimiter(config.redis, log));
  if (opts.limiter === undefined && limiter.kind === 'memory') {
    // SPEC §9: replicas without Redis work, each with its own limits; say so once, where an operator looks.
    log.info({}, 'rate and spend limits are kept in this process (no redis configured): several replicas would each enforce their own; configure redis to share them');
  }
  let adminHash = admin.hash;
  const lifecycle = { closing: false };
  const health = new Health(catalog);
  const metrics = config.metrics.enabled ? new Metrics(health) : null;
  if (metrics !== null && opts.clusterScrape !== undefined) metrics.shareWithPrimary();
  const scrape = metrics === null ? null : opts.clusterScrape === undefined ? metrics.registry : { contentType: metrics.registry.contentType, metrics: opts.clusterScrape };
  const signals = metrics ?? NO_SIGNALS;
  const { app, gateway } = buildApp({
    gateway: {
      store, catalog, keys: new KeyCache(store), limiter, sinks: [], background: new Set(), streams: new Set(),
      routing: { health, affinity: new Affinity(), log, random: Math.random, sleep: (ms, signal) => sleep(ms, undefined, { signal }), signals },
      signals,
    },
    adminHash: () => adminHash,
    bodyLimit: config.server.body_limit,
    bodyTimeoutMs: config.server.body_timeout_ms,
    maxConcurrentRequests: config.server.max_concurrent_requests,
    authFailuresPerMinute: config.server.auth_failures_per_minute,
    trustProxy: config.server.trust_proxy,
    corsOrigins: config.server.cors_origins,
    lifecycle,
    metrics: scrape,
    log,
  });
  // Each request's outcome: billing settles and records it, limits release what it took, metrics count it, the log says it.
  gateway.sinks.push(billingSink(gateway), limitsSink(gateway));
  if (metrics !== null) gateway.sinks.push(metricsSink(metrics));
  // The level is fixed for the process: below info, no request line is built only to be dropped.
  if (log.isLevelEnabled('info')) gateway.sinks.push(logSink(infoLines(log)));
  if (recovered > 0) app.log.warn({ holds: recovered }, 'released holds left by a process that stopped mid-request');
  let metricsServer: { port: number; close(): Promise<void> } | null = null;
  const stopRetention = config.retention.usage_days === undefined ? null : startRetention(store, config.retention.usage_days, log);
  const release = async (): Promise<void> => {
    await stopRetention?.();
    await metricsServer?.close();
    await Promise.allSettled([...providers.values()].map((p) => p.close()));
    await limiter.close();
    if (opts.store === undefined) await store.close();
  };
  try {
    await app.listen({ host: config.server.host, port: config.server.port });
  } catch (e) {
    await app.close();
    await release();
    throw listenError(e, config.server.host, config.server.port);
  }
  if (metrics !== null && config.metrics.port !== undefined && opts.clusterScrape === undefined) {
    try {
      metricsServer = await serveMetrics(metrics.registry, config.metrics.port);
    } catch (e) {
      await app.close();
      await release();
      throw listenError(e, '127.0.0.1', config.metrics.port);
    }
  }
  const first = await firstStart(store, admin.generated === null ? null : admin.hash);
  // Another process starting on the same database at the same moment may have kept its admin key first.
  if (first.adminHash !== null) adminHash = first.adminHash;
  const adminKey = first.adminHash === admin.hash ? admin.generated : null;
  const addr = app.server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      // Before anything awaits: /healthz answers 503 from the moment shutdown begins.
      lifecycle.closing = true;
      // In-flight requests get shutdown_timeout_ms; then open streams end with a 503 error event
      // (SPEC §3) and whatever else is left is cut.
      const deadline = setTimeout(() => {
        for (const cut of [...gateway.streams]) cut(new GatewayError('shutting_down'));
        setTimeout(() => app.server.closeAllConnections(), 100).unref();
      }, config.server.shutdown_timeout_ms);
      // server.close() (inside app.close) drops only the connections idle at that moment; fastify's
      // forceCloseConnections: 'idle' adds nothing to that. A keep-alive connection whose response
      // ends later (our routes write the raw response, so nothing marks it `Connection: close`)
      // would hold the shutdown open until the deadline: drop connections as they fall idle.
      const sweep = setInterval(() => app.server.closeIdleConnections(), 50);
      await app.close();
      clearInterval(sweep);
      clearTimeout(deadline);
      await Promise.allSettled([...gateway.background]);
      await release();
    })());

  return { app, gateway, store, url: `http://${host}:${addr.port}`, metricsPort: metricsServer?.port ?? null, created: { demoKey: first.demoKey, adminKey }, close };
}

/** On a first start with an empty database: a demo account with some credit and a key for it, and the generated admin key's hash. */
async function firstStart(store: Store, adminHash: string | null): Promise<{ demoKey: string | null; adminHash: string | null }> {
  const { key, prefix, hash } = generateKey();
  const made = await store.firstStart({
    setting: adminHash === null ? null : { name: ADMIN_KEY_SETTING, value: adminHash },
    account: { name: 'demo', credit: parseUsd(DEMO_CREDIT)!, key: { name: 'demo', prefix, hash, models: null, limits: null, expiresAt: null } },
  });
  return { demoKey: made.accountCreated ? key : null, adminHash: made.setting };
}

/** The reasons a listen fails that an operator can fix, said plainly. */
function listenError(e: unknown, host: string, port: number): unknown {
  const code = (e as NodeJS.ErrnoException).code;
  const where = `${host}:${port}`;
  if (code === 'EADDRINUSE') return new Error(`cannot listen on ${where}: the port is already in use (choose another with --port or TOKEN360_PORT)`);
  if (code === 'EACCES') return new Error(`cannot listen on ${where}: permission denied (ports below 1024 need privileges)`);
  if (code === 'EADDRNOTAVAIL') return new Error(`cannot listen on ${where}: no such address on this machine (check --host or TOKEN360_HOST)`);
  return e;
}
