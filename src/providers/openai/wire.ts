// The parts of OpenAI's chat-completions wire format the gateway reads or writes. Fields the
// typed form does not model ride along in the typed form's `extra` and come back unchanged.

export interface OpenAIUsage {
  prompt_tokens?: number;
  completion_tokens?: number;
  total_tokens?: number;
  prompt_tokens_details?: { cached_tokens?: number } | null;
  completion_tokens_details?: { reasoning_tokens?: number } | null;
  /** DeepSeek reports cache hits here instead. */
  prompt_cache_hit_tokens?: number;
}

export interface OpenAIToolCall {
  index?: number;
  id?: string;
  type?: string;
  function?: { name?: string; arguments?: string };
}

export interface OpenAIMessage {
  role?: string;
  content?: string | null;
  /** DeepSeek, vLLM and others put reasoning here; some use `reasoning`. */
  reasoning_content?: string | null;
  reasoning?: string | null;
  refusal?: string | null;
  tool_calls?: OpenAIToolCall[] | null;
  /** The legacy single function call. */
  function_call?: { name?: string; arguments?: string } | null;
  [other: string]: unknown;
}

export interface OpenAIChoice {
  index?: number;
  message?: OpenAIMessage;
  delta?: OpenAIMessage;
  finish_reason?: string | null;
  logprobs?: unknown;
}

export interface OpenAICompletion {
  id?: string;
  object?: string;
  created?: number;
  model?: string;
  choices?: OpenAIChoice[];
  usage?: OpenAIUsage | null;
  [other: string]: unknown;
}

/** A `chat.completion.chunk`; the same fields, with `delta` in place of `message`. */
export type OpenAIChunk = OpenAICompletion;
