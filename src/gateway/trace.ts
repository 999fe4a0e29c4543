import { randomBytes, randomUUID } from 'node:crypto';
import type { UpstreamTrace } from '../providers/contract.js';
import type { RequestHeaders } from './endpoint.js';

// Trace context (SPEC §8). The gateway's trace id (`req_<hex>`, server/app.ts) is its own and
// never taken from the client; what the client may add is its own id for the request and a W3C
// trace to continue.

/** An incoming W3C `traceparent` the gateway continues: its trace id and flags (the parent span is the client's). */
export interface TraceParent {
  traceId: string;
  flags: string;
}

const CLIENT_REQUEST_ID = /^[A-Za-z0-9._-]{1,128}$/;
/** Version 00 only: a later version may add fields we would pass on without understanding. */
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);
/** Flags of a trace the gateway starts: not sampled, as it records no spans of its own. */
const NEW_TRACE_FLAGS = '00';

/** One value of a header: a repeated header is taken as not sent (which one would be meant?). */
function single(v: string | string[] | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** The client's `x-client-request-id` when well-formed (1–128 letters, digits, `-`, `_`, `.`); else null, and it goes nowhere. */
export function clientRequestId(h: RequestHeaders): string | null {
  const v = single(h['x-client-request-id']);
  return v !== undefined && CLIENT_REQUEST_ID.test(v) ? v : null;
}

/** A well-formed version-00 `traceparent` (ids not all zeros, lower-case hex, as W3C requires); else null. */
export function traceParent(h: RequestHeaders): TraceParent | null {
  const v = single(h['traceparent']);
  if (v === undefined) return null;
  const m = TRACEPARENT.exec(v.trim());
  if (m === null || m[1] === ZERO_TRACE || m[2] === ZERO_SPAN) return null;
  return { traceId: m[1]!, flags: m[3]! };
}

/**
 * The W3C trace id the upstream sees: the client's when it sent a traceparent, else the hex of
 * the gateway's own trace id, so that a new trace is found under the request's traceId.
 */
export function w3cTraceId(traceId: string, parent: TraceParent | null): string {
  if (parent !== null) return parent.traceId;
  const hex = traceId.slice(4);
  return traceId.startsWith('req_') && /^[0-9a-f]{32}$/.test(hex) && hex !== ZERO_TRACE ? hex : randomBytes(16).toString('hex');
}

/**
 * The headers every upstream request of one client request carries: `x-request-id`, a
 * `traceparent` with the gateway's own span id (continuing the client's trace, or starting one),
 * and the client's request id when it sent a well-formed one.
 */
export function upstreamTrace(traceId: string, clientId: string | null, parent: TraceParent | null): UpstreamTrace {
  // From a random UUID (a cached entropy pool, no system call per request): 16 hex digits, one of them the UUID's version.
  const u = randomUUID();
  const span = u.slice(0, 8) + u.slice(9, 13) + u.slice(14, 18);
  const headers: Record<string, string> = {
    'x-request-id': traceId,
    traceparent: `00-${w3cTraceId(traceId, parent)}-${span === ZERO_SPAN ? '0000000000000001' : span}-${parent?.flags ?? NEW_TRACE_FLAGS}`,
  };
  if (clientId !== null) headers['x-client-request-id'] = clientId;
  return headers;
}
