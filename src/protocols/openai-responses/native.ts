import { usdNumber } from '../../billing/money.js';
import type { Bill } from '../../billing/bill.js';
import type { GatewayError } from '../../errors.js';
import type { StreamEncoder } from '../../gateway/endpoint.js';
import type { JsonObject, StreamEvent } from '../../types/chat.js';
import { responsesUsage } from './encode.js';

// A Responses stream from a deployment that speaks the Responses API itself: each upstream event
// goes to the client as it came (the model renamed to the one the client asked for). The terminal
// event is held back until the request is billed, so that it carries what was billed and its
// cost; an upstream failure's own terminal event (`error`, `response.failed`) is the one sent.

const TERMINAL = new Set(['response.completed', 'response.incomplete', 'response.failed', 'error']);

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

/** The usage a client is shown: the upstream's own (with its details) when that was billed, else what was; with the cost. */
export function nativeUsage(b: Bill, upstream: unknown): JsonObject {
  if (b.reported && isObj(upstream)) return { ...upstream, cost: usdNumber(b.cost) };
  return responsesUsage(b.usage, usdNumber(b.cost));
}

/** A whole upstream Response as the client sees it: its model, and what was billed. */
export function presentNative(body: JsonObject, model: string, b: Bill): JsonObject {
  return { ...body, model, usage: nativeUsage(b, body['usage']) };
}

export class NativeResponsesEncoder implements StreamEncoder {
  private seq = -1;
  /** The latest whole response object seen (created, in_progress), for a terminal event the gateway writes itself. */
  private last: JsonObject | null = null;
  private terminal: { type: string; data: JsonObject } | null = null;

  constructor(private readonly model: string) {}

  event(ev: StreamEvent): string | null {
    if (ev.type !== 'native' || ev.protocol !== 'openai-responses') return null;
    let data: unknown;
    try {
      data = JSON.parse(ev.data);
    } catch {
      return null;
    }
    if (!isObj(data)) return null;
    const type = typeof data['type'] === 'string' ? data['type'] : (ev.event ?? 'message');
    if (typeof data['sequence_number'] === 'number') this.seq = Math.max(this.seq, data['sequence_number']);
    if (TERMINAL.has(type)) {
      this.terminal = { type, data };
      return null;
    }
    if (!isObj(data['response'])) return `event: ${type}\ndata: ${ev.data}\n\n`;
    this.last = { ...data['response'], model: this.model };
    return frame(type, { ...data, response: this.last });
  }

  /** The gateway cut the stream at its output cap: it ends as incomplete, as the upstream would have at max_output_tokens. */
  capped(): string {
    this.terminal = null;
    return '';
  }

  end(b: Bill): string {
    const t = this.terminal;
    if (t !== null && t.type !== 'error' && t.type !== 'response.failed' && isObj(t.data['response'])) {
      const response = t.data['response'];
      return frame(t.type, { ...t.data, response: { ...response, model: this.model, usage: nativeUsage(b, response['usage']) } });
    }
    const response = { ...(this.last ?? {}), status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' }, usage: nativeUsage(b, null) };
    return frame('response.incomplete', { type: 'response.incomplete', sequence_number: ++this.seq, response });
  }

  error(err: GatewayError, traceId: string): string {
    const error = { message: err.message, type: err.type, param: err.param, code: String(err.status), traceId };
    const t = this.terminal;
    // The upstream's own failure event, with SPEC §3's error beside it (the openai SDK raises that).
    if (t !== null && (t.type === 'response.failed' || t.type === 'error')) {
      const data = isObj(t.data['response']) ? { ...t.data, response: { ...t.data['response'], model: this.model } } : t.data;
      return frame(t.type, { ...data, error });
    }
    const response = { ...(this.last ?? {}), status: 'failed', error: { code: 'server_error', message: err.message } };
    return frame('response.failed', { type: 'response.failed', sequence_number: ++this.seq, response, error });
  }
}

function frame(type: string, data: JsonObject): string {
  return `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
}
