// The parts of OpenAI's wire format the gateway reads. Everything else passes through untouched.

export interface OpenAIUsage {
  prompt_tokens?: number;
  completion_tokens?: number;
  total_tokens?: number;
  prompt_tokens_details?: { cached_tokens?: number } | null;
  completion_tokens_details?: { reasoning_tokens?: number } | null;
  /** DeepSeek reports cache hits here instead. */
  prompt_cache_hit_tokens?: number;
}

export interface OpenAIChunk {
  id?: string;
  object?: string;
  model?: string;
  choices?: { index: number; delta?: { content?: string | null }; finish_reason?: string | null }[];
  usage?: OpenAIUsage | null;
}
