import { randomBytes } from 'node:crypto';
import type { TokenUsage } from '../../providers/types.js';
import type { ChatResponse, FinishReason, JsonObject } from '../../types/chat.js';

// The gateway's typed answers as OpenAI Response objects. Reasoning goes out as a reasoning
// item's summary (`summary_text`): the part of the Responses grammar clients render (the Vercel
// AI SDK reads only reasoning summaries), whatever the provider called it.

/** A fresh id in OpenAI's style (`resp_…`, `msg_…`): translated answers have no Responses id of their own. */
export function newId(prefix: string): string {
  return `${prefix}_${randomBytes(24).toString('hex')}`;
}

/** Responses' `usage` for what was billed, with its cost in USD like the chat route's. */
export function responsesUsage(u: TokenUsage, cost: number): JsonObject {
  return {
    input_tokens: u.promptTokens,
    input_tokens_details: { cached_tokens: u.cachedTokens },
    output_tokens: u.completionTokens,
    output_tokens_details: { reasoning_tokens: u.reasoningTokens },
    total_tokens: u.promptTokens + u.completionTokens,
    cost,
  };
}

/** Where a response stopped: `completed`, or `incomplete` with Responses' reason. */
export function statusOf(reason: FinishReason | null): { status: 'completed' | 'incomplete'; incomplete_details: { reason: string } | null } {
  if (reason === 'length') return { status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' } };
  if (reason === 'content_filter') return { status: 'incomplete', incomplete_details: { reason: 'content_filter' } };
  return { status: 'completed', incomplete_details: null };
}

/** The request's settings a Response object repeats back (OpenAI echoes them; SDK types expect them). */
export function echoOf(body: JsonObject): JsonObject {
  const pick = <T>(k: string, dflt: T): unknown => (body[k] === undefined ? dflt : body[k]);
  return {
    instructions: pick('instructions', null),
    max_output_tokens: pick('max_output_tokens', null),
    metadata: pick('metadata', {}),
    parallel_tool_calls: pick('parallel_tool_calls', true),
    previous_response_id: null,
    reasoning: pick('reasoning', null),
    store: pick('store', true),
    temperature: pick('temperature', null),
    text: pick('text', { format: { type: 'text' } }),
    tool_choice: pick('tool_choice', 'auto'),
    tools: pick('tools', []),
    top_p: pick('top_p', null),
    truncation: pick('truncation', 'disabled'),
    user: pick('user', null),
  };
}

/** The skeleton every Response object shares; the caller fills status, output and usage. */
export function responseObject(id: string, created: number, model: string, echo: JsonObject): JsonObject {
  return { id, object: 'response', created_at: created, status: 'in_progress', error: null, incomplete_details: null, model, output: [], usage: null, ...echo };
}

export const messageItem = (id: string, text: string, refusal: string | undefined, status: string): JsonObject => {
  const content: JsonObject[] = [];
  if (text !== '' || refusal === undefined) content.push(outputText(text));
  if (refusal !== undefined) content.push({ type: 'refusal', refusal });
  return { id, type: 'message', status, role: 'assistant', content };
};

export const outputText = (text: string): JsonObject => ({ type: 'output_text', text, annotations: [], logprobs: [] });

export const reasoningItem = (id: string, text: string): JsonObject => ({ id, type: 'reasoning', summary: [{ type: 'summary_text', text }] });

export const functionCallItem = (id: string, callId: string, name: string, args: string, status: string): JsonObject => ({
  id, type: 'function_call', status, call_id: callId, name, arguments: args,
});

/** A whole typed answer (its first choice: Responses has no `n`) as a Response object. */
export function encodeResponse(r: ChatResponse, model: string, echo: JsonObject, usage: JsonObject): JsonObject {
  const id = newId('resp');
  const suffix = id.slice(5, 21);
  const c = r.choices[0];
  const output: JsonObject[] = [];
  let text = '';
  if (c !== undefined) {
    const reasoning = (c.reasoning ?? []).map((x) => x.text).join('');
    if (reasoning !== '') output.push(reasoningItem(`rs_${suffix}`, reasoning));
    if ((c.content !== null && c.content !== '') || c.refusal !== undefined) {
      text = c.content ?? '';
      output.push(messageItem(`msg_${suffix}`, text, c.refusal, 'completed'));
    }
    for (const [i, t] of (c.toolCalls ?? []).entries()) output.push(functionCallItem(`fc_${suffix}${i}`, t.id, t.name, t.arguments, 'completed'));
  }
  return { ...responseObject(id, r.created, model, echo), ...statusOf(c?.finishReason ?? null), output, output_text: text, usage };
}
