import { usdNumber } from '../../billing/money.js';
import type { Bill } from '../../billing/bill.js';
import type { GatewayError } from '../../errors.js';
import type { StreamEncoder } from '../../gateway/endpoint.js';
import type { FinishReason, JsonObject, StreamEvent } from '../../types/chat.js';
import {
  functionCallItem,
  messageItem,
  newId,
  outputText,
  reasoningItem,
  responseObject,
  responsesUsage,
  statusOf,
} from './encode.js';

// Typed stream events as Responses' SSE grammar: `response.created` and `response.in_progress`,
// then per output item `output_item.added` … `output_item.done` with the deltas of its kind in
// between, then one terminal event (`response.completed`, `response.incomplete` at a length or
// content-filter stop or the gateway's output cap, `response.failed` after an error), every event
// numbered by `sequence_number`. Items are closed in the order they were opened.
//
// Function calls are held, not streamed: providers interleave a call's argument pieces with text,
// reasoning and other calls, and an item once done cannot take more. Each call is written whole
// (added, its arguments, done) after the text and reasoning, when the answer finishes, is cut or
// breaks off, so its `arguments` are all the provider sent. While a held call's arguments stream
// nothing else is written, so an SSE comment (Responses has no ping event; every SSE reader skips
// comments) goes out now and then to keep proxies from taking the stream for dead.

type Item =
  | { kind: 'reasoning'; index: number; id: string; text: string }
  | { kind: 'message'; index: number; id: string; text: string; refusal: string | undefined; part: 'text' | 'refusal' | null };
type HeldCall = { callId: string; name: string; args: string };

/** Silence after which a held call's argument piece is answered with a keepalive comment. */
export const KEEPALIVE_MS = 10_000;

export class ResponsesStreamEncoder implements StreamEncoder {
  private seq = 0;
  private readonly id = newId('resp');
  private readonly suffix = this.id.slice(5, 21);
  private created = Math.floor(Date.now() / 1000);
  private began = false;
  /** The item text or reasoning deltas go to. */
  private current: Item | null = null;
  private readonly open: Item[] = [];
  /** Calls not yet written, by the provider's per-choice index, in the order they started. */
  private readonly calls = new Map<number, HeldCall>();
  private readonly output: JsonObject[] = [];
  private reason: FinishReason | null = null;
  /** When a frame was last written. */
  private wrote: number;

  constructor(
    private readonly model: string,
    private readonly echo: JsonObject,
    private readonly clock: () => number = Date.now,
  ) {
    this.wrote = clock();
  }

  event(ev: StreamEvent): string | null {
    const out = this.typed(ev);
    const now = this.clock();
    if (out !== null) this.wrote = now;
    else if (ev.type === 'tool_call_delta' && this.began && now - this.wrote >= KEEPALIVE_MS) {
      this.wrote = now;
      return ': keepalive\n\n';
    }
    return out;
  }

  private typed(ev: StreamEvent): string | null {
    if (ev.type === 'start') {
      this.created = ev.created;
      return this.begin();
    }
    // Responses has one answer: other choices (there are none: `n` is 1) and usage (relayed as billed, at the end) have no frame.
    if (!('choice' in ev) || ev.choice !== 0) return null;
    let out = this.begin();
    switch (ev.type) {
      case 'text':
      case 'refusal': {
        const m = this.message();
        const part = ev.type === 'text' ? 'text' : 'refusal';
        out += this.switchTo(m);
        out += this.partFrames(m, part);
        if (part === 'text') {
          m.text += ev.text;
          out += this.frame('response.output_text.delta', { item_id: m.id, output_index: m.index, content_index: this.contentIndex(m), delta: ev.text, logprobs: [] });
        } else {
          m.refusal = (m.refusal ?? '') + ev.text;
          out += this.frame('response.refusal.delta', { item_id: m.id, output_index: m.index, content_index: this.contentIndex(m), delta: ev.text });
        }
        return out;
      }
      case 'reasoning': {
        let r = this.current;
        if (r?.kind !== 'reasoning') {
          out += this.closeCurrent();
          r = this.add({ kind: 'reasoning', index: 0, id: `rs_${this.suffix}${this.output.length + this.open.length}`, text: '' });
          this.current = r;
          out += this.frame('response.output_item.added', { output_index: r.index, item: { id: r.id, type: 'reasoning', summary: [] } });
          out += this.frame('response.reasoning_summary_part.added', { item_id: r.id, output_index: r.index, summary_index: 0, part: { type: 'summary_text', text: '' } });
        }
        r.text += ev.text;
        return out + this.frame('response.reasoning_summary_text.delta', { item_id: r.id, output_index: r.index, summary_index: 0, delta: ev.text });
      }
      case 'tool_call_start':
        this.calls.set(ev.index, { callId: ev.id, name: ev.name, args: '' });
        return out === '' ? null : out;
      case 'tool_call_delta': {
        const c = this.calls.get(ev.index);
        if (c !== undefined) c.args += ev.arguments;
        return out === '' ? null : out;
      }
      case 'finish':
        this.reason = ev.reason;
        return out + this.closeAll();
      default:
        return out === '' ? null : out;
    }
  }

  capped(): string {
    this.reason = 'length';
    return this.begin() + this.closeAll();
  }

  end(b: Bill): string {
    let out = this.begin() + this.closeAll();
    const s = statusOf(this.reason);
    const response = this.response({ ...s, usage: responsesUsage(b.usage, usdNumber(b.cost)) });
    out += this.frame(s.status === 'completed' ? 'response.completed' : 'response.incomplete', { response });
    return out;
  }

  /**
   * `response.failed`, its response carrying the error; the top-level `error` (SPEC §3's shape)
   * is what makes the openai SDK raise it, as it does on the chat route.
   */
  error(err: GatewayError, traceId: string): string {
    const out = this.begin() + this.closeAll();
    const error = { message: err.message, type: err.type, param: err.param, code: String(err.status), traceId };
    const response = this.response({ status: 'failed', error: { code: err.status === 503 ? 'server_is_overloaded' : 'server_error', message: err.message } });
    return out + this.frame('response.failed', { response, error });
  }

  private response(fields: JsonObject): JsonObject {
    return { ...responseObject(this.id, this.created, this.model, this.echo), output: this.output, ...fields };
  }

  private begin(): string {
    if (this.began) return '';
    this.began = true;
    const response = this.response({});
    return this.frame('response.created', { response }) + this.frame('response.in_progress', { response });
  }

  private frame(type: string, data: JsonObject): string {
    return `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: this.seq++, ...data })}\n\n`;
  }

  private add<T extends Item>(item: T): T {
    item.index = this.output.length + this.open.length;
    this.open.push(item);
    return item;
  }

  /** The message item text and refusals go to: the current one, or a new one. */
  private message(): Extract<Item, { kind: 'message' }> {
    if (this.current?.kind === 'message') return this.current;
    return { kind: 'message', index: -1, id: '', text: '', refusal: undefined, part: null };
  }

  /** Opens the message item `m` when it is new (closing what was current). */
  private switchTo(m: Extract<Item, { kind: 'message' }>): string {
    if (m.index >= 0) return '';
    let out = this.closeCurrent();
    this.add(m);
    m.id = `msg_${this.suffix}${m.index}`;
    this.current = m;
    out += this.frame('response.output_item.added', { output_index: m.index, item: { id: m.id, type: 'message', status: 'in_progress', role: 'assistant', content: [] } });
    return out;
  }

  private contentIndex(m: Extract<Item, { kind: 'message' }>): number {
    return m.text !== '' && m.part === 'refusal' ? 1 : 0;
  }

  /** Starts the content part of `part`'s kind, closing the other one if it was open. */
  private partFrames(m: Extract<Item, { kind: 'message' }>, part: 'text' | 'refusal'): string {
    if (m.part === part) return '';
    let out = m.part === null ? '' : this.closePart(m);
    m.part = part;
    out += this.frame('response.content_part.added', {
      item_id: m.id, output_index: m.index, content_index: this.contentIndex(m), part: part === 'text' ? outputText('') : { type: 'refusal', refusal: '' },
    });
    return out;
  }

  private closePart(m: Extract<Item, { kind: 'message' }>): string {
    const at = { item_id: m.id, output_index: m.index, content_index: this.contentIndex(m) };
    if (m.part === 'text') {
      return this.frame('response.output_text.done', { ...at, text: m.text, logprobs: [] }) + this.frame('response.content_part.done', { ...at, part: outputText(m.text) });
    }
    const refusal = m.refusal ?? '';
    return this.frame('response.refusal.done', { ...at, refusal }) + this.frame('response.content_part.done', { ...at, part: { type: 'refusal', refusal } });
  }

  private closeCurrent(): string {
    const c = this.current;
    if (c === null) return '';
    this.current = null;
    return this.close(c);
  }

  /** Ends every open item, then writes the held calls after them. */
  private closeAll(): string {
    let out = '';
    this.current = null;
    while (this.open.length > 0) out += this.close(this.open[0]!);
    for (const c of this.calls.values()) {
      const index = this.output.length;
      const id = `fc_${this.suffix}${index}`;
      out += this.frame('response.output_item.added', { output_index: index, item: functionCallItem(id, c.callId, c.name, '', 'in_progress') });
      if (c.args !== '') out += this.frame('response.function_call_arguments.delta', { item_id: id, output_index: index, delta: c.args });
      out += this.frame('response.function_call_arguments.done', { item_id: id, output_index: index, name: c.name, arguments: c.args });
      const done = functionCallItem(id, c.callId, c.name, c.args, 'completed');
      this.output.push(done);
      out += this.frame('response.output_item.done', { output_index: index, item: done });
    }
    this.calls.clear();
    return out;
  }

  /** Ends an open item. Items are ended in their order, so `output` stays in `output_index` order. */
  private close(item: Item): string {
    let out = '';
    // Anything opened before it ends first.
    while (this.open[0] !== item) out += this.close(this.open[0]!);
    this.open.shift();
    if (this.current === item) this.current = null;
    let done: JsonObject;
    if (item.kind === 'reasoning') {
      const at = { item_id: item.id, output_index: item.index, summary_index: 0 };
      out += this.frame('response.reasoning_summary_text.done', { ...at, text: item.text });
      out += this.frame('response.reasoning_summary_part.done', { ...at, part: { type: 'summary_text', text: item.text } });
      done = reasoningItem(item.id, item.text);
    } else {
      if (item.part !== null) out += this.closePart(item);
      done = messageItem(item.id, item.text, item.refusal, 'completed');
    }
    this.output.push(done);
    return out + this.frame('response.output_item.done', { output_index: item.index, item: done });
  }
}
