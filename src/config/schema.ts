import { z } from 'zod';
import { parseUsd } from '../billing/money.js';
import { providerConfigSchema } from '../providers/registry.js';

// The config file's shape. Defaults live here so that a missing file, an empty file and a
// partial file all mean the same thing. Durations are milliseconds; sizes are bytes.

const price = z.custom<number | string>((v) => (typeof v === 'number' || typeof v === 'string') && parseUsd(v) !== null, {
  message: 'expected a number (USD per 1M tokens, at least 0, at most 9 decimal places)',
});

const deployment = z
  .object({
    provider: z.string().min(1),
    model: z.string().min(1),
    priority: z.number().int().nonnegative().default(0),
    weight: z.number().positive().default(1),
  })
  .strict();

const circuit = z
  .object({
    /** Failures (retryable ones and credential refusals) within window_ms that open a deployment's circuit. */
    failures: z.number().int().positive().default(5),
    window_ms: z.number().int().positive().default(30_000),
    /** How long an open circuit is skipped before one request probes it. */
    cooldown_ms: z.number().int().positive().default(30_000),
  })
  .strict();

const routingFields = {
  /** Upstream requests per client request, across deployments and retries. */
  attempts: z.number().int().min(1).max(20).default(3),
  /** An upstream retry-after longer than this moves on instead of waiting. */
  max_retry_wait_ms: z.number().int().nonnegative().default(2000),
  /** Time spent on attempts before the first byte. */
  budget_ms: z.number().int().positive().default(30_000),
  circuit: circuit.default(circuit.parse({})),
  /** How long a session stays on the deployment that served it (providers' prompt caches). */
  affinity_ttl_ms: z.number().int().nonnegative().default(600_000),
};

const routing = z.object(routingFields).strict();

/** A model's own routing: any field of the defaults, each circuit field too; what it leaves out comes from the top level. */
const modelRouting = z
  .object({
    attempts: routingFields.attempts.unwrap().optional(),
    max_retry_wait_ms: routingFields.max_retry_wait_ms.unwrap().optional(),
    budget_ms: routingFields.budget_ms.unwrap().optional(),
    circuit: z
      .object({ failures: z.number().int().positive().optional(), window_ms: z.number().int().positive().optional(), cooldown_ms: z.number().int().positive().optional() })
      .strict()
      .optional(),
    affinity_ttl_ms: routingFields.affinity_ttl_ms.unwrap().optional(),
  })
  .strict();

const model = z
  .object({
    owned_by: z.string().default('token360'),
    created: z.number().int().nonnegative().optional(),
    free: z.boolean().default(false),
    pricing: z
      .object({ input: price, output: price, cached_input: price.optional(), cache_write: price.optional() })
      .strict()
      .optional(),
    context_window: z.number().int().positive().optional(),
    max_output_tokens: z.number().int().positive().default(4096),
    deployments: z.array(deployment).min(1),
    routing: modelRouting.optional(),
  })
  .strict();

const server = z
  .object({
    host: z.string().default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(8360),
    max_concurrent_requests: z.number().int().positive().default(4096),
    body_limit: z.number().int().positive().default(20 * 1024 * 1024),
    /** A request's headers and body must arrive within this long of its first byte; then 408. */
    body_timeout_ms: z.number().int().positive().default(30_000),
    /** Failed authentications answered 401 per client address per minute; beyond, 429. 0: no limit. */
    auth_failures_per_minute: z.number().int().nonnegative().default(20),
    /**
     * Whose `X-Forwarded-For` names the client: false (the socket's address), true (any hop:
     * only behind a proxy that overwrites the header), or the proxies' addresses and CIDRs.
     */
    trust_proxy: z.union([z.boolean(), z.array(z.string().min(1))]).default(false),
    /** Origins browsers may call /v1 from, exactly as the browser sends them (`https://app.example.com`); `["*"]`: any. */
    cors_origins: z.array(z.union([z.literal('*'), z.url({ protocol: /^https?$/ }).regex(/^[^/]+\/\/[^/]+$/, 'expected an origin: scheme://host[:port], no path')])).default([]),
    /** On SIGTERM: how long in-flight requests may take before they are cut. */
    shutdown_timeout_ms: z.number().int().nonnegative().default(30_000),
    /** One non-streamed upstream body (an embeddings answer can legitimately be ~100 MB); over it: 502. */
    max_upstream_response_bytes: z.number().int().positive().default(128 * 1024 * 1024),
    /** All non-streamed upstream bodies held at once, across requests; a body that does not fit: 502. */
    max_buffered_response_bytes: z.number().int().positive().default(512 * 1024 * 1024),
    /** One SSE event (or a line not yet ended) from an upstream; over it the stream fails. */
    max_stream_event_bytes: z.number().int().positive().default(8 * 1024 * 1024),
  })
  .strict();

const store = z
  .object({
    /**
     * A process's claim on the holds it placed, renewed every third of it. When a process dies,
     * another releases its holds once the lease has run out (on the same machine, at once).
     */
    lease_ms: z.number().int().min(300).max(600_000).default(30_000),
    /** How long a write waits for another process's lock on the database before the request gets 503. */
    lock_timeout_ms: z.number().int().positive().max(60_000).default(3_000),
    /** PostgreSQL: connections in the pool of each process (one more listens for changes). */
    pool_size: z.number().int().min(1).max(1000).default(10),
    /** PostgreSQL: how long connecting, or waiting for a free pooled connection, may take before the request gets 503. */
    connect_timeout_ms: z.number().int().positive().max(60_000).default(5_000),
  })
  .strict();

const retention = z
  .object({
    /** Usage records older than this many days are deleted, in small batches, about every 10 minutes; absent: kept for ever. */
    usage_days: z.number().int().min(1).max(36_500).optional(),
  })
  .strict();

export const configSchema = z
  .object({
    server: server.default(server.parse({})),
    database: z.string().default('sqlite:./data/token360.db'),
    store: store.default(store.parse({})),
    retention: retention.default({}),
    redis: z.string().optional(),
    /**
     * `port`: /metrics also served without a key on 127.0.0.1:<port>. `enabled: false`: no
     * /metrics and no counting per request (a deployment that does not scrape saves the CPU).
     */
    metrics: z
      .object({ enabled: z.boolean().default(true), port: z.number().int().min(0).max(65535).optional() })
      .strict()
      .refine((m) => m.enabled || m.port === undefined, { message: 'metrics.port needs metrics.enabled', path: ['port'] })
      .default({ enabled: true }),
    admin_key: z.string().min(16).optional(),
    log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    providers: z.record(z.string(), providerConfigSchema).default({}),
    routing: routing.default(routing.parse({})),
    models: z.record(z.string(), model).default({}),
  })
  .strict();

export type RawConfig = z.input<typeof configSchema>;
export type Config = z.output<typeof configSchema>;
export type ModelConfig = z.output<typeof model>;
export type RoutingConfig = z.output<typeof routing>;

/** What `npm start` serves with no config file: the built-in demo provider and one priced model. */
export const DEFAULT_CONFIG: RawConfig = {
  providers: { demo: { type: 'demo' } },
  models: {
    demo: {
      owned_by: 'token360',
      pricing: { input: 0.5, output: 1.5 },
      context_window: 32768,
      max_output_tokens: 4096,
      deployments: [{ provider: 'demo', model: 'demo' }],
    },
  },
};
