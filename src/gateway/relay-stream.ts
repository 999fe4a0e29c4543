import { performance } from 'node:perf_hooks';
import type { ServerResponse } from 'node:http';
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
  /** usage.cost (USD, for display) of the usage chunk. */
  costOf: (u: TokenUsage) => number;
  /** Where the stream registers how to cut it (the shutdown deadline). */
  streams: Set<(err: GatewayError) => void>;
  /** Aborts the upstream request. */
  abort: () => void;
}

export interface StreamOutcome {
  /** The upstream's usage, if its usage chunk came. */
  usage: TokenUsage | null;
  /** Content the client received, to count when the upstream's usage never came. */
  delivered: string;
  ttftMs: number | null;
  /** How it ended when not whole: the error sent as the stream's last event, or the client gone. */
  error: GatewayError | null;
  clientGone: boolean;
}

/**
 * Relays an upstream stream as OpenAI SSE, chunk by chunk as it arrives: each chunk is written
 * at once, and a client that stops reading pauses the upstream (backpressure) rather than filling
 * memory. After the first byte an upstream failure can no longer be an HTTP status, so it becomes
 * one `data: {"error":…}` event and the stream ends without `[DONE]`.
 */
export async function relayStream(stream: ChatStream, res: ServerResponse, o: RelayOptions): Promise<StreamOutcome> {
  const out: StreamOutcome = { usage: null, delivered: '', ttftMs: null, error: null, clientGone: false };
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
      const send = present(next.value, o, out, stream);
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
  out.error = cutBy ?? (o.signal.aborted ? null : failure === null ? null : streamError(failure));
  if (out.error !== null) {
    res.end(`data: ${errorBody(out.error, o.traceId)}\n\n`);
  } else if (!o.signal.aborted) {
    res.end('data: [DONE]\n\n');
  } else {
    out.clientGone = true;
    out.usage ??= stream.usage;
    if (!res.destroyed) res.destroy();
  }
  return out;
}

/** After the first byte every upstream failure is the same to the client: the model service broke off. */
function streamError(e: unknown): GatewayError {
  if (!(e instanceof UpstreamError)) return new GatewayError('internal');
  const err = toGatewayError(e);
  return err.status === 502 ? err : new GatewayError('upstream_failed', { message: 'The model service broke off the stream' });
}

/** The chunk as the client sees it, or null to drop it (the usage chunk the client did not ask for). */
function present(chunk: JsonObject, o: RelayOptions, out: StreamOutcome, stream: ChatStream): JsonObject | null {
  const choices = chunk['choices'];
  if (Array.isArray(choices)) {
    for (const c of choices as { delta?: { content?: unknown } }[]) {
      const text = c.delta?.content;
      if (typeof text === 'string') out.delivered += text;
    }
  }
  const usage = chunk['usage'];
  if (usage !== undefined && usage !== null) {
    // The adapter has read this chunk's usage already, in its own provider's terms.
    out.usage = stream.usage;
    if (!o.includeUsage) {
      if (!Array.isArray(choices) || choices.length === 0) return null;
      delete chunk['usage'];
    } else if (out.usage !== null) {
      (usage as JsonObject)['cost'] = o.costOf(out.usage);
    }
  } else if (!o.includeUsage && usage === null) {
    delete chunk['usage'];
  }
  chunk['model'] = o.model;
  return chunk;
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
