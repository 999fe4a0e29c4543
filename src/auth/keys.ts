import { createHash, timingSafeEqual } from 'node:crypto';
import { randomBase62 } from '../store/ids.js';

const SECRET_LENGTH = 48;
const PREFIX_LENGTH = 10;

/** A new API key: `sk-` and 48 random base62 characters (about 285 bits). */
export function generateKey(): { key: string; prefix: string; hash: string } {
  const key = `sk-${randomBase62(SECRET_LENGTH)}`;
  return { key, prefix: key.slice(0, PREFIX_LENGTH), hash: hashKey(key) };
}

/**
 * Keys are long random secrets, so a plain SHA-256 is enough to make a stolen database useless
 * (no dictionary to try) and keeps the per-request lookup cheap; a slow password hash would not
 * add safety here.
 */
export function hashKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/** Constant-time comparison of a presented secret with a stored SHA-256 hex digest. */
export function matchesHash(presented: string, storedHex: string): boolean {
  const a = createHash('sha256').update(presented).digest();
  const b = Buffer.from(storedHex, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

/** `Bearer <token>`; null when the header is missing or has another scheme. */
export function bearerToken(header: string | undefined): string | null {
  if (header === undefined || header.length < 8) return null;
  if (header.slice(0, 7).toLowerCase() !== 'bearer ') return null;
  const token = header.slice(7).trim();
  return token === '' ? null : token;
}
