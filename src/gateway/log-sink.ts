import { formatUsd } from '../billing/money.js';
import type { Exchange } from './context.js';
import type { Outcome, OutcomeSink } from './outcome.js';

// The request line (SPEC §8): one JSON line per request of the pipeline, `msg: "request"`, built
// from its outcome alone. Fields are named as in the usage record and the admin API (snake_case),
// but for `traceId`. The key is its prefix, never its secret: the line is built from the
// outcome's fields, not from the request, so nothing the client sent (headers, body) reaches it.

/** The part of a logger the lines need: pino's, or a test's. */
export interface LineLog {
  info(obj: object, msg: string): void;
}

/** A model name as the client sent it can be long; the line keeps its start. */
const MAX_MODEL_CHARS = 256;
const NO_COST = formatUsd(0n);

/** The request line of each outcome; it never waits. */
export function logSink(log: LineLog): OutcomeSink {
  return (o) => {
    log.info(requestLine(o), 'request');
    return null;
  };
}

export function requestLine(o: Outcome): object {
  return {
    traceId: o.traceId,
    client_request_id: o.clientRequestId,
    route: o.route,
    key: o.key.prefix,
    account: o.key.accountId,
    model: o.model.length > MAX_MODEL_CHARS ? o.model.slice(0, MAX_MODEL_CHARS) : o.model,
    deployment: o.provider === null ? null : `${o.provider}/${o.upstreamModel}`,
    stream: o.stream,
    attempts: o.attempts,
    status: o.status,
    error_type: o.errorType,
    prompt_tokens: o.usage.promptTokens,
    completion_tokens: o.usage.completionTokens,
    cost: formatUsd(o.cost),
    latency_ms: Math.round(o.latencyMs),
    ttft_ms: o.ttftMs === null ? null : Math.round(o.ttftMs),
  };
}

/**
 * The line of a request refused before it had a key (a missing, unknown or revoked key, or too
 * many such failures from one address): no outcome, so no sink sees it, but an operator wants to
 * see a flood of them. The same fields, null or zero where nothing is known.
 */
export function refusedLine(ex: Exchange, route: string, status: number, errorType: string, latencyMs: number): object {
  return {
    traceId: ex.traceId,
    client_request_id: ex.clientRequestId,
    route,
    key: null,
    account: null,
    model: null,
    deployment: null,
    stream: false,
    attempts: 0,
    status,
    error_type: errorType,
    prompt_tokens: 0,
    completion_tokens: 0,
    cost: NO_COST,
    latency_ms: Math.round(latencyMs),
    ttft_ms: null,
  };
}
