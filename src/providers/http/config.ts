import { z } from 'zod';

// The config fields of every provider reached over HTTP (SPEC §1). Durations are milliseconds.

const timeouts = {
  /** Non-streamed: the whole response. */
  timeout_ms: z.number().int().positive().default(600_000),
  /** Streamed: until the upstream's response headers and first event. */
  first_byte_timeout_ms: z.number().int().positive().default(120_000),
  /** Streamed: the longest silence between two chunks. */
  idle_timeout_ms: z.number().int().positive().default(60_000),
  connect_timeout_ms: z.number().int().positive().default(10_000),
};

/** What every provider reached over HTTP has: where, with which credential, its connection pool and timeouts. */
export const httpFields = {
  /** A query string here (Azure's `?api-version=…`) goes on every upstream request. */
  base_url: z.url({ protocol: /^https?$/ }),
  api_key: z.string().optional(),
  /** The header that carries `api_key`; `authorization` sends `Bearer <key>`, any other the key alone (Azure: `api-key`). */
  api_key_header: z.string().regex(/^[A-Za-z0-9-]+$/, 'expected a header name').optional(),
  headers: z.record(z.string(), z.string()).default({}),
  max_connections: z.number().int().positive().default(256),
  ...timeouts,
};
