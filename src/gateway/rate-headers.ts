import { peekHeaders } from '../limits/admit.js';
import type { ApiKey } from '../store/types.js';
import type { Exchange } from './context.js';
import type { Gateway } from './gateway.js';

/** A request refused before admission still shows the key's rate-limit headers (SPEC §2: every response). */
export async function refusedHeaders(gw: Gateway, key: ApiKey, ex: Exchange): Promise<void> {
  if ('x-ratelimit-limit-requests' in ex.headers || 'x-ratelimit-limit-tokens' in ex.headers) return;
  await peekHeaders(gw.limiter, key, ex.headers).catch(() => undefined);
}
