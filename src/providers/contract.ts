import type { z } from 'zod';
import type { ChatRequest, ChatResponse, ClientProtocol, JsonObject, StreamEvent, Usage } from '../types/chat.js';
import type { RawResult } from './types.js';
import type { UpstreamLimits } from './whole-body.js';

// The provider contract: what every provider folder implements. Requests, answers and streams
// are the gateway's typed form (src/types/chat.ts); each provider converts them to and from its
// wire format with pure functions (to-provider.ts, from-provider.ts). Retries, failover, metering
// and billing wrap providers (src/routing, src/billing); they never live inside one.

/**
 * Headers that tie an upstream request to the client's (SPEC §8): `x-request-id` (the gateway's
 * trace id), `traceparent`, and the client's `x-client-request-id` when it sent one. Built once
 * per client request (gateway/trace.ts); the transport adds them to every upstream request.
 */
export type UpstreamTrace = Readonly<Record<string, string>>;

/**
 * Routing's `budget_ms` (SPEC §7) bounds the time before the first byte. A non-streamed answer
 * has none before it is whole, so its transport says when such a request is on its way: from then
 * on the provider's own timeout alone bounds the attempt.
 */
export interface FirstByte {
  waiting(): void;
}

export interface ChatCall {
  request: ChatRequest;
  /** The deployment's model name at the provider. */
  upstreamModel: string;
  /**
   * The output cap per choice the gateway set (the client's, or what the balance affords); null
   * leaves it to the provider. A provider that requires one (Anthropic) sends its own default.
   */
  maxTokens: number | null;
  /** Aborted when the client goes away: the provider stops its upstream request at once. */
  signal: AbortSignal;
  trace: UpstreamTrace;
  /**
   * Told when a non-streamed answer begins (a 2xx's headers). A stream need not tell: its first
   * event is when chatStream resolves.
   */
  firstByte?: FirstByte | undefined;
}

/**
 * An open upstream stream, already past the provider's response headers and its first event, so
 * that whoever relays it knows the upstream accepted the request before a byte goes to the
 * client. Its iterator throws an UpstreamError when the upstream fails mid-stream (an error event,
 * a cut connection, a stream that ends without its terminal event); returning early closes the
 * upstream response.
 */
export type ChatStream = AsyncIterable<StreamEvent>;

/** Embeddings have no typed form of their own: OpenAI's request and answer shapes are the gateway's. */
export interface EmbeddingsCall {
  body: JsonObject;
  upstreamModel: string;
  signal: AbortSignal;
  trace: UpstreamTrace;
  firstByte?: FirstByte | undefined;
}

/** An OpenAI embeddings answer, parsed (a provider that converts) or as the upstream's bytes (one that relays). */
export type EmbeddingsResult = { body: JsonObject; usage: Usage | null } | RawResult;

export interface Provider {
  readonly name: string;
  readonly type: string;
  /** Strings a client must never see in an upstream message: the provider's credential and host. */
  readonly secrets: readonly string[];
  /**
   * Client protocols whose requests this provider sends on as they came (ChatRequest.source),
   * answering with `native` forms. Requests that need the upstream's own state (Responses'
   * `previous_response_id`) can go only to such providers. Absent: none.
   */
  readonly nativeProtocols?: readonly ClientProtocol[];
  /**
   * Reads or deletes a response the upstream stores (OpenAI Responses `GET`/`DELETE
   * /responses/{id}`, SPEC §6). Optional because only a provider serving 'openai-responses'
   * natively has such state; a non-2xx answer throws an UpstreamError as chat() does.
   */
  storedResponse?(call: StoredResponseCall): Promise<StoredResponseAnswer>;
  chat(call: ChatCall): Promise<ChatResponse>;
  chatStream(call: ChatCall): Promise<ChatStream>;
  embeddings(call: EmbeddingsCall): Promise<EmbeddingsResult>;
  close(): Promise<void>;
}

export interface StoredResponseCall {
  method: 'GET' | 'DELETE';
  /** The upstream's response id, as the client sent it. */
  id: string;
  /** The client's query string (`include[]=…`) without its `?`, or ''. */
  query: string;
  signal: AbortSignal;
  trace: UpstreamTrace;
}

/** The upstream's 2xx answer: its status and JSON object as they came. */
export interface StoredResponseAnswer {
  status: number;
  body: JsonObject;
}

/** What a provider gets from the gateway besides its own config. */
export interface ProviderEnv {
  limits: UpstreamLimits;
}

/**
 * A provider type: its name in the config, the schema of its config entry, and how to build one.
 * The registry (registry.ts) lists them; a new provider is a folder and one line there.
 */
export interface ProviderDescriptor<C extends { type: string } = { type: string }> {
  readonly type: string;
  readonly schema: z.ZodType<C>;
  create(name: string, cfg: C, env: ProviderEnv): Provider;
}
