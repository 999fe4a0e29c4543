import type { GatewayError } from '../errors.js';
import type { Admission } from '../limits/admit.js';
import type { Subject } from '../limits/types.js';
import type { Deployment, ModelRoute } from '../routing/catalog.js';
import type { ApiKey, Hold } from '../store/types.js';
import type { Estimate, RequestHeaders } from './endpoint.js';
import type { TraceParent } from './trace.js';

/** One client request as the HTTP layer hands it to the pipeline. */
export interface Exchange {
  /** The gateway's own id for the request (`req_<hex>`), never the client's. */
  traceId: string;
  /** The client's well-formed `x-client-request-id`, else null (trace.ts). */
  clientRequestId: string | null;
  /** An incoming well-formed W3C `traceparent` to continue upstream, else null (trace.ts). */
  traceParent: TraceParent | null;
  /** performance.now() when the request arrived. */
  started: number;
  requestHeaders: RequestHeaders;
  rawBody: string | undefined;
  /** Aborted when the client goes away, or by `abort`. */
  signal: AbortSignal;
  /** Ends the upstream side of this request (the output cap and the shutdown deadline use it). */
  abort: () => void;
  /** Headers every response to this request carries, whatever its status (the rate-limit headers). */
  headers: Record<string, string>;
  /** What an error becomes for this client (repeated authentication failures turn into 429). */
  judge: (err: GatewayError) => GatewayError;
}

/**
 * What the pipeline learns about a request, filled in step by step in the order of
 * pipeline.ts; a field is set by exactly one step and read only by the ones after it.
 */
export interface RequestContext<P> {
  readonly ex: Exchange;
  /** The endpoint's name (chat, embeddings, messages, responses): the metrics' `route`. */
  readonly endpoint: string;
  /** authenticate */
  key: ApiKey;
  /** parse: the model the client named, as it named it. */
  model: string;
  /** resolve; narrowed after validate when the endpoint says only some deployments may serve the request. */
  route: ModelRoute | null;
  /** validate */
  request: P | null;
  stream: boolean;
  estimate: Estimate | null;
  /** admit */
  subjects: Subject[];
  admission: Admission | null;
  /** hold */
  hold: Hold | null;
  /** The UTC day the hold was reserved against the spend quotas; null when nothing was reserved. */
  quotaDay: string | null;
  /** Output tokens the hold covers, all choices together. */
  outputCap: number;
  /** The cap per choice sent upstream; null leaves it to the provider. */
  maxTokens: number | null;
  /** route: the deployment that answered (or was last tried), and its provider's name and upstream model. */
  deployment: Deployment | null;
  provider: string | null;
  upstreamModel: string | null;
  /** route: upstream requests made; null until routing starts. */
  attempts: number | null;
  /** route: ms from the first attempt's start to the answer's headers (non-streamed) or first event (streams); null until one answered. */
  upstreamWaitMs: number | null;
  /** relay */
  ttftMs: number | null;
  /** record: set once the outcome has gone to the sinks. */
  finished: boolean;
}

export function newContext<P>(ex: Exchange, key: ApiKey, endpoint: string): RequestContext<P> {
  return {
    ex, endpoint, key, upstreamWaitMs: null, model: '', route: null, request: null, stream: false, estimate: null, subjects: [], admission: null,
    hold: null, quotaDay: null, outputCap: 0, maxTokens: null, deployment: null, provider: null, upstreamModel: null, attempts: null, ttftMs: null, finished: false,
  };
}
