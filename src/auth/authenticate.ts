import { performance } from 'node:perf_hooks';
import { GatewayError } from '../errors.js';
import type { ApiKey, Limits, Store } from '../store/types.js';
import { bearerToken, hashKey } from './keys.js';

/** Unknown keys are cached too (so a flood of bad keys costs no database reads), up to this many entries. */
const MAX_ENTRIES = 100_000;

/**
 * Key lookups cached in memory. The cache is dropped whenever the store's revision moves — an
 * admin change through this process or any write by another (the CLI) — so a freeze, revoke or
 * model change applies from the next request on. The revision is read at most once a
 * millisecond: on SQLite it takes the WAL's shared-memory lock, which under load cost more than
 * the rest of authentication, and no operator's change arrives within a millisecond of a request.
 */
export class KeyCache {
  private readonly entries = new Map<string, ApiKey | null>();
  /** Account limits by account id (balances are never cached: the store decides holds). */
  private readonly accounts = new Map<string, Limits | null>();
  private revision = -1;

  constructor(private readonly store: Store) {}

  private checkedAt = -Infinity;
  private local = -1;

  private sync(): number {
    const now = performance.now();
    const local = this.store.localRevision();
    if (now - this.checkedAt < 1 && local === this.local) return this.revision;
    this.checkedAt = now;
    this.local = local;
    const rev = this.store.revision();
    if (rev !== this.revision) {
      this.entries.clear();
      this.accounts.clear();
      this.revision = rev;
    }
    return rev;
  }

  /** The cached value, or `load`'s, kept unless the store changed while it loaded. */
  private async cached<K, V>(map: Map<K, V>, k: K, load: () => Promise<V>): Promise<V> {
    const rev = this.sync();
    const hit = map.get(k);
    if (hit !== undefined) return hit;
    const v = await load();
    if (map.size >= MAX_ENTRIES) map.clear();
    // A change made while the read was in flight must not be hidden by a stale entry.
    if (this.store.revision() === rev) map.set(k, v);
    return v;
  }

  accountLimits(accountId: string): Promise<Limits | null> {
    return this.cached(this.accounts, accountId, async () => {
      const account = await this.store.getAccount(accountId);
      if (account === null) throw new GatewayError('invalid_api_key');
      return account.limits;
    });
  }

  lookup(hash: string): Promise<ApiKey | null> {
    return this.cached(this.entries, hash, () => this.store.getKeyByHash(hash));
  }
}

/** Step 1 of the request path: who is calling. 401 for a missing, malformed, unknown, revoked or expired key. */
export async function authenticate(cache: KeyCache, authorization: string | undefined, now = Date.now()): Promise<ApiKey> {
  const token = bearerToken(authorization);
  if (token === null) {
    throw new GatewayError('invalid_api_key', {
      message: 'Missing API key. Send it as "Authorization: Bearer <key>"',
    });
  }
  const key = await cache.lookup(hashKey(token));
  if (key === null || key.revokedAt !== null) throw new GatewayError('invalid_api_key');
  if (key.expiresAt !== null && key.expiresAt <= now) {
    throw new GatewayError('invalid_api_key', { message: 'This API key has expired' });
  }
  return key;
}
