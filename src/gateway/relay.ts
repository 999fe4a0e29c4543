import type { Bill } from '../billing/bill.js';
import { countText } from '../billing/estimate.js';
import { GatewayError } from '../errors.js';
import type { ChatStream } from '../providers/contract.js';
import { toGatewayError, UpstreamError } from '../providers/upstream-error.js';
import type { StreamEvent, Usage } from '../types/chat.js';
import type { StreamEncoder } from './endpoint.js';
import { eventOutput } from './output.js';

export interface RelayOptions {
  traceId: string;
  signal: AbortSignal;
  /** Aborts the upstream request. */
  abort: () => void;
  /** Output tokens relayed at most (the gateway's cap with its allowance); past it the stream ends for length. */
  outputLimit: number;
  /** Where the stream registers how to cut it (the shutdown deadline). */
  streams: Set<(err: GatewayError) => void>;
  /** The first frame is about to go out. */
  onFirstFrame: () => void;
  /**
   * Bills the request from what the stream delivered. Called once, before the last frame: it
   * goes out only once `durable` has resolved, so a client that read the stream to its end has
   * been billed even if the process dies the next moment.
   */
  settle: (o: StreamOutcome) => { bill: Bill; durable: Promise<unknown> };
}

export interface StreamOutcome {
  /** The upstream's last usage, numbers as reported, if it came. */
  usage: Usage | null;
  /** Output the client received (text, reasoning, refusals, tool calls), to count when the usage never came or is not believable. */
  delivered: string;
  /** How it ended when not whole: the error sent as the stream's last frame. */
  error: GatewayError | null;
  /** The upstream's failure that ended it (not the client leaving, the shutdown or the output cap): the deployment's doing. */
  failure: UpstreamError | null;
  clientGone: boolean;
  /** The gateway ended it at the output cap. */
  capped: boolean;
}

const CAPPED = Symbol('capped');

/**
 * An upstream stream as the client's frames, one event at a time as it arrives. It is pulled:
 * the HTTP layer asks for the next frame once the client has taken the last, so a client that
 * stops reading pauses the upstream (backpressure) rather than filling memory. After the first
 * frame an upstream failure can no longer be an HTTP status; it becomes the encoder's error frame.
 * A consumer that stops early (the client went away) still gets the request billed.
 */
export async function* relay(stream: ChatStream, enc: StreamEncoder, o: RelayOptions): AsyncGenerator<string, void, undefined> {
  const out: StreamOutcome = { usage: null, delivered: '', error: null, failure: null, clientGone: false, capped: false };
  const open = new Set<number>();
  /** Tokens of `delivered` once counting began; null while the text is too short to pass the limit. */
  let tokens: number | null = null;
  let settled = false;
  let cutBy: GatewayError | null = null;
  // The shutdown deadline ends the stream with an error frame; aborting the upstream request wakes the read waiting for its next event.
  const cut = (err: GatewayError): void => {
    cutBy = err;
    o.abort();
  };
  o.streams.add(cut);
  const iterator = stream[Symbol.asyncIterator]();
  let failure: unknown = null;
  let first = true;

  /** Whether `text` would take the delivered output past the limit (see the note at overLimit). */
  const overLimit = (text: string): boolean => {
    if (tokens === null) {
      // A token is at least one UTF-8 byte and a UTF-16 unit at most three: while three times the length fits, no tokenizer is needed.
      if ((out.delivered.length + text.length) * 3 <= o.outputLimit) return false;
      tokens = countText(out.delivered);
    }
    const next = tokens + countText(text);
    if (next > o.outputLimit) return true;
    tokens = next;
    return false;
  };

  const take = (ev: StreamEvent): string | null | typeof CAPPED => {
    const text = eventOutput(ev);
    if (text !== '') {
      if (overLimit(text)) return CAPPED;
      out.delivered += text;
    }
    switch (ev.type) {
      case 'usage':
        // Kept aside, never relayed: the client is shown what was billed.
        out.usage = ev.usage;
        return null;
      case 'finish':
        open.delete(ev.choice);
        break;
      case 'start':
      case 'native':
        break;
      default:
        open.add(ev.choice);
    }
    return enc.event(ev);
  };

  try {
    try {
      for (;;) {
        const next = await iterator.next();
        if (next.done === true || o.signal.aborted) break;
        const frame = take(next.value);
        if (frame === CAPPED) {
          out.capped = true;
          break;
        }
        if (frame === null) continue;
        if (first) {
          first = false;
          o.onFirstFrame();
        }
        yield frame;
      }
    } catch (e) {
      failure = e;
    } finally {
      o.streams.delete(cut);
      // Ends the provider's reader, which closes the upstream response if it is still open.
      void iterator.return?.()?.catch(() => undefined);
    }
    const clientGone = cutBy === null && o.signal.aborted;
    // The upstream would go on generating (and costing) what nobody will be billed for: close it.
    if (out.capped) o.abort();
    out.error = cutBy ?? (clientGone || failure === null ? null : streamError(failure));
    if (cutBy === null && !clientGone && failure instanceof UpstreamError && failure.failure !== 'aborted') out.failure = failure;
    out.clientGone = clientGone;
    settled = true;
    const { bill, durable } = o.settle(out);
    if (clientGone) return;
    let tail: string;
    if (out.error !== null) tail = enc.error(out.error, o.traceId);
    else tail = (out.capped ? enc.capped(open.size === 0 ? [0] : [...open]) : '') + enc.end(bill);
    await durable;
    yield tail;
  } finally {
    // The consumer stopped taking frames (the client went away) before the stream ended.
    if (!settled) {
      o.streams.delete(cut);
      out.clientGone = true;
      o.settle(out);
    }
  }
}

/** After the first byte every upstream failure is the same to the client: the model service broke off. */
function streamError(e: unknown): GatewayError {
  if (!(e instanceof UpstreamError)) return new GatewayError('internal');
  const err = toGatewayError(e);
  return err.status === 502 ? err : new GatewayError('upstream_failed', { message: 'The model service broke off the stream' });
}

