import { performance } from 'node:perf_hooks';
import type { ServerResponse } from 'node:http';
import { countText } from '../billing/estimate.js';
import { GatewayError } from '../errors.js';
import type { ChatStream, JsonObject, TokenUsage } from '../providers/types.js';
import { toGatewayError, UpstreamError } from '../providers/upstream-error.js';
import { errorBody } from '../server/render-error.js';

export interface RelayOptions {
  traceId: string;
  /** The model name the client sent: what every chunk shows. */
  model: string;
  includeUsage: boolean;
  headers: Record<string, string>;
  started: number;
  signal: AbortSignal;
  /** Output tokens relayed at most (the gateway's cap with its allowance); past it the stream ends with finish_reason "length". */
  outputLimit: number;
  /**
   * Bills the request from what the stream delivered. Called once, before the last bytes: they
   * leave only once `durable` has resolved, so a client that read the stream to its end has been
   * billed even if the process dies the next moment. `usage` is what the client is shown.
   */
  settle: (o: StreamOutcome) => { usage: JsonObject; durable: Promise<unknown> };
  /** Where the stream registers how to cut it (the shutdown deadline). */
  streams: Set<(err: GatewayError) => void>;
  /** Aborts the upstream request. */
  abort: () => void;
}

export interface StreamOutcome {
  /** The upstream's usage, numbers as reported, if its usage chunk came. */
  usage: TokenUsage | null;
  /** The upstream's usage object as sent (its details included). */
  rawUsage: JsonObject | null;
  /** Output the client received (content, reasoning, tool calls), to count when the upstream's usage never came or is not believable. */
  delivered: string;
  ttftMs: number | null;
  /** How it ended when not whole: the error sent as the stream's last event, or the client gone. */
  error: GatewayError | null;
  clientGone: boolean;
  /** The gateway ended it at the output cap. */
  capped: boolean;
}

/** What the stream has shown so far, to end it in the same terms (ids, choices still open). */
interface Seen {
  id: unknown;
  created: unknown;
  fingerprint: unknown;
  /** Choice indices that have not sent a finish_reason. */
  open: Set<number>;
  /** Tokens of `delivered` once counting began; null while the text is too short to pass the limit. */
  tokens: number | null;
}

/**
 * Relays an upstream stream as OpenAI SSE, chunk by chunk as it arrives: each chunk is written
 * at once, and a client that stops reading pauses the upstream (backpressure) rather than filling
 * memory. After the first byte an upstream failure can no longer be an HTTP status, so it becomes
 * one `data: {"error":…}` event and the stream ends without `[DONE]`. Usage goes out once, at the
 * end, as what was billed.
 */
export async function relayStream(stream: ChatStream, res: ServerResponse, o: RelayOptions): Promise<StreamOutcome> {
  const out: StreamOutcome = { usage: null, rawUsage: null, delivered: '', ttftMs: null, error: null, clientGone: false, capped: false };
  const seen: Seen = { id: undefined, created: undefined, fingerprint: undefined, open: new Set(), tokens: null };
  res.writeHead(200, {
    ...o.headers,
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    'x-request-id': o.traceId,
    'x-accel-buffering': 'no',
  });
  // The shutdown deadline ends the stream with an error event; aborting the upstream request
  // wakes the read that is waiting for its next chunk.
  let cutBy: GatewayError | null = null;
  const cut = (err: GatewayError): void => {
    cutBy = err;
    o.abort();
  };
  o.streams.add(cut);
  const iterator = stream[Symbol.asyncIterator]();
  let failure: unknown = null;
  try {
    for (;;) {
      const next = await iterator.next();
      if (next.done === true || o.signal.aborted) break;
      const send = present(next.value, o, out, seen);
      if (send === CAPPED) {
        out.capped = true;
        break;
      }
      if (send === null) continue;
      if (out.ttftMs === null) out.ttftMs = performance.now() - o.started;
      if (!res.write(`data: ${JSON.stringify(send)}\n\n`)) await drained(res);
    }
  } catch (e) {
    failure = e;
  } finally {
    o.streams.delete(cut);
    // Ends the adapter's generator, which closes the upstream response if it is still open.
    void iterator.return?.()?.catch(() => undefined);
  }
  const clientGone = cutBy === null && o.signal.aborted;
  // The upstream would go on generating (and costing) what nobody will be billed for: close it.
  if (out.capped) o.abort();
  out.error = cutBy ?? (clientGone || failure === null ? null : streamError(failure));
  out.usage ??= stream.usage;
  if (clientGone) {
    out.clientGone = true;
    if (!res.destroyed) res.destroy();
    o.settle(out);
    return out;
  }
  const billed = o.settle(out);
  let tail: string;
  if (out.error !== null) {
    tail = `data: ${errorBody(out.error, o.traceId)}\n\n`;
  } else {
    tail = out.capped ? `data: ${JSON.stringify(closing(seen, o.model))}\n\n` : '';
    if (o.includeUsage) tail += `data: ${JSON.stringify(usageChunk(seen, o.model, billed.usage))}\n\n`;
    tail += 'data: [DONE]\n\n';
  }
  await billed.durable;
  res.end(tail);
  return out;
}

/** After the first byte every upstream failure is the same to the client: the model service broke off. */
function streamError(e: unknown): GatewayError {
  if (!(e instanceof UpstreamError)) return new GatewayError('internal');
  const err = toGatewayError(e);
  return err.status === 502 ? err : new GatewayError('upstream_failed', { message: 'The model service broke off the stream' });
}

const CAPPED = Symbol('capped');

interface DeltaLike {
  content?: unknown;
  reasoning_content?: unknown;
  reasoning?: unknown;
  refusal?: unknown;
  tool_calls?: { function?: { name?: unknown; arguments?: unknown } }[];
}

/**
 * The chunk as the client sees it; null to drop it (a chunk that carried only usage); CAPPED when
 * relaying it would pass the output limit. The upstream's usage is kept aside, never relayed:
 * the client is shown what was billed.
 */
function present(chunk: JsonObject, o: RelayOptions, out: StreamOutcome, seen: Seen): JsonObject | null | typeof CAPPED {
  const choices = chunk['choices'];
  let text = '';
  if (Array.isArray(choices)) {
    for (const c of choices as { index?: unknown; delta?: DeltaLike; finish_reason?: unknown }[]) {
      if (c === null || typeof c !== 'object') continue;
      const d = c.delta;
      if (d !== null && typeof d === 'object') text += outputText(d);
      if (typeof c.index === 'number') {
        if (c.finish_reason === null || c.finish_reason === undefined) seen.open.add(c.index);
        else seen.open.delete(c.index);
      }
    }
  }
  if (text !== '') {
    if (overLimit(text, o.outputLimit, out, seen)) return CAPPED;
    out.delivered += text;
  }
  seen.id ??= chunk['id'];
  seen.created ??= chunk['created'];
  seen.fingerprint ??= chunk['system_fingerprint'];
  const usage = chunk['usage'];
  if (usage !== undefined && usage !== null) {
    if (typeof usage === 'object' && !Array.isArray(usage)) out.rawUsage = usage as JsonObject;
    if (!Array.isArray(choices) || choices.length === 0) return null;
  }
  // OpenAI puts `usage: null` on every chunk but the last when the client asked for usage.
  if (o.includeUsage) chunk['usage'] = null;
  else delete chunk['usage'];
  chunk['model'] = o.model;
  return chunk;
}

function outputText(d: DeltaLike): string {
  let t = '';
  if (typeof d.content === 'string') t += d.content;
  if (typeof d.reasoning_content === 'string') t += d.reasoning_content;
  else if (typeof d.reasoning === 'string') t += d.reasoning;
  if (typeof d.refusal === 'string') t += d.refusal;
  if (Array.isArray(d.tool_calls)) {
    for (const tc of d.tool_calls) {
      const f = tc?.function;
      if (f === undefined || f === null) continue;
      if (typeof f.name === 'string') t += f.name;
      if (typeof f.arguments === 'string') t += f.arguments;
    }
  }
  return t;
}

/**
 * Whether `text` would take the delivered output past the limit. A token is at least one UTF-8
 * byte and a UTF-16 unit at most three, so while three times the length fits, nothing needs the
 * tokenizer; past that the whole text is counted once and each chunk after it on its own.
 */
function overLimit(text: string, limit: number, out: StreamOutcome, seen: Seen): boolean {
  if (seen.tokens === null) {
    if ((out.delivered.length + text.length) * 3 <= limit) return false;
    seen.tokens = countText(out.delivered);
  }
  const next = seen.tokens + countText(text);
  if (next > limit) return true;
  seen.tokens = next;
  return false;
}

/** The chunk that ends a stream cut at the output cap: each choice still open stops for "length". */
function closing(seen: Seen, model: string): JsonObject {
  const open = seen.open.size === 0 ? [0] : [...seen.open];
  return {
    ...frame(seen, model),
    choices: open.map((index) => ({ index, delta: {}, logprobs: null, finish_reason: 'length' })),
  };
}

function usageChunk(seen: Seen, model: string, usage: JsonObject): JsonObject {
  return { ...frame(seen, model), choices: [], usage };
}

function frame(seen: Seen, model: string): JsonObject {
  const f: JsonObject = {
    id: seen.id ?? 'chatcmpl-token360',
    object: 'chat.completion.chunk',
    created: seen.created ?? Math.floor(Date.now() / 1000),
    model,
  };
  if (seen.fingerprint !== undefined) f['system_fingerprint'] = seen.fingerprint;
  return f;
}

function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}
