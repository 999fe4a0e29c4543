import { GatewayError } from '../errors.js';
import { cleanMessage } from './clean-message.js';

export type UpstreamFailure = 'connect' | 'timeout' | 'reset' | 'status' | 'protocol' | 'too_large' | 'aborted';

const BODY_CAP = 4096;

/**
 * A failed upstream attempt: what went wrong, the status, headers and a bounded body. Routing
 * decides from `retryable` whether another deployment may be tried, and `toGatewayError` decides
 * what the client sees. Its message is for logs; clients get a cleaned one.
 */
export class UpstreamError extends Error {
  override name = 'UpstreamError';
  readonly failure: UpstreamFailure;
  readonly status: number | null;
  readonly headers: Record<string, string>;
  readonly body: string;

  constructor(failure: UpstreamFailure, message: string, opts: { status?: number; headers?: Record<string, string>; body?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.failure = failure;
    this.status = opts.status ?? null;
    this.headers = opts.headers ?? {};
    this.body = (opts.body ?? '').slice(0, BODY_CAP);
  }

  /**
   * Another deployment may succeed where this one failed; a request the upstream called invalid
   * will not, nor one whose answer was too large to relay (it would be as large, and paid for, again).
   */
  get retryable(): boolean {
    return !this.isClientFault && this.failure !== 'aborted' && this.failure !== 'too_large';
  }

  get isClientFault(): boolean {
    return this.failure === 'status' && (this.status === 400 || this.status === 413 || this.status === 422);
  }

  /** Busy rather than broken: 429, and Anthropic's 529 `overloaded_error`. */
  get isSaturated(): boolean {
    return this.failure === 'status' && (this.status === 429 || this.status === 529);
  }
}

/** What the client sees of the last failed attempt (SPEC §3, 400/502/503 rows). */
export function toGatewayError(err: UpstreamError, secrets: readonly string[] = []): GatewayError {
  if (err.isClientFault) {
    return new GatewayError('upstream_invalid_request', {
      message: cleanMessage(upstreamMessage(err.body) ?? 'The model service rejected the request as invalid', secrets),
      param: upstreamParam(err.body, secrets),
    });
  }
  if (err.isSaturated) {
    return new GatewayError('upstream_saturated', { retryAfterMs: retryAfterMs(err.headers) ?? 1000 });
  }
  const why: Record<UpstreamFailure, string> = {
    connect: 'could not be reached',
    timeout: 'did not answer in time',
    reset: 'closed the connection',
    status: 'returned an error',
    protocol: 'sent an invalid response',
    too_large: 'sent a response too large to relay',
    aborted: 'was cancelled',
  };
  return new GatewayError('upstream_failed', { message: `The model service ${why[err.failure]}` });
}

function parsed(body: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(body);
    if (v === null || typeof v !== 'object') return null;
    const e = (v as Record<string, unknown>)['error'];
    return e !== null && typeof e === 'object' ? (e as Record<string, unknown>) : (v as Record<string, unknown>);
  } catch {
    return null;
  }
}

/** The message in an upstream's error body (OpenAI-style `{error:{message}}` or a short plain text), uncleaned. */
export function upstreamMessage(body: string): string | null {
  const e = parsed(body);
  const m = e?.['message'];
  if (typeof m === 'string' && m !== '') return m;
  return body.trim() !== '' && body.length < 500 && !body.trimStart().startsWith('<') ? body.trim() : null;
}

/** The field the upstream blames (`messages`, `tools[0].function.parameters`), cleaned like the message. */
function upstreamParam(body: string, secrets: readonly string[]): string | null {
  const p = parsed(body)?.['param'];
  return typeof p === 'string' && p !== '' && p.length <= 200 ? cleanMessage(p, secrets) : null;
}

/** `retry-after-ms` or `retry-after` (seconds or an HTTP date) as milliseconds, capped at 60 s. */
export function retryAfterMs(headers: Record<string, string>): number | null {
  const ms = Number(headers['retry-after-ms']);
  if (Number.isFinite(ms) && ms > 0) return Math.min(ms, 60_000);
  const ra = headers['retry-after'];
  if (ra === undefined) return null;
  const s = Number(ra);
  if (Number.isFinite(s) && s >= 0) return Math.min(s * 1000, 60_000);
  const at = Date.parse(ra);
  return Number.isNaN(at) ? null : Math.min(Math.max(0, at - Date.now()), 60_000);
}
