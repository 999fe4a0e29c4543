import { UpstreamError } from './upstream-error.js';

/**
 * The bytes of non-streamed upstream bodies held at once across all requests. A body that would
 * pass the total is refused, not queued: waiting for room would hold the client and the
 * upstream connection for an unknown time, and the upstream has already done (and billed) the work.
 */
export class ByteBudget {
  private used = 0;
  constructor(readonly total: number) {}

  take(n: number): boolean {
    if (this.used + n > this.total) return false;
    this.used += n;
    return true;
  }

  give(n: number): void {
    this.used -= n;
  }
}

/** What bounds what an adapter buffers (server.max_upstream_response_bytes, …). */
export interface UpstreamLimits {
  maxResponseBytes: number;
  maxEventBytes: number;
  budget: ByteBudget;
}

/** A whole body in one buffer, holding its share of the budget until `release` (which may be called more than once). */
export interface HeldBody {
  bytes: Buffer;
  release: () => void;
}

/** A readable body as undici hands it over, with the response headers. */
interface Body {
  headers: Record<string, string | string[] | undefined>;
  body: AsyncIterable<unknown> & { destroy(): unknown };
}

const tooLarge = (why: string): UpstreamError => new UpstreamError('too_large', `upstream response ${why}`);

/**
 * Reads a body into one buffer without intermediate copies when its length is announced (the
 * usual case), refusing it at once if the announced length is over the cap or does not fit the
 * budget, and as soon as it grows past either when it is not.
 */
export async function readWhole(res: Body, limits: UpstreamLimits): Promise<HeldBody> {
  const { budget, maxResponseBytes: cap } = limits;
  let held = 0;
  const release = (): void => {
    budget.give(held);
    held = 0;
  };
  try {
    const announced = Number(res.headers['content-length'] ?? NaN);
    if (Number.isSafeInteger(announced) && announced >= 0) {
      if (announced > cap) throw tooLarge(`of ${announced} bytes is over the cap of ${cap}`);
      if (!budget.take(announced)) throw tooLarge(`of ${announced} bytes does not fit the buffer budget`);
      held = announced;
      const bytes = Buffer.allocUnsafe(announced);
      let at = 0;
      for await (const chunk of res.body) {
        const c = chunk as Buffer;
        if (at + c.length > announced) throw new UpstreamError('protocol', 'upstream response longer than its content-length');
        c.copy(bytes, at);
        at += c.length;
      }
      if (at !== announced) throw new UpstreamError('reset', 'upstream response shorter than its content-length');
      return { bytes, release };
    }
    // No length announced: the pieces are joined at the end, so for a moment the body is held twice.
    const parts: Buffer[] = [];
    for await (const chunk of res.body) {
      const c = chunk as Buffer;
      if (held + c.length > cap) throw tooLarge(`is over the cap of ${cap} bytes`);
      if (!budget.take(c.length)) throw tooLarge('does not fit the buffer budget');
      held += c.length;
      parts.push(c);
    }
    return { bytes: parts.length === 1 ? parts[0]! : Buffer.concat(parts, held), release };
  } catch (e) {
    release();
    res.body.destroy();
    throw e;
  }
}
