import type { JsonObject } from '../types/chat.js';
import type { RequestHeaders } from './endpoint.js';

// The session a request names, for affinity (SPEC §7). Long values are kept out of the affinity
// table's memory: a session id is an id, not a payload.
const MAX_SESSION = 256;

const usable = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' && v.length <= MAX_SESSION ? v : undefined);

/** `x-session-id`, whichever API the client speaks. */
export const sessionHeader = (h: RequestHeaders): string | undefined => usable(h['x-session-id']);

/** OpenAI's chat completions and Responses: `prompt_cache_key`, else `user`. */
export const openAISession = (body: JsonObject, h: RequestHeaders): string | undefined =>
  sessionHeader(h) ?? usable(body['prompt_cache_key']) ?? usable(body['user']);

/** Anthropic Messages: `metadata.user_id`. */
export function anthropicSession(body: JsonObject, h: RequestHeaders): string | undefined {
  const m = body['metadata'];
  return sessionHeader(h) ?? (m !== null && typeof m === 'object' && !Array.isArray(m) ? usable((m as JsonObject)['user_id']) : undefined);
}
