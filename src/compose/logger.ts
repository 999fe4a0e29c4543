import { pino, type DestinationStream, type Logger } from 'pino';

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

/**
 * `destination`: where lines go; tests give a stream to read them back. By default stdout,
 * buffered: lines gather and go out together, at most FLUSH_MS late, instead of a system call
 * per request line (a fifth of the gateway's CPU per request at one request at a time). pino
 * flushes what is left when the process exits.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = { level, redact: { paths: REDACT, censor: '[redacted]' }, serializers: { req, res, err } };
  if (destination !== undefined) return pino(options, destination);
  const out = pino.destination({ dest: 1, sync: false, minLength: BUFFER_BYTES });
  setInterval(() => out.flush(), FLUSH_MS).unref();
  return pino(options, out);
}
