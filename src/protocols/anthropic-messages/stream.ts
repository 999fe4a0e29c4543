import type { Bill } from '../../billing/bill.js';
import type { GatewayError } from '../../errors.js';
import type { StreamEncoder } from '../../gateway/endpoint.js';
import type { JsonObject, StreamEvent } from '../../types/chat.js';
import { anthropicUsage, messageId, stopReason } from './encode.js';
import { errorBody } from './render-error.js';

// A stream in Anthropic's grammar (its streaming reference): one `message_start`, then content
// blocks one after another, each `content_block_start` … deltas … `content_block_stop` with
// indices 0, 1, 2…, then one `message_delta` with the stop reason and the cumulative usage, then
// `message_stop`. Every frame is `event: <type>\ndata: <json>\n\n`.
//
// Two sources. Typed events (any provider) are written in that grammar here. `native` events (an
// Anthropic upstream, the request passed through) are sent on as they came, but for the model
// name in `message_start`; the typed events beside them are ignored. In both cases the stream's
// last two events wait for the end: `message_delta` shows what was billed (the relay settles
// before the last frame), and a stream the gateway cut at the output cap still ends in grammar.
//
// Typed tool calls are held, not streamed: providers interleave them with text, reasoning and
// each other (text after a call started, a late argument piece of call 0 after call 1 began),
// while Anthropic's grammar has one block open at a time and text before tool use. Text and
// thinking go out as they come; each call is written whole (start, its arguments, stop) at the
// stream's end, cut or broken off: not at the upstream's finish, after which some servers still
// send a piece. The client acts on a call only once the stop reason comes, in that same tail.
// While a held call's arguments stream nothing else is written, so a `ping` goes out now and
// then to keep proxies from taking the stream for dead.

type Open = { kind: 'text' | 'thinking'; index: number };
type HeldCall = { id: string; name: string; args: string };

/** Silence after which a held call's argument piece is answered with a `ping`. */
export const KEEPALIVE_MS = 10_000;

export function frame(event: string, data: JsonObject): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

export class MessagesStreamEncoder implements StreamEncoder {
  private id = 'msg_token360';
  private started = false;
  private native = false;
  private next = 0;
  private open: Open | null = null;
  /** Tool calls not yet written, by the provider's per-choice index, in the order they started. */
  private readonly calls = new Map<number, HeldCall>();
  private reason: string | null = null;
  private capped_ = false;
  /** Passthrough: blocks the upstream started and has not stopped; its held message_delta. */
  private readonly nativeOpen = new Set<number>();
  private heldDelta: JsonObject | null = null;
  /** When a frame was last written. */
  private wrote: number;

  constructor(
    private readonly model: string,
    /** The prompt estimate: message_start must carry input tokens, and typed upstreams report usage only at the end. */
    private readonly inputTokens: number,
    private readonly clock: () => number = Date.now,
  ) {
    this.wrote = clock();
  }

  event(ev: StreamEvent): string | null {
    if (ev.type === 'native') return ev.protocol === 'anthropic-messages' ? this.passOn(ev.event, ev.data) : null;
    if (this.native) return null;
    const out = this.typed(ev);
    const now = this.clock();
    if (out !== null) this.wrote = now;
    else if (ev.type === 'tool_call_delta' && this.started && now - this.wrote >= KEEPALIVE_MS) {
      this.wrote = now;
      return frame('ping', { type: 'ping' });
    }
    return out;
  }

  private typed(ev: Exclude<StreamEvent, { type: 'native' }>): string | null {
    switch (ev.type) {
      case 'start':
        this.id = messageId(ev.id);
        return null;
      case 'text':
      case 'refusal':
        if (ev.choice !== 0 || ev.text === '') return null;
        return this.into('text') + frame('content_block_delta', { type: 'content_block_delta', index: this.open!.index, delta: { type: 'text_delta', text: ev.text } });
      case 'reasoning':
        if (ev.choice !== 0 || ev.text === '') return null;
        return this.into('thinking') + frame('content_block_delta', { type: 'content_block_delta', index: this.open!.index, delta: { type: 'thinking_delta', thinking: ev.text } });
      case 'reasoning_signature':
        if (ev.choice !== 0) return null;
        return this.into('thinking') + frame('content_block_delta', { type: 'content_block_delta', index: this.open!.index, delta: { type: 'signature_delta', signature: ev.signature } });
      case 'reasoning_redacted': {
        if (ev.choice !== 0) return null;
        const index = this.next++;
        return (
          this.begin() +
          this.close() +
          frame('content_block_start', { type: 'content_block_start', index, content_block: { type: 'redacted_thinking', data: ev.data } }) +
          frame('content_block_stop', { type: 'content_block_stop', index })
        );
      }
      case 'tool_call_start':
        if (ev.choice !== 0) return null;
        this.calls.set(ev.index, { id: ev.id, name: ev.name, args: '' });
        // message_start goes out now, so the client sees the answer begin while the call is held.
        return this.begin() || null;
      case 'tool_call_delta': {
        const call = ev.choice === 0 ? this.calls.get(ev.index) : undefined;
        if (call !== undefined) call.args += ev.arguments;
        return null;
      }
      case 'finish':
        if (ev.choice === 0) this.reason = stopReason(ev.reason);
        return null;
      case 'usage':
        return null;
    }
  }

  /** Anthropic streams have one choice: whichever choices were open, the open block is the one to stop. */
  capped(_open: readonly number[] = [0]): string {
    this.capped_ = true;
    if (this.native) {
      let out = '';
      for (const index of this.nativeOpen) out += frame('content_block_stop', { type: 'content_block_stop', index });
      this.nativeOpen.clear();
      return out;
    }
    return this.flushCalls() || this.close();
  }

  end(b: Bill): string {
    const usage = anthropicUsage(b.usage);
    if (this.native) {
      const held = this.heldDelta ?? { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null } };
      const d = held['delta'];
      const delta: JsonObject = { ...(d !== null && typeof d === 'object' ? (d as JsonObject) : {}) };
      if (this.capped_) Object.assign(delta, { stop_reason: 'max_tokens', stop_sequence: null });
      const u = held['usage'];
      const base = u !== null && typeof u === 'object' ? (u as JsonObject) : {};
      return frame('message_delta', { ...held, type: 'message_delta', delta, usage: { ...base, ...usage } }) + frame('message_stop', { type: 'message_stop' });
    }
    const reason = this.capped_ ? 'max_tokens' : (this.reason ?? 'end_turn');
    return (
      this.begin() +
      this.close() +
      this.flushCalls() +
      frame('message_delta', { type: 'message_delta', delta: { stop_reason: reason, stop_sequence: null }, usage }) +
      frame('message_stop', { type: 'message_stop' })
    );
  }

  /** The calls held so far go out first: a cut stream is billed for what it delivered, and they were delivered by the upstream. */
  error(err: GatewayError, traceId: string): string {
    return (this.native ? '' : this.flushCalls()) + `event: error\ndata: ${errorBody(err, traceId)}\n\n`;
  }

  /** An upstream event of a passed-through request. */
  private passOn(event: string | null, data: string): string | null {
    this.native = true;
    let ev: JsonObject;
    try {
      ev = JSON.parse(data) as JsonObject;
    } catch {
      return null;
    }
    const type = typeof ev['type'] === 'string' ? ev['type'] : (event ?? 'message');
    const index = typeof ev['index'] === 'number' ? ev['index'] : -1;
    switch (type) {
      case 'message_start': {
        const m = ev['message'];
        const message = m !== null && typeof m === 'object' ? { ...(m as JsonObject), model: this.model } : m;
        return frame('message_start', { ...ev, message });
      }
      case 'content_block_start':
        this.nativeOpen.add(index);
        break;
      case 'content_block_stop':
        this.nativeOpen.delete(index);
        break;
      case 'message_delta':
        this.heldDelta = ev;
        return null;
      case 'message_stop':
      case 'error':
        // The end is written by end(); an upstream error ends the stream through error().
        return null;
    }
    return `event: ${type}\ndata: ${data}\n\n`;
  }

  /** message_start, once, before anything else. */
  private begin(): string {
    if (this.started) return '';
    this.started = true;
    return frame('message_start', {
      type: 'message_start',
      message: {
        id: this.id,
        type: 'message',
        role: 'assistant',
        model: this.model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: this.inputTokens, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 0 },
      },
    });
  }

  /** Makes a block of `kind` the open one (closing another), and returns the frames that took. */
  private into(kind: 'text' | 'thinking'): string {
    if (this.open?.kind === kind) return '';
    const head = this.begin() + this.close();
    const index = this.next++;
    this.open = { kind, index };
    const block = kind === 'text' ? { type: 'text', text: '' } : { type: 'thinking', thinking: '', signature: '' };
    return head + frame('content_block_start', { type: 'content_block_start', index, content_block: block });
  }

  /** Writes each held call as a whole tool_use block (the open block stopped first); '' when none is held. */
  private flushCalls(): string {
    if (this.calls.size === 0) return '';
    let out = this.begin() + this.close();
    for (const call of this.calls.values()) {
      const index = this.next++;
      out += frame('content_block_start', { type: 'content_block_start', index, content_block: { type: 'tool_use', id: call.id, name: call.name, input: {} } });
      // No arguments: the block's `input: {}` is the whole input (an empty partial_json would not parse).
      if (call.args !== '') out += frame('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: call.args } });
      out += frame('content_block_stop', { type: 'content_block_stop', index });
    }
    this.calls.clear();
    return out;
  }

  private close(): string {
    if (this.open === null) return '';
    const index = this.open.index;
    this.open = null;
    return frame('content_block_stop', { type: 'content_block_stop', index });
  }
}
