import { mayUse } from '../../auth/authorize.js';
import { badRequest, GatewayError } from '../../errors.js';
import type { Provider, UpstreamTrace } from '../../providers/contract.js';
import { cleanMessage } from '../../providers/clean-message.js';
import { toGatewayError, upstreamMessage, UpstreamError } from '../../providers/upstream-error.js';
import type { Catalog } from '../../routing/catalog.js';
import type { ApiKey, ResponseOrigin } from '../../store/types.js';
import type { JsonObject } from '../../types/chat.js';

// GET and DELETE /v1/responses/{id} (SPEC §6): a response a native deployment made is read or
// deleted at that deployment, with its credentials. Free, like count_tokens: no hold, no usage
// record, not counted by limits; the upstream does not bill these calls either.

export interface StoredResponseRequest {
  method: 'GET' | 'DELETE';
  id: string;
  /** The client's query string without its `?`. */
  query: string;
  key: ApiKey;
  signal: AbortSignal;
  trace: UpstreamTrace;
}

/**
 * Unknown, expired, another account's, or behind no model this key may use: the same 404, so
 * that a key learns nothing of ids it cannot reach (not even that they exist).
 */
const notFound = (id: string): GatewayError => new GatewayError('not_found', { message: `Response with id '${id}' not found.` });

/** The deployment that made the response and the model id the client knows it by, when this key may reach it. */
export function reachable(catalog: Catalog, key: ApiKey, origin: ResponseOrigin | null): { provider: Provider; model: string; upstreamModel: string } | null {
  if (origin === null || origin.accountId === null || origin.accountId !== key.accountId) return null;
  // The first model in the catalogue's order that has the deployment and that this key may use.
  for (const route of catalog.all()) {
    if (!mayUse(key, route.id)) continue;
    for (const tier of route.tiers) {
      for (const d of tier) {
        if (d.provider.name === origin.provider && d.upstreamModel === origin.upstreamModel && d.provider.storedResponse !== undefined) {
          return { provider: d.provider, model: route.id, upstreamModel: d.upstreamModel };
        }
      }
    }
  }
  return null;
}

/** `stream=true` would replay a background response's events: not relayed here (a body, not a stream, comes back). */
export function checkQuery(query: string): void {
  const stream = new URLSearchParams(query).get('stream');
  if (stream !== null && stream !== 'false') throw badRequest('Streaming a stored response is not supported by this gateway; retrieve it without stream', 'stream');
}

export async function storedResponse(
  catalog: Catalog,
  origins: { findResponse(id: string, now: number): Promise<ResponseOrigin | null> },
  r: StoredResponseRequest,
): Promise<{ status: number; body: JsonObject }> {
  if (r.key.frozen) throw new GatewayError('api_key_frozen');
  if (r.method === 'GET') checkQuery(r.query);
  const origin = await origins.findResponse(r.id, Date.now());
  const at = reachable(catalog, r.key, origin);
  if (at === null) throw notFound(r.id);
  let answer: { status: number; body: JsonObject };
  try {
    answer = await at.provider.storedResponse!({ method: r.method, id: r.id, query: r.query, signal: r.signal, trace: r.trace });
  } catch (e) {
    if (!(e instanceof UpstreamError)) throw e;
    throw upstreamFailure(e, r.id, at.provider.secrets);
  }
  const body = answer.body['model'] === at.upstreamModel ? { ...answer.body, model: at.model } : answer.body;
  return { status: answer.status, body };
}

/** The upstream no longer has it (deleted, or expired there): the client's 404, with the upstream's words cleaned. */
function upstreamFailure(e: UpstreamError, id: string, secrets: readonly string[]): GatewayError {
  if (e.failure !== 'status' || e.status !== 404) return toGatewayError(e, secrets);
  const message = upstreamMessage(e.body);
  return message === null ? notFound(id) : new GatewayError('not_found', { message: cleanMessage(message, secrets) });
}
