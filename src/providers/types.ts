// One interface for every provider. The gateway speaks OpenAI's chat-completions shape inside;
// an adapter converts to and from its provider's wire format. Retries, failover, metering and
// billing wrap adapters (src/routing, src/billing); they never live inside one.

export type JsonObject = Record<string, unknown>;

export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  /** Input tokens written to the provider's prompt cache (Anthropic's cache_creation_input_tokens); part of promptTokens. */
  cacheWriteTokens: number;
  /** Output tokens spent on reasoning; part of completionTokens. */
  reasoningTokens: number;
}

export interface ChatCall {
  /** The client's body, every parameter as sent; adapters pass through what they do not translate. */
  body: JsonObject;
  /** The deployment's model name at the provider. */
  upstreamModel: string;
  /** The output cap the gateway set (the client's, or what the balance affords); null leaves it to the provider. */
  maxTokens: number | null;
  signal: AbortSignal;
}

export interface ChatResult {
  /** An OpenAI `chat.completion` object. */
  body: JsonObject;
  usage: TokenUsage | null;
}

/** A byte range [start, end) of a body. */
export type Span = readonly [start: number, end: number];

/** Where a JSON object's top-level `model` and `usage` values are in its bytes. */
export interface TopLevel {
  model: Span[];
  usage: Span[];
  /** The index of the closing brace, where a missing `model` goes. */
  close: number;
  empty: boolean;
}

/** A JSON object as the upstream's bytes, holding its share of the buffer budget until `release`. */
export interface RawJson extends TopLevel {
  bytes: Buffer;
  release: () => void;
}

/**
 * An embeddings answer relayed as the upstream sent it, with only `model` and `usage` rewritten:
 * parsing and re-serialising ~100 MB of vectors would hold several copies of them at once.
 */
export interface RawResult {
  raw: RawJson;
  usage: TokenUsage | null;
}

/**
 * An open upstream stream, already past the provider's response headers and its first event, so
 * that whoever relays it knows the upstream accepted the request before sending a byte to the client.
 */
export interface ChatStream extends AsyncIterable<JsonObject> {
  /** Usage reported by the provider, once its usage chunk has gone by. */
  readonly usage: TokenUsage | null;
}

export interface EmbeddingsCall {
  body: JsonObject;
  upstreamModel: string;
  signal: AbortSignal;
}

export interface Provider {
  readonly name: string;
  readonly type: string;
  /** Strings a client must never see in an upstream message: the provider's credential and host. */
  readonly secrets: readonly string[];
  chat(call: ChatCall): Promise<ChatResult>;
  chatStream(call: ChatCall): Promise<ChatStream>;
  embeddings(call: EmbeddingsCall): Promise<ChatResult | RawResult>;
  close(): Promise<void>;
}
