import { GatewayError } from '../errors.js';
import type { Store } from '../store/types.js';
import { bearerToken, generateKey, hashKey, matchesHash } from './keys.js';

/** Where the hash of a generated admin key is kept. */
export const ADMIN_KEY_SETTING = 'admin_key_hash';

/**
 * The admin key: TOKEN360_ADMIN_KEY (or `admin_key` in the config) when set; else the one
 * generated on an earlier first start (only its hash is kept); else a new one, `generated`, which
 * nothing has stored yet: start-up keeps its hash with the other first-start writes once the
 * server listens, so a start that fails leaves no key that was never shown.
 */
export async function resolveAdminKey(store: Store, configured: string | undefined): Promise<{ hash: string; generated: string | null }> {
  if (configured !== undefined && configured !== '') return { hash: hashKey(configured), generated: null };
  const stored = await store.getSetting(ADMIN_KEY_SETTING);
  if (stored !== null) return { hash: stored, generated: null };
  const { key } = generateKey();
  const adminKey = `sk-admin-${key.slice(3)}`;
  return { hash: hashKey(adminKey), generated: adminKey };
}

/** 401 unless the bearer token is the admin key; compared in constant time. */
export function authenticateAdmin(adminHash: string, authorization: string | undefined): void {
  const token = bearerToken(authorization);
  if (token === null || !matchesHash(token, adminHash)) {
    throw new GatewayError('invalid_api_key', { message: 'Invalid admin key' });
  }
}
