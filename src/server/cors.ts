import type { FastifyInstance } from 'fastify';

// CORS for browser clients on /v1 (SPEC §6): preflights answered before routing, and the
// allow-origin header on every /v1 response to an allowed origin. The headers go on the raw
// response, so that routes that write it themselves (the pipeline's) carry them too.

/** What a browser script may read of our responses beyond the CORS-safelisted headers. */
const EXPOSED = [
  'x-request-id', 'request-id', 'x-client-request-id', 'retry-after', 'retry-after-ms',
  'x-ratelimit-limit-requests', 'x-ratelimit-remaining-requests', 'x-ratelimit-reset-requests',
  'x-ratelimit-limit-tokens', 'x-ratelimit-remaining-tokens', 'x-ratelimit-reset-tokens',
].join(', ');

const METHODS = 'GET, POST, DELETE, OPTIONS';
/** How long a browser may cache a preflight answer, in seconds. */
const MAX_AGE = '600';

/** `origins`: exact origins (`https://app.example.com`), or `*` for any. Empty: no CORS at all. */
export function registerCors(app: FastifyInstance, origins: readonly string[]): void {
  if (origins.length === 0) return;
  const any = origins.includes('*');
  const allowed = new Set(origins);
  app.addHook('onRequest', (req, reply, done) => {
    const origin = req.headers.origin;
    if (origin === undefined || !isV1(req.url) || !(any || allowed.has(origin))) {
      done();
      return;
    }
    const res = reply.raw;
    // A listed origin is echoed (and caches must keep answers per origin); any origin is `*`,
    // which browsers accept because the key travels in a header, not a cookie.
    res.setHeader('access-control-allow-origin', any ? '*' : origin);
    if (!any) res.setHeader('vary', 'Origin');
    const preflight = req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined;
    if (!preflight) {
      res.setHeader('access-control-expose-headers', EXPOSED);
      done();
      return;
    }
    const asked = req.headers['access-control-request-headers'];
    void reply
      .code(204)
      .headers({
        'access-control-allow-methods': METHODS,
        'access-control-allow-headers': typeof asked === 'string' && asked !== '' ? asked : 'authorization, content-type',
        'access-control-max-age': MAX_AGE,
      })
      .send();
  });
}

function isV1(url: string): boolean {
  return url === '/v1' || url.startsWith('/v1/') || url.startsWith('/v1?');
}
