import type { ChatChoice, ChatResponse, FinishReason, JsonObject, Reasoning, StreamEvent, ToolCall, Usage } from '../../types/chat.js';
import type { ChatCall } from '../contract.js';
import { UpstreamError } from '../upstream-error.js';

// OpenAI's Responses API, for a deployment marked `responses: native`: the client's Responses
// body goes on as it came, and the answer comes back both as it came (`native`, for the Responses
// encoder) and in the typed form (for billing and the output cap). Pure functions; index.ts feeds them.

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** The client's body with the deployment's model, the gateway's output cap when the client set none, and the stream flag. */
export function toResponsesBody(call: ChatCall, body: JsonObject, stream: boolean): JsonObject {
  const out: JsonObject = { ...body, model: call.upstreamModel };
  if ((out['max_output_tokens'] === undefined || out['max_output_tokens'] === null) && call.maxTokens !== null) out['max_output_tokens'] = call.maxTokens;
  if (stream) out['stream'] = true;
  else {
    delete out['stream'];
    delete out['stream_options'];
  }
  return out;
}

/** Responses usage in the typed form, numbers as sent (billing judges them); null when there is none. */
export function fromResponsesUsage(u: unknown): Usage | null {
  if (!isObj(u)) return null;
  if (u['input_tokens'] === undefined && u['output_tokens'] === undefined) return null;
  const count = (v: unknown, absent: number): number => (v === undefined || v === null ? absent : typeof v === 'number' ? v : Number.NaN);
  const inDetails = isObj(u['input_tokens_details']) ? u['input_tokens_details'] : {};
  const outDetails = isObj(u['output_tokens_details']) ? u['output_tokens_details'] : {};
  return {
    // A missing input count is not believable (it would bill as 0).
    promptTokens: count(u['input_tokens'], Number.NaN),
    completionTokens: count(u['output_tokens'], 0),
    cachedTokens: count(inDetails['cached_tokens'], 0),
    cacheWriteTokens: 0,
    reasoningTokens: count(outDetails['reasoning_tokens'], 0),
    raw: u,
  };
}

/** Why a Response stopped, in the typed form's words. */
export function responsesFinish(r: Obj, calledTools: boolean): FinishReason {
  const reason = isObj(r['incomplete_details']) ? r['incomplete_details']['reason'] : undefined;
  if (reason === 'max_output_tokens') return 'length';
  if (reason === 'content_filter') return 'content_filter';
  return calledTools ? 'tool_calls' : 'stop';
}

/** A Response object in the typed form, with the object itself as `native`. */
export function fromResponse(body: JsonObject): ChatResponse {
  const output = Array.isArray(body['output']) ? (body['output'] as unknown[]) : [];
  let content: string | null = null;
  let refusal: string | undefined;
  const reasoning: Reasoning[] = [];
  const calls: ToolCall[] = [];
  for (const item of output) {
    if (!isObj(item)) continue;
    if (item['type'] === 'message' && Array.isArray(item['content'])) {
      for (const p of item['content'] as unknown[]) {
        if (!isObj(p)) continue;
        if (p['type'] === 'output_text' && typeof p['text'] === 'string') content = (content ?? '') + p['text'];
        if (p['type'] === 'refusal' && typeof p['refusal'] === 'string') refusal = (refusal ?? '') + p['refusal'];
      }
    } else if (item['type'] === 'reasoning') {
      const text = partsText(item['content']) || partsText(item['summary']);
      if (text !== '') reasoning.push({ text });
    } else if (item['type'] === 'function_call') {
      calls.push({ id: str(item['call_id']) ?? '', name: str(item['name']) ?? '', arguments: str(item['arguments']) ?? '' });
    }
  }
  const choice: ChatChoice = { index: 0, content, finishReason: responsesFinish(body, calls.length > 0) };
  if (reasoning.length > 0) choice.reasoning = reasoning;
  if (calls.length > 0) choice.toolCalls = calls;
  if (refusal !== undefined) choice.refusal = refusal;
  return {
    id: str(body['id']) ?? '',
    created: typeof body['created_at'] === 'number' ? body['created_at'] : Math.floor(Date.now() / 1000),
    choices: [choice],
    usage: fromResponsesUsage(body['usage']),
    native: { protocol: 'openai-responses', body },
  };
}

function partsText(v: unknown): string {
  if (!Array.isArray(v)) return '';
  let text = '';
  for (const p of v as unknown[]) if (isObj(p) && typeof p['text'] === 'string') text += p['text'];
  return text;
}

/**
 * A Responses event stream, one event at a time: each event as it came (`native`), and the
 * typed events billing and the output cap need. The terminal event (`response.completed`,
 * `response.incomplete`, `response.failed`) carries the usage, whichever it is; a failure
 * (`response.failed`, `error`) throws after its usage has gone out.
 */
export class ResponsesEventReader {
  /** Typed tool-call index of each function_call item, by item id. */
  private readonly calls = new Map<string, number>();
  private started = false;
  finished = false;

  read(data: string, event: JsonObject, out: StreamEvent[]): void {
    const type = str(event['type']) ?? '';
    out.push({ type: 'native', protocol: 'openai-responses', event: type, data });
    const response = isObj(event['response']) ? event['response'] : null;
    if (!this.started && response !== null) {
      this.started = true;
      out.push({ type: 'start', id: str(response['id']) ?? '', created: typeof response['created_at'] === 'number' ? response['created_at'] : Math.floor(Date.now() / 1000) });
    }
    const delta = str(event['delta']) ?? '';
    switch (type) {
      case 'response.output_text.delta':
        if (delta !== '') out.push({ type: 'text', choice: 0, text: delta });
        break;
      case 'response.refusal.delta':
        if (delta !== '') out.push({ type: 'refusal', choice: 0, text: delta });
        break;
      case 'response.reasoning_summary_text.delta':
      case 'response.reasoning_text.delta':
        if (delta !== '') out.push({ type: 'reasoning', choice: 0, text: delta });
        break;
      case 'response.output_item.added': {
        const item = event['item'];
        if (isObj(item) && item['type'] === 'function_call') {
          const index = this.calls.size;
          this.calls.set(str(item['id']) ?? `#${index}`, index);
          out.push({ type: 'tool_call_start', choice: 0, index, id: str(item['call_id']) ?? '', name: str(item['name']) ?? '' });
        }
        break;
      }
      case 'response.function_call_arguments.delta': {
        const index = this.calls.get(str(event['item_id']) ?? '');
        if (index !== undefined && delta !== '') out.push({ type: 'tool_call_delta', choice: 0, index, arguments: delta });
        break;
      }
      case 'response.completed':
      case 'response.incomplete':
      case 'response.failed': {
        this.finished = true;
        const usage = fromResponsesUsage(response?.['usage']);
        if (type !== 'response.failed') out.push({ type: 'finish', choice: 0, reason: responsesFinish(response ?? {}, this.calls.size > 0) });
        if (usage !== null) out.push({ type: 'usage', usage });
        break;
      }
      default:
        break;
    }
  }

  /** Throws for a failure event, once read() has passed its usage on. */
  failure(event: JsonObject, data: string): UpstreamError | null {
    const type = event['type'];
    if (type !== 'response.failed' && type !== 'error') return null;
    return new UpstreamError('status', `upstream sent ${String(type)}`, { status: 500, body: data });
  }
}
