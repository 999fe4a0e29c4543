import type { ChatChoice, ChatResponse, FinishReason, JsonObject, Reasoning, StreamEvent, ToolCall, Usage } from '../../types/chat.js';
import type { OpenAIChoice, OpenAIChunk, OpenAICompletion, OpenAIMessage, OpenAIToolCall, OpenAIUsage } from './wire.js';

// OpenAI's answers and chunks in the typed form. Pure functions; the adapter (index.ts) feeds them.

/**
 * OpenAI usage → the gateway's, numbers as the provider sent them; null when it sent none.
 * Whether they are believable is billing's call (billing/bill.ts), so a field that is present but
 * not a number becomes NaN rather than a silent 0 that would undercharge.
 */
export function fromUsage(u: OpenAIUsage | null | undefined): Usage | null {
  if (u === null || u === undefined || typeof u !== 'object' || Array.isArray(u)) return null;
  if ((u.prompt_tokens === undefined || u.prompt_tokens === null) && (u.completion_tokens === undefined || u.completion_tokens === null)) return null;
  const details = u.prompt_tokens_details;
  const cached = details !== null && typeof details === 'object' && details.cached_tokens !== undefined ? details.cached_tokens : u.prompt_cache_hit_tokens;
  const completionDetails = u.completion_tokens_details;
  const reasoning = completionDetails !== null && typeof completionDetails === 'object' ? completionDetails.reasoning_tokens : undefined;
  return {
    // A prompt count that is absent or null while usage came is not believable (NaN): it would bill as 0.
    // An absent completion count is 0: embeddings report none.
    promptTokens: typeof u.prompt_tokens === 'number' ? u.prompt_tokens : Number.NaN,
    completionTokens: u.completion_tokens === undefined ? 0 : typeof u.completion_tokens === 'number' ? u.completion_tokens : Number.NaN,
    cachedTokens: count(cached),
    // OpenAI-compatible APIs report no prompt-cache writes (OpenAI's caching has no write charge).
    cacheWriteTokens: 0,
    reasoningTokens: count(reasoning),
    raw: u,
  };
}

function count(v: unknown): number {
  if (v === undefined || v === null) return 0;
  return typeof v === 'number' ? v : Number.NaN;
}

/** OpenAI's finish reasons, and the legacy and vendor ones, in the gateway's four. */
export function fromFinishReason(r: unknown): FinishReason {
  switch (r) {
    case 'length':
      return 'length';
    case 'tool_calls':
    case 'function_call':
      return 'tool_calls';
    case 'content_filter':
      return 'content_filter';
    default:
      return 'stop';
  }
}

const MESSAGE_FIELDS = new Set(['role', 'content', 'reasoning_content', 'reasoning', 'refusal', 'tool_calls', 'function_call']);
const TOP_FIELDS = new Set(['id', 'object', 'created', 'model', 'choices', 'usage']);

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** A `chat.completion` in the typed form; fields it does not model go to `extra`. */
export function fromCompletion(body: OpenAICompletion): ChatResponse {
  const choices = Array.isArray(body.choices) ? body.choices : [];
  const out: ChatResponse = {
    id: str(body.id) ?? 'chatcmpl-token360',
    created: typeof body.created === 'number' ? body.created : Math.floor(Date.now() / 1000),
    choices: choices.filter((c) => c !== null && typeof c === 'object').map(fromChoice),
    usage: fromUsage(body.usage),
  };
  const extra = others(body, TOP_FIELDS);
  if (extra !== undefined) out.extra = extra;
  return out;
}

function fromChoice(c: OpenAIChoice, i: number): ChatChoice {
  const m: OpenAIMessage = c.message !== null && typeof c.message === 'object' ? c.message : {};
  const out: ChatChoice = { index: typeof c.index === 'number' ? c.index : i, content: str(m.content) ?? null, finishReason: fromFinishReason(c.finish_reason) };
  const reasoning = str(m.reasoning_content) ?? str(m.reasoning);
  if (reasoning !== undefined && reasoning !== '') out.reasoning = [{ text: reasoning } satisfies Reasoning];
  const calls = toolCalls(m);
  if (calls.length > 0) out.toolCalls = calls;
  const refusal = str(m.refusal);
  if (refusal !== undefined) out.refusal = refusal;
  if (c.logprobs !== undefined && c.logprobs !== null) out.logprobs = c.logprobs;
  const extra = others(m, MESSAGE_FIELDS);
  if (extra !== undefined) out.extra = extra;
  return out;
}

function toolCalls(m: OpenAIMessage): ToolCall[] {
  const raw: OpenAIToolCall[] = Array.isArray(m.tool_calls) ? m.tool_calls : m.function_call ? [{ id: 'call_0', function: m.function_call }] : [];
  const out: ToolCall[] = [];
  for (const t of raw) {
    if (t === null || typeof t !== 'object') continue;
    const f = t.function ?? {};
    out.push({ id: str(t.id) ?? '', name: str(f.name) ?? '', arguments: typeof f.arguments === 'string' ? f.arguments : JSON.stringify(f.arguments ?? {}) });
  }
  return out;
}

function others(o: Record<string, unknown>, known: Set<string>): JsonObject | undefined {
  let out: JsonObject | undefined;
  for (const [k, v] of Object.entries(o)) {
    if (known.has(k) || v === undefined) continue;
    (out ??= {})[k] = v;
  }
  return out;
}

/**
 * Chunks → stream events, one chunk at a time, for one stream. Tool calls are renumbered per
 * choice in the order they start: OpenAI-compatible servers differ (some omit `index`, some send
 * every call at index 0 with a new id), so a call is new when its (index, id) has not been seen.
 */
export class ChunkReader {
  private started = false;
  /** Per choice: upstream key of each tool call → our index. */
  private readonly calls = new Map<number, { byKey: Map<string, number>; last: number }>();
  finished = false;

  read(chunk: OpenAIChunk, out: StreamEvent[]): void {
    if (!this.started) {
      this.started = true;
      const extra: JsonObject = {};
      if (chunk['system_fingerprint'] !== undefined && chunk['system_fingerprint'] !== null) extra['system_fingerprint'] = chunk['system_fingerprint'];
      out.push({
        type: 'start',
        id: str(chunk.id) ?? 'chatcmpl-token360',
        created: typeof chunk.created === 'number' ? chunk.created : Math.floor(Date.now() / 1000),
        ...(Object.keys(extra).length > 0 ? { extra } : {}),
      });
    }
    if (Array.isArray(chunk.choices)) {
      for (const c of chunk.choices) {
        if (c === null || typeof c !== 'object') continue;
        const choice = typeof c.index === 'number' ? c.index : 0;
        const d = c.delta;
        if (d !== null && typeof d === 'object') this.delta(choice, d, c.logprobs, out);
        // Older Ollama and sglang send `finish_reason: ""` on every piece: only a reason is a finish.
        if (typeof c.finish_reason === 'string' && c.finish_reason !== '') {
          this.finished = true;
          out.push({ type: 'finish', choice, reason: fromFinishReason(c.finish_reason) });
        }
      }
    }
    const usage = fromUsage(chunk.usage);
    if (usage !== null) out.push({ type: 'usage', usage });
  }

  private delta(choice: number, d: OpenAIMessage, logprobs: unknown, out: StreamEvent[]): void {
    const reasoning = str(d.reasoning_content) ?? str(d.reasoning);
    if (reasoning !== undefined && reasoning !== '') out.push({ type: 'reasoning', choice, text: reasoning });
    const content = str(d.content);
    if (content !== undefined && content !== '') {
      out.push(logprobs !== undefined && logprobs !== null ? { type: 'text', choice, text: content, logprobs } : { type: 'text', choice, text: content });
    }
    const refusal = str(d.refusal);
    if (refusal !== undefined && refusal !== '') out.push({ type: 'refusal', choice, text: refusal });
    const calls = Array.isArray(d.tool_calls) ? d.tool_calls : d.function_call ? [{ index: 0, function: d.function_call }] : [];
    for (const t of calls) {
      if (t === null || typeof t !== 'object') continue;
      const index = this.callIndex(choice, t, out);
      const args = t.function?.arguments;
      if (typeof args === 'string' && args !== '') out.push({ type: 'tool_call_delta', choice, index, arguments: args });
    }
  }

  private callIndex(choice: number, t: OpenAIToolCall, out: StreamEvent[]): number {
    let state = this.calls.get(choice);
    if (state === undefined) this.calls.set(choice, (state = { byKey: new Map(), last: -1 }));
    // Some servers send `"id": ""` and repeat the name on every piece (DashScope, vLLM forks): empty means absent.
    const id = nonEmpty(t.id);
    const name = nonEmpty(t.function?.name);
    const upstream = typeof t.index === 'number' ? t.index : null;
    if (id === undefined) {
      // A piece without an id continues the call at its index, whatever name it repeats; without an index, the last call.
      if (upstream !== null) {
        let found = -1;
        for (const [key, ours] of state.byKey) if (key.startsWith(`${upstream}:`)) found = ours;
        if (found >= 0) return found;
      } else if (name === undefined && state.last >= 0) {
        return state.last;
      }
    } else {
      const known = state.byKey.get(`${upstream ?? ''}:${id}`);
      if (known !== undefined) return known;
    }
    const ours = state.byKey.size;
    state.byKey.set(`${upstream ?? ''}:${id ?? `#${ours}`}`, ours);
    state.last = ours;
    out.push({ type: 'tool_call_start', choice, index: ours, id: id ?? `call_${ours}`, name: name ?? '' });
    return ours;
  }
}

function nonEmpty(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}
