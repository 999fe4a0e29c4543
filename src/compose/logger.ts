import { writeSync } from 'node:fs';
import { pino, type DestinationStream, type Logger } from 'pino';
import type { LineLog } from '../gateway/log-sink.js';

// The process's one logger. Secrets are kept out structurally: no log call passes a request, its
// headers or a provider's config, and the serializers below reduce a request, a response or an
// error that still reaches a line to fields that carry none. `redact` is a second guard, for a
// headers object logged by mistake.

/** Credential headers, as clients and providers send them. */
const CREDENTIAL_HEADERS = ['authorization', '"x-api-key"', '"x-goog-api-key"', '"api-key"', '"proxy-authorization"', 'cookie'];
// Fixed paths only: a wildcard makes the redaction walk every line's objects, on the request path.
const REDACT = CREDENTIAL_HEADERS.flatMap((h) => [`req.headers.${h}`, `headers.${h}`]);

/** A request: its method and path, never its headers or its query (a query may carry a key). */
function req(r: { method?: string; url?: string }): object {
  const url = r.url ?? '';
  const q = url.indexOf('?');
  return { method: r.method, path: q < 0 ? url : url.slice(0, q) };
}

function res(r: { statusCode?: number }): object {
  return { status: r.statusCode };
}

/**
 * An error: its class, code, message and stack. Not its other own fields: an upstream failure
 * carries the upstream's headers and body, which may repeat a credential.
 */
function err(e: unknown): object {
  if (!(e instanceof Error)) return { message: String(e) };
  const code = (e as { code?: unknown }).code;
  return { type: e.constructor.name, ...(typeof code === 'string' ? { code } : {}), message: e.message, stack: e.stack };
}

/** Lines gather up to this many bytes, or for at most FLUSH_MS, before they are written. */
const BUFFER_BYTES = 4096;
const FLUSH_MS = 100;
/** Lines a reader that does not keep up leaves unwritten are dropped past this many bytes. */
const MAX_PENDING_BYTES = 4 << 20;

/**
 * Standard output, buffered: lines gather and go out together, at most FLUSH_MS late, in one
 * write(2) on this thread, instead of a system call per request line (a fifth of the gateway's
 * CPU per request at one request at a time). Not sonic-boom: its asynchronous mode hops to the
 * thread pool for every write, and at exit its synchronous flush retries a write to a reader
 * that has gone (EPIPE) forever, so a gateway whose log reader died could not be stopped. Here a
 * reader that has gone ends the logging, one that is full (EAGAIN) gets the lines on a later
 * flush, and what is left at exit is tried once.
 */
export class StdoutLines implements DestinationStream {
  private pending: string[] = [];
  private bytes = 0;
  private closed = false;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly fd = 1) {
    this.timer = setInterval(() => this.flush(), FLUSH_MS).unref();
    process.once('exit', () => this.flush());
  }

  write(line: string): void {
    if (this.closed) return;
    if (this.bytes > MAX_PENDING_BYTES) return;
    this.pending.push(line);
    this.bytes += line.length;
    if (this.bytes >= BUFFER_BYTES) this.flush();
  }

  flush(): void {
    if (this.closed || this.bytes === 0) return;
    const text = this.pending.length === 1 ? this.pending[0]! : this.pending.join('');
    this.pending = [];
    this.bytes = 0;
    const buf = Buffer.from(text);
    let at = 0;
    try {
      while (at < buf.length) at += writeSync(this.fd, buf, at);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN' || code === 'EWOULDBLOCK') {
        // The rest goes first on the next flush, in order.
        const rest = buf.subarray(at).toString();
        this.pending.unshift(rest);
        this.bytes += rest.length;
        return;
      }
      this.closed = true;
      clearInterval(this.timer);
    }
  }
}

/** The process's standard output: one buffer for every logger (a test process starts many gateways). */
let stdoutLines: StdoutLines | null = null;

/**
 * Lines at info of flat objects of plain values (the request lines), written to the logger's
 * destination as pino writes them (level, time, pid and hostname, the fields, msg) but built by
 * one JSON.stringify. pino serialises field by field, through its serializers and redaction, to
 * guard what it cannot know; these lines are built from fields the gateway chose (no headers, no
 * errors, nothing to redact), and pino's way was 7–9 % of a request's instructions. Through
 * `pino.symbols`, pino's documented access for integrations, so the lines share its time format,
 * its bindings and its destination (and a test's destination sees them).
 */
export function infoLines(log: Logger): LineLog {
  const { streamSym, timeSym, chindingsSym } = pino.symbols;
  const holder = log as unknown as Record<symbol, unknown>;
  const stream = holder[streamSym] as DestinationStream;
  const time = holder[timeSym] as () => string;
  const bindings = holder[chindingsSym] as string;
  return {
    info(obj, msg) {
      if (!log.isLevelEnabled('info')) return;
      const fields = JSON.stringify(obj);
      const body = fields.length > 2 ? `${fields.slice(1, -1)},` : '';
      stream.write(`{"level":30${time()}${bindings},${body}"msg":${JSON.stringify(msg)}}\n`);
    },
  };
}

/** `destination`: where lines go; tests give a stream to read them back. By default standard output (StdoutLines). */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = { level, redact: { paths: REDACT, censor: '[redacted]' }, serializers: { req, res, err } };
  return pino(options, destination ?? (stdoutLines ??= new StdoutLines()));
}
