import { performance } from 'node:perf_hooks';
import type { Admission } from '../limits/admit.js';
import type { Subject } from '../limits/types.js';
import type { ApiKey, Hold } from '../store/types.js';
import type { Usage } from '../types/chat.js';
import type { RequestContext } from './context.js';

/** How one request ended, computed once and handed to every outcome sink. */
export interface Outcome {
  traceId: string;
  /** The client's own id for the request (`x-client-request-id`), when well-formed. */
  clientRequestId: string | null;
  key: ApiKey;
  /** The model the client named, as it named it. */
  model: string;
  /** The catalogue's id for it; null when the catalogue has no such model (metrics say `unknown`, never the client's string). */
  modelId: string | null;
  /** The endpoint: chat, embeddings, messages, responses. */
  route: string;
  provider: string | null;
  upstreamModel: string | null;
  /** Upstream requests made (retries and failover). */
  attempts: number;
  stream: boolean;
  /** The HTTP status the client got (499: it went away). */
  status: number;
  errorType: string | null;
  /** What was charged; zeros when nothing was. */
  usage: Usage;
  /** What the request costs, never more than its hold. */
  cost: bigint;
  hold: Hold | null;
  quotaDay: string | null;
  subjects: Subject[];
  admission: Admission | null;
  latencyMs: number;
  /** Of latencyMs, the time spent waiting on the upstream (context.ts says which); null when none answered. */
  upstreamWaitMs: number | null;
  ttftMs: number | null;
  at: number;
}

/**
 * Something that acts on every outcome (billing, limits, metrics), built once at start-up. It
 * returns a promise when the response must wait for it (billing: a client that got an answer has
 * been charged), else null; it never throws and its promise never rejects.
 */
export type OutcomeSink = (o: Outcome) => Promise<unknown> | null;

const NO_USAGE: Usage = { promptTokens: 0, completionTokens: 0, cachedTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 };
const DONE: Promise<unknown> = Promise.resolve();

/**
 * The request ended: its one outcome goes to every sink. A second call does nothing, so each
 * request leaves exactly one usage record whichever path ended it. Resolves when the sinks the
 * response waits for are done.
 */
export function finish<P>(sinks: readonly OutcomeSink[], ctx: RequestContext<P>, status: number, errorType: string | null, usage: Usage | null, cost: bigint): Promise<unknown> {
  if (ctx.finished) return DONE;
  ctx.finished = true;
  const o: Outcome = {
    traceId: ctx.ex.traceId,
    clientRequestId: ctx.ex.clientRequestId,
    key: ctx.key,
    model: ctx.model,
    modelId: ctx.route?.id ?? null,
    route: ctx.endpoint,
    provider: ctx.provider,
    upstreamModel: ctx.upstreamModel,
    attempts: ctx.attempts ?? 0,
    stream: ctx.stream,
    status,
    errorType,
    usage: usage ?? NO_USAGE,
    // Never more than the hold, whatever the caller computed: the hold is the most a request may cost.
    cost: ctx.hold === null ? 0n : cost > ctx.hold.amount ? ctx.hold.amount : cost,
    hold: ctx.hold,
    quotaDay: ctx.quotaDay,
    subjects: ctx.subjects,
    admission: ctx.admission,
    latencyMs: performance.now() - ctx.ex.started,
    upstreamWaitMs: ctx.upstreamWaitMs,
    ttftMs: ctx.ttftMs,
    at: Date.now(),
  };
  let wait: Promise<unknown>[] | null = null;
  for (const sink of sinks) {
    const p = sink(o);
    if (p !== null) (wait ??= []).push(p);
  }
  if (wait === null) return DONE;
  return wait.length === 1 ? wait[0]! : Promise.all(wait);
}
