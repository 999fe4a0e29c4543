import type { Bill } from '../billing/bill.js';
import type { GatewayError } from '../errors.js';
import type { ChatStream, FirstByte, UpstreamTrace } from '../providers/contract.js';
import type { Deployment, ModelRoute } from '../routing/catalog.js';
import type { ApiKey } from '../store/types.js';
import type { JsonObject, StreamEvent, Usage } from '../types/chat.js';

// What differs between the endpoints of the request pipeline (pipeline.ts): one descriptor per
// client API (OpenAI chat completions, embeddings; Anthropic Messages and OpenAI Responses
// next). The pipeline runs the same steps for all; a descriptor says how this API's clients send
// credentials, what a valid request is, what it may cost, how it reaches a provider, and how
// answers, streams and errors look to its clients.

/** Request headers as the HTTP layer saw them, names in lower case. */
export type RequestHeaders = Record<string, string | string[] | undefined>;

/** What a request may cost, before it is sent. */
export interface Estimate {
  promptTokens: number;
  /** The client's own output cap per choice; null when it set none (the balance decides). */
  maxOutput: number | null;
  /** Answers the request asks for (OpenAI `n`); the hold covers each. */
  choices: number;
}

/** An answer from a provider, as the endpoint will show it. */
export interface EndpointResult {
  /** What the provider reported, numbers unchecked; null when it reported nothing. */
  usage: Usage | null;
  /** Everything generated, to count when the usage is missing or not believable. */
  delivered(): string;
  /** The body the client gets, showing the model it asked for and what was billed. */
  encode(model: string, b: Bill): string | readonly Buffer[];
  /** Gives back what the answer holds of the buffer budget, once it has been written. */
  release?: () => void;
}

/** Turns stream events into this API's frames (SSE events, each whole, ready to write). */
export interface StreamEncoder {
  /** The frame for an event, or null when this API has none for it. */
  event(ev: StreamEvent): string | null;
  /** The frames that end a stream cut at the output cap: each choice in `open` stops for length. */
  capped(open: readonly number[]): string;
  /** The frames after a whole stream's last event, showing what was billed. */
  end(b: Bill): string;
  /** The frame of a failure after the stream started (SPEC §3). */
  error(err: GatewayError, traceId: string): string;
}

export interface RenderedError {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export interface Endpoint<P> {
  /** For logs and metrics. */
  readonly name: string;
  /** The API key as this API's clients send it. */
  credential(h: RequestHeaders): string | undefined;
  /** The body as JSON and the model it names; 400 when it is neither. */
  parse(raw: string | undefined): { model: string; body: JsonObject };
  /**
   * The whole request checked (400 naming the field) and read into the endpoint's terms. The
   * headers are there for protocols whose headers a same-protocol upstream must see
   * (`anthropic-version`, `anthropic-beta`: ChatRequest.source.headers). The key is there for
   * state that belongs to an account (OpenAI Responses: whose stored responses it may continue).
   */
  validate(body: JsonObject, model: string, headers: RequestHeaders, key: ApiKey): P;
  stream(p: P): boolean;
  /**
   * The session the request belongs to (`x-session-id`, or the body's own: `prompt_cache_key`,
   * `user`, `metadata.user_id`), so that its requests stay on one deployment and find the
   * provider's prompt cache warm; absent or undefined: no affinity.
   */
  session?(p: P, headers: RequestHeaders): string | undefined;
  /**
   * The deployments that may serve this request, from the model's (absent: all of them). A
   * request that continues state one deployment keeps (OpenAI Responses' `previous_response_id`)
   * narrows them to that one; failover then tries only what is left.
   */
  narrow?(p: P, route: ModelRoute): Promise<ModelRoute>;
  /** What the request may cost; `route` is the model's (its context window bounds what the request cannot show, such as a stored conversation). */
  estimate(p: P, route: ModelRoute): Estimate;
  /**
   * One attempt at a deployment, not streamed; `trace`: the headers every upstream request of this
   * client request carries; `firstByte`: told when the answer begins (the provider's ChatCall).
   */
  call(p: P, d: Deployment, maxTokens: number | null, signal: AbortSignal, trace: UpstreamTrace, firstByte: FirstByte): Promise<EndpointResult>;
  /** One attempt at a deployment, streamed: resolves once the upstream has accepted (its first event). */
  open(p: P, d: Deployment, maxTokens: number | null, signal: AbortSignal, trace: UpstreamTrace): Promise<ChatStream>;
  encoder(p: P, model: string): StreamEncoder;
  renderError(err: GatewayError, traceId: string): RenderedError;
  /**
   * The rate-limit headers as this API's clients read them, from the gateway's own
   * (`x-ratelimit-*`, SPEC §2); absent: sent as they are.
   */
  rateHeaders?(h: Record<string, string>): Record<string, string>;
  /** A header this API's SDKs read the trace id from (Anthropic's `request-id`), sent beside `x-request-id`. */
  readonly traceHeader?: string;
}
