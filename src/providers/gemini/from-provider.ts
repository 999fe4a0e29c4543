import { randomBase62 } from '../../store/ids.js';
import type { ChatChoice, ChatResponse, FinishReason, StreamEvent, ToolCall, Usage } from '../../types/chat.js';
import { UpstreamError } from '../upstream-error.js';
import { encodeCallId, randomCallId, type IdMaker } from './tool-ids.js';
import type { GeminiCandidate, GeminiErrorBody, GeminiPart, GeminiResponse, GeminiUsageMetadata } from './wire.js';

/** Finish reasons that mean a safety or policy filter stopped the answer. */
const FILTERED = new Set([
  'SAFETY',
  'RECITATION',
  'BLOCKLIST',
  'PROHIBITED_CONTENT',
  'SPII',
  'IMAGE_SAFETY',
  'IMAGE_PROHIBITED_CONTENT',
  'IMAGE_RECITATION',
]);

/**
 * Gemini's finishReason → OpenAI's. STOP after function calls is `tool_calls` (Gemini has no reason
 * of its own for it); the rest (OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL, …) end the answer
 * without a better OpenAI word, so `stop`.
 */
export function mapFinishReason(reason: string, hasToolCalls: boolean): FinishReason {
  if (reason === 'STOP') return hasToolCalls ? 'tool_calls' : 'stop';
  if (reason === 'MAX_TOKENS') return 'length';
  if (FILTERED.has(reason)) return 'content_filter';
  return 'stop';
}

/**
 * usageMetadata → the gateway's usage, numbers as reported (a present non-number is NaN, missing 0).
 * promptTokenCount already includes cached tokens; tool-use prompt tokens (code execution, search)
 * are billed by Google as input but counted apart, so they are added to the prompt. Thoughts are
 * counted apart from candidates and billed as output.
 */
export function fromUsage(u: GeminiUsageMetadata | undefined): Usage | null {
  if (u === undefined || u === null || typeof u !== 'object') return null;
  const thoughts = count(u.thoughtsTokenCount);
  return {
    promptTokens: count(u.promptTokenCount) + count(u.toolUsePromptTokenCount),
    completionTokens: count(u.candidatesTokenCount) + thoughts,
    cachedTokens: count(u.cachedContentTokenCount),
    cacheWriteTokens: 0,
    reasoningTokens: thoughts,
    raw: u,
  };
}

function count(v: unknown): number {
  if (v === undefined || v === null) return 0;
  return typeof v === 'number' ? v : Number.NaN;
}

/** A prompt Gemini refused to answer: a client fault (400) that names the reason. */
export function blockedPrompt(res: GeminiResponse): UpstreamError | null {
  const reason = res.promptFeedback?.blockReason;
  if (reason === undefined || (res.candidates !== undefined && res.candidates.length > 0)) return null;
  const message = `The prompt was blocked by the provider: ${reason}`;
  return new UpstreamError('status', message, {
    status: 400,
    body: JSON.stringify({ error: { message, type: 'invalid_request_error', code: 'prompt_blocked' } }),
  });
}

/** An error object inside a 200 body or an SSE event. */
export function errorInBody(res: GeminiErrorBody, text: string): UpstreamError | null {
  if (res.error === undefined || res.error === null) return null;
  const status = typeof res.error.code === 'number' && res.error.code >= 400 ? res.error.code : 500;
  return mapError(new UpstreamError('status', `upstream sent an error: ${res.error.status ?? status}`, { status, body: text }));
}

/**
 * Gemini's error statuses in the gateway's terms. A rejected API key is a 400 INVALID_ARGUMENT at
 * Google, but the gateway's own credential is at fault, not the client's request: it becomes a
 * 401 (→ 502). RESOURCE_EXHAUSTED carries its wait in google.rpc.RetryInfo, not in a header: it is
 * copied to `retry-after` so the gateway's 503 tells the client when to come back.
 */
export function mapError(e: UpstreamError): UpstreamError {
  if (e.failure !== 'status') return e;
  const err = parseError(e.body);
  const details = Array.isArray(err?.details) ? err.details : [];
  const keyRejected = details.some((d) => d?.reason === 'API_KEY_INVALID') || (e.status === 400 && /API key not valid/i.test(err?.message ?? ''));
  if (keyRejected) {
    return new UpstreamError('status', 'upstream rejected the API key', { status: 401, headers: e.headers, body: e.body, cause: e });
  }
  if (e.status === 429 || err?.status === 'RESOURCE_EXHAUSTED') {
    const delay = details.map((d) => d?.retryDelay).find((d): d is string => typeof d === 'string');
    const seconds = delay === undefined ? null : parseDuration(delay);
    if (e.status === 429 && (seconds === null || e.headers['retry-after'] !== undefined)) return e;
    const headers = { ...e.headers };
    if (seconds !== null && headers['retry-after'] === undefined) headers['retry-after'] = String(Math.ceil(seconds));
    return new UpstreamError('status', e.message, { status: 429, headers, body: e.body, cause: e });
  }
  return e;
}

function parseError(body: string): GeminiErrorBody['error'] | null {
  try {
    const v = JSON.parse(body) as GeminiErrorBody;
    return v !== null && typeof v === 'object' && v.error !== null && typeof v.error === 'object' ? v.error : null;
  } catch {
    return null;
  }
}

/** A protobuf Duration in JSON (`"30s"`, `"1.5s"`) as seconds. */
export function parseDuration(d: string): number | null {
  const m = /^(\d+(?:\.\d+)?)s$/.exec(d.trim());
  return m === null ? null : Number(m[1]);
}

const candidateIndex = (c: GeminiCandidate, position: number): number => (typeof c.index === 'number' ? c.index : position);

function toolCallOf(part: GeminiPart, makeId: IdMaker): ToolCall {
  const fc = part.functionCall!;
  const ref: { geminiId?: string; thoughtSignature?: string } = {};
  if (fc.id !== undefined) ref.geminiId = fc.id;
  if (part.thoughtSignature !== undefined) ref.thoughtSignature = part.thoughtSignature;
  return { id: encodeCallId(ref, makeId), name: fc.name, arguments: JSON.stringify(fc.args ?? {}) };
}

/** A whole generateContent answer → the typed form. Throws the 400 of a blocked prompt. */
export function fromResponse(res: GeminiResponse, makeId: IdMaker = randomCallId, now: () => number = nowSeconds): ChatResponse {
  const failure = errorInBody(res as GeminiErrorBody, JSON.stringify(res)) ?? blockedPrompt(res);
  if (failure !== null) throw failure;
  const candidates = res.candidates ?? [];
  if (candidates.length === 0) throw new UpstreamError('protocol', 'upstream sent an answer without candidates');
  const choices = candidates.map((c, position): ChatChoice => {
    let text = '';
    let thoughts = '';
    const toolCalls: ToolCall[] = [];
    for (const part of c.content?.parts ?? []) {
      if (part.functionCall !== undefined) toolCalls.push(toolCallOf(part, makeId));
      else if (typeof part.text === 'string') {
        if (part.thought === true) thoughts += part.text;
        else text += part.text;
      }
    }
    const choice: ChatChoice = {
      index: candidateIndex(c, position),
      content: text === '' ? null : text,
      finishReason: mapFinishReason(c.finishReason ?? 'STOP', toolCalls.length > 0),
    };
    if (thoughts !== '') choice.reasoning = [{ text: thoughts }];
    if (toolCalls.length > 0) choice.toolCalls = toolCalls;
    return choice;
  });
  choices.sort((a, b) => a.index - b.index);
  return { id: res.responseId ?? `gemini-${randomBase62(20)}`, created: now(), choices, usage: fromUsage(res.usageMetadata) };
}

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

interface CandidateState {
  calls: number;
  finished: boolean;
}

/**
 * streamGenerateContent chunks → StreamEvents. Each chunk is a GenerateContentResponse holding
 * what is new; function calls come whole (a start and one delta with all the arguments).
 * Usage comes in every chunk, cumulative: the last is kept and reported by `end`.
 */
export class GeminiStreamConverter {
  private started = false;
  private readonly candidates = new Map<number, CandidateState>();
  private usage: GeminiUsageMetadata | undefined;

  constructor(
    private readonly makeId: IdMaker = randomCallId,
    private readonly now: () => number = nowSeconds,
  ) {}

  /** The events of one chunk (its SSE data, parsed). Throws an error event or a blocked prompt as an UpstreamError. */
  push(chunk: GeminiResponse, text = ''): StreamEvent[] {
    const failure = errorInBody(chunk as GeminiErrorBody, text === '' ? JSON.stringify(chunk) : text) ?? blockedPrompt(chunk);
    if (failure !== null) throw failure;
    const out: StreamEvent[] = [];
    if (!this.started) {
      this.started = true;
      out.push({ type: 'start', id: chunk.responseId ?? `gemini-${randomBase62(20)}`, created: this.now() });
    }
    if (chunk.usageMetadata !== undefined) this.usage = chunk.usageMetadata;
    (chunk.candidates ?? []).forEach((c, position) => {
      const choice = candidateIndex(c, position);
      let st = this.candidates.get(choice);
      if (st === undefined) {
        st = { calls: 0, finished: false };
        this.candidates.set(choice, st);
      }
      for (const part of c.content?.parts ?? []) {
        if (part.functionCall !== undefined) {
          const call = toolCallOf(part, this.makeId);
          const index = st.calls++;
          out.push({ type: 'tool_call_start', choice, index, id: call.id, name: call.name });
          out.push({ type: 'tool_call_delta', choice, index, arguments: call.arguments });
        } else if (typeof part.text === 'string' && part.text !== '') {
          out.push({ type: part.thought === true ? 'reasoning' : 'text', choice, text: part.text });
        }
      }
      if (c.finishReason !== undefined && c.finishReason !== '' && !st.finished) {
        st.finished = true;
        out.push({ type: 'finish', choice, reason: mapFinishReason(c.finishReason, st.calls > 0) });
      }
    });
    return out;
  }

  /** The stream ended: whole only if every candidate finished; then its usage. */
  end(): StreamEvent[] {
    const states = [...this.candidates.values()];
    if (states.length === 0 || states.some((s) => !s.finished)) {
      throw new UpstreamError('reset', 'upstream stream ended before its finish reason');
    }
    const usage = fromUsage(this.usage);
    return usage === null ? [] : [{ type: 'usage', usage }];
  }
}
