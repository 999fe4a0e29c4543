import type { ChatResponse, FinishReason, Reasoning, StreamEvent, ToolCall, Usage } from '../../types/chat.js';
import { UpstreamError } from '../upstream-error.js';
import type { AnthropicErrorBody, AnthropicResponse, AnthropicResponseBlock, AnthropicStreamEvent, AnthropicUsage } from './wire.js';

/** Anthropic's stop reasons as OpenAI finish reasons; a reason added later counts as a normal stop. */
export function finishReason(reason: string | null | undefined): FinishReason {
  switch (reason) {
    case 'max_tokens':
    case 'model_context_window_exceeded':
      return 'length';
    case 'tool_use':
      return 'tool_calls';
    case 'refusal':
      return 'content_filter';
    default:
      // end_turn, stop_sequence, pause_turn (a server tool's turn paused; the answer so far is whole).
      return 'stop';
  }
}

/**
 * Anthropic usage → the gateway's, numbers as reported (billing decides whether to believe them:
 * a present non-number becomes NaN, missing or null is 0). Anthropic's input_tokens leaves out
 * cache reads and writes; the gateway's prompt count includes both. Anthropic does not report
 * thinking tokens apart from output_tokens, so reasoningTokens is 0 (they are billed as output).
 */
export function fromUsage(u: AnthropicUsage | null | undefined): Usage | null {
  if (u === null || u === undefined || typeof u !== 'object') return null;
  if (u.input_tokens === undefined && u.output_tokens === undefined) return null;
  const cacheRead = count(u.cache_read_input_tokens);
  const cacheWrite = count(u.cache_creation_input_tokens);
  return {
    promptTokens: count(u.input_tokens) + cacheRead + cacheWrite,
    completionTokens: count(u.output_tokens),
    cachedTokens: cacheRead,
    cacheWriteTokens: cacheWrite,
    reasoningTokens: 0,
    raw: u,
  };
}

function count(v: unknown): number {
  if (v === undefined || v === null) return 0;
  return typeof v === 'number' ? v : Number.NaN;
}

/** A Messages API answer as the gateway's typed answer. `now` is Unix seconds (Anthropic sends no time). */
export function fromMessage(msg: AnthropicResponse, now: number): ChatResponse {
  const texts: string[] = [];
  const reasoning: Reasoning[] = [];
  const toolCalls: ToolCall[] = [];
  for (const block of Array.isArray(msg.content) ? msg.content : []) {
    switch (block.type) {
      case 'text':
        texts.push(block.text ?? '');
        break;
      case 'thinking':
        reasoning.push({ text: block.thinking ?? '', ...(block.signature ? { signature: block.signature } : {}) });
        break;
      case 'redacted_thinking':
        reasoning.push({ text: '', redacted: block.data ?? '' });
        break;
      case 'tool_use':
        toolCalls.push({ id: block.id ?? '', name: block.name ?? '', arguments: JSON.stringify(block.input ?? {}) });
        break;
      default:
      // Server tools' blocks (web search and its results) have no place in an OpenAI answer.
    }
  }
  return {
    id: msg.id ?? '',
    created: now,
    choices: [
      {
        index: 0,
        content: texts.length > 0 ? texts.join('') : null,
        ...(reasoning.length > 0 ? { reasoning } : {}),
        ...(toolCalls.length > 0 ? { toolCalls } : {}),
        finishReason: finishReason(msg.stop_reason),
      },
    ],
    usage: fromUsage(msg.usage),
  };
}

type Block = { kind: 'text' | 'thinking' | 'other' } | { kind: 'tool'; index: number };

/**
 * Anthropic stream events → the gateway's StreamEvents, one event at a time. Tool calls are
 * numbered from 0 in the order they start (Anthropic numbers all content blocks). Usage comes in
 * two halves: message_start has the input counts, message_delta the cumulative output (and, in
 * newer API versions, the input counts again); the merged object is emitted after message_delta.
 */
export class StreamConverter {
  private readonly blocks = new Map<number, Block>();
  private tools = 0;
  private usage: AnthropicUsage | null = null;
  private usageSent = false;
  private finished = false;
  /** message_stop came: the stream is whole. */
  done = false;

  constructor(private readonly now: number) {}

  step(ev: AnthropicStreamEvent): StreamEvent[] {
    switch (ev.type) {
      case 'message_start':
        this.usage = ev.message?.usage ?? null;
        return [{ type: 'start', id: ev.message?.id ?? '', created: this.now }];
      case 'content_block_start':
        return this.start(ev.index, ev.content_block);
      case 'content_block_delta':
        return this.delta(ev.index, ev.delta);
      case 'content_block_stop':
      case 'ping':
        return [];
      case 'message_delta': {
        const out: StreamEvent[] = [];
        if (ev.delta?.stop_reason !== undefined && ev.delta.stop_reason !== null && !this.finished) {
          this.finished = true;
          out.push({ type: 'finish', choice: 0, reason: finishReason(ev.delta.stop_reason) });
        }
        if (ev.usage !== undefined && ev.usage !== null) {
          this.usage = { ...this.usage, ...present(ev.usage) };
          const usage = fromUsage(this.usage);
          if (usage !== null) {
            this.usageSent = true;
            out.push({ type: 'usage', usage });
          }
        }
        return out;
      }
      case 'message_stop': {
        this.done = true;
        const out: StreamEvent[] = [];
        if (!this.finished) {
          this.finished = true;
          out.push({ type: 'finish', choice: 0, reason: 'stop' });
        }
        const usage = this.usageSent ? null : fromUsage(this.usage);
        if (usage !== null) out.push({ type: 'usage', usage });
        return out;
      }
      case 'error':
        throw streamError(ev);
      default:
        // Anthropic may add event types (its versioning policy says so): they are skipped.
        return [];
    }
  }

  private start(index: number, block: AnthropicResponseBlock | undefined): StreamEvent[] {
    switch (block?.type) {
      case 'text':
        this.blocks.set(index, { kind: 'text' });
        return block.text ? [{ type: 'text', choice: 0, text: block.text }] : [];
      case 'thinking': {
        this.blocks.set(index, { kind: 'thinking' });
        const out: StreamEvent[] = [];
        if (block.thinking) out.push({ type: 'reasoning', choice: 0, text: block.thinking });
        if (block.signature) out.push({ type: 'reasoning_signature', choice: 0, signature: block.signature });
        return out;
      }
      case 'redacted_thinking':
        this.blocks.set(index, { kind: 'other' });
        return [{ type: 'reasoning_redacted', choice: 0, data: block.data ?? '' }];
      case 'tool_use': {
        const tool = this.tools++;
        this.blocks.set(index, { kind: 'tool', index: tool });
        const out: StreamEvent[] = [{ type: 'tool_call_start', choice: 0, index: tool, id: block.id ?? '', name: block.name ?? '' }];
        // Anthropic starts with `input: {}` and streams the arguments; a start that carries them whole is taken as is.
        const input = block.input;
        if (input !== null && typeof input === 'object' && Object.keys(input).length > 0) {
          out.push({ type: 'tool_call_delta', choice: 0, index: tool, arguments: JSON.stringify(input) });
        }
        return out;
      }
      default:
        this.blocks.set(index, { kind: 'other' });
        return [];
    }
  }

  private delta(index: number, delta: Extract<AnthropicStreamEvent, { type: 'content_block_delta' }>['delta'] | undefined): StreamEvent[] {
    const block = this.blocks.get(index);
    if (block === undefined || delta === undefined) return [];
    if (block.kind === 'text' && delta.type === 'text_delta' && typeof delta['text'] === 'string' && delta['text'] !== '') {
      return [{ type: 'text', choice: 0, text: delta['text'] }];
    }
    if (block.kind === 'tool' && delta.type === 'input_json_delta' && typeof delta['partial_json'] === 'string' && delta['partial_json'] !== '') {
      return [{ type: 'tool_call_delta', choice: 0, index: block.index, arguments: delta['partial_json'] }];
    }
    if (block.kind === 'thinking') {
      if (delta.type === 'thinking_delta' && typeof delta['thinking'] === 'string' && delta['thinking'] !== '') {
        return [{ type: 'reasoning', choice: 0, text: delta['thinking'] }];
      }
      if (delta.type === 'signature_delta' && typeof delta['signature'] === 'string') {
        return [{ type: 'reasoning_signature', choice: 0, signature: delta['signature'] }];
      }
    }
    // citations_delta and deltas of server tools' blocks have no place in an OpenAI stream.
    return [];
  }
}

/** The fields of a usage object that are there: message_delta may repeat input counts, or not. */
function present(u: AnthropicUsage): AnthropicUsage {
  const out: AnthropicUsage = {};
  for (const [k, v] of Object.entries(u)) if (v !== undefined && v !== null) out[k] = v;
  return out;
}

/**
 * The HTTP status each Anthropic error type stands for (its API reference's table). Used for error
 * events inside a stream, and to correct a 400 whose body says it is something else.
 */
const STATUS_OF_TYPE: Readonly<Record<string, number>> = {
  invalid_request_error: 400,
  authentication_error: 401,
  billing_error: 402,
  permission_error: 403,
  not_found_error: 404,
  request_too_large: 413,
  rate_limit_error: 429,
  api_error: 500,
  overloaded_error: 529,
};

function errorType(body: AnthropicErrorBody | null): string | undefined {
  const t = body?.error?.type;
  return typeof t === 'string' ? t : undefined;
}

/**
 * An error event in a stream: overloaded (529) and rate limited (429) keep their saturated status;
 * anything else is an upstream failure (500), whatever its type, since the request was accepted.
 */
export function streamError(ev: AnthropicErrorBody): UpstreamError {
  const type = errorType(ev) ?? 'unknown';
  const status = type === 'overloaded_error' ? 529 : type === 'rate_limit_error' ? 429 : 500;
  return new UpstreamError('status', `upstream sent an error event (${type})`, { status, body: JSON.stringify(ev) });
}

/**
 * A non-2xx answer whose error type says something other than its status: a 400 typed
 * `authentication_error` (proxies in front of Anthropic send those) is the gateway's credential
 * problem, not the client's, and must not reach the client as a 400 with the upstream's words.
 */
export function reclassify(err: unknown): unknown {
  if (!(err instanceof UpstreamError) || err.failure !== 'status' || err.status !== 400) return err;
  let body: AnthropicErrorBody | null = null;
  try {
    body = JSON.parse(err.body) as AnthropicErrorBody;
  } catch {
    return err;
  }
  const status = STATUS_OF_TYPE[errorType(body) ?? ''];
  if (status === undefined || status === 400) return err;
  return new UpstreamError('status', `upstream answered 400 typed as ${status}`, { status, headers: err.headers, body: err.body, cause: err });
}
