// The gateway's own form of a chat request, its answer and its stream, whatever protocol the
// client spoke and whatever provider answers. Every layer may import this module; it imports
// nothing. Client protocols parse into it and render from it; providers convert it to and from
// their wire formats (src/providers/<type>/to-provider.ts, from-provider.ts).
//
// Field names are the gateway's (camelCase); values keep the meaning of OpenAI's chat
// completions, the protocol most clients speak, so that the OpenAI path stays a thin mapping.

export type JsonObject = Record<string, unknown>;

export type ImageDetail = 'auto' | 'low' | 'high';

export type ContentPart =
  | { type: 'text'; text: string }
  /** `url` is an http(s) URL or a `data:<media type>;base64,…` URL. */
  | { type: 'image'; url: string; detail?: ImageDetail };

export interface ToolCall {
  /** As the provider made it (SPEC §1); a provider without ids gets one made by the gateway. */
  id: string;
  name: string;
  /** JSON text, as generated: it may not parse. */
  arguments: string;
}

/** Reasoning the model showed, with what a provider needs to accept it back in a later turn. */
export interface Reasoning {
  text: string;
  /** Anthropic's thinking signature, or another provider's opaque token for the same purpose. */
  signature?: string;
  /** Anthropic's redacted thinking, passed back as it came. */
  redacted?: string;
}

export type Message =
  | { role: 'system' | 'developer'; content: string | ContentPart[] }
  | { role: 'user'; content: string | ContentPart[]; name?: string }
  | {
      role: 'assistant';
      content: string | ContentPart[] | null;
      toolCalls?: ToolCall[];
      reasoning?: Reasoning[];
      refusal?: string;
      name?: string;
    }
  | { role: 'tool'; toolCallId: string; content: string | ContentPart[] };

export interface Tool {
  name: string;
  description?: string;
  /** A JSON Schema for the arguments; absent means none. */
  parameters?: JsonObject;
  strict?: boolean;
}

export type ToolChoice = 'auto' | 'none' | 'required' | { name: string };

export type ResponseFormat =
  | { type: 'text' }
  | { type: 'json_object' }
  | { type: 'json_schema'; name: string; schema: JsonObject; strict?: boolean; description?: string };

export type ReasoningEffort = 'minimal' | 'low' | 'medium' | 'high';

export interface ChatRequest {
  /** The catalogue's model id the client asked for; the upstream's name travels with the call. */
  model: string;
  messages: Message[];
  tools?: Tool[];
  toolChoice?: ToolChoice;
  parallelToolCalls?: boolean;
  /** Choices requested (OpenAI `n`). */
  n: number;
  temperature?: number;
  topP?: number;
  stop?: string[];
  seed?: number;
  /** The end user, for a provider's abuse tracking (`user`, Anthropic `metadata.user_id`). */
  user?: string;
  reasoningEffort?: ReasoningEffort;
  responseFormat?: ResponseFormat;
  stream: boolean;
  /** The client asked for usage in the stream. */
  includeUsage: boolean;
  /** Parameters the gateway does not translate: passed through unchanged to providers that take them. */
  extra: JsonObject;
  /**
   * The client's body as it arrived, and the protocol it speaks. A provider whose wire format is
   * that protocol sends it on unchanged but for the model, the output cap and the stream options,
   * so that nothing the typed form does not model is lost (content parts, provider extensions).
   */
  source?: {
    protocol: ClientProtocol;
    body: JsonObject;
    /** The client's protocol headers a same-protocol provider forwards (`anthropic-version`, `anthropic-beta`), names in lower case. */
    headers?: Record<string, string>;
  };
}

/** The client protocols the gateway serves. */
export type ClientProtocol = 'openai-chat' | 'anthropic-messages' | 'openai-responses';

export type FinishReason = 'stop' | 'length' | 'tool_calls' | 'content_filter';

export interface Usage {
  /** All input tokens: uncached, cache reads and cache writes (OpenAI's `prompt_tokens`). */
  promptTokens: number;
  /** All output tokens, reasoning included (OpenAI's `completion_tokens`). */
  completionTokens: number;
  /** Input tokens read from the provider's prompt cache. */
  cachedTokens: number;
  /** Input tokens written to the provider's prompt cache (Anthropic's `cache_creation_input_tokens`). */
  cacheWriteTokens: number;
  /** Output tokens spent on reasoning. */
  reasoningTokens: number;
  /** The provider's usage object as it came, kept for audits. */
  raw?: unknown;
}

export interface ChatChoice {
  index: number;
  content: string | null;
  reasoning?: Reasoning[];
  toolCalls?: ToolCall[];
  refusal?: string;
  finishReason: FinishReason;
  /** OpenAI's log probabilities, passed through as the provider sent them. */
  logprobs?: unknown;
  /** Message fields the typed form does not model (OpenAI `annotations`, `audio`), for clients of the provider's own protocol. */
  extra?: JsonObject;
}

export interface ChatResponse {
  /** The provider's id for the answer. */
  id: string;
  /** Unix seconds. */
  created: number;
  choices: ChatChoice[];
  /** Null when the provider reported none (the gateway counts what was delivered). */
  usage: Usage | null;
  /** Top-level fields the typed form does not model (OpenAI `system_fingerprint`, `service_tier`). */
  extra?: JsonObject;
  /**
   * The provider's answer as it came, when the provider speaks the client's protocol (a request
   * passed through): that protocol's encoder sends it on (with the client's model name), so
   * nothing the typed form does not model is lost. The typed fields are filled all the same
   * (billing counts them).
   */
  native?: { protocol: ClientProtocol; body: JsonObject };
}

/**
 * What a stream carries, in order. Tool calls are numbered per choice from 0 in the order they
 * start (OpenAI's `index`), whatever the provider's own block numbering.
 */
export type StreamEvent =
  /** At most once, first. `extra`: top-level fields of the provider's own protocol (OpenAI `system_fingerprint`). */
  | { type: 'start'; id: string; created: number; extra?: JsonObject }
  | { type: 'text'; choice: number; text: string; logprobs?: unknown }
  | { type: 'refusal'; choice: number; text: string }
  | { type: 'reasoning'; choice: number; text: string }
  /** The signature that closes a reasoning block (Anthropic's `signature_delta`). */
  | { type: 'reasoning_signature'; choice: number; signature: string }
  /** Anthropic's redacted thinking, whole. */
  | { type: 'reasoning_redacted'; choice: number; data: string }
  | { type: 'tool_call_start'; choice: number; index: number; id: string; name: string }
  | { type: 'tool_call_delta'; choice: number; index: number; arguments: string }
  | { type: 'finish'; choice: number; reason: FinishReason }
  /** The provider's usage, numbers as reported (billing decides whether to believe them); may come more than once, the last counts. */
  | { type: 'usage'; usage: Usage }
  /**
   * One upstream SSE event as it came, when the provider speaks the client's protocol (a request
   * passed through). That protocol's encoder writes these (with the client's model name) and
   * ignores the typed events, which come beside them for billing and the output cap; every
   * other encoder ignores these.
   */
  | { type: 'native'; protocol: ClientProtocol; event: string | null; data: string };
