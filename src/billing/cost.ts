import type { TokenUsage } from '../providers/types.js';
import type { Price } from '../routing/catalog.js';

const PER_MILLION = 1_000_000n;

/**
 * What a request cost: prompt tokens read from the provider's cache at the cached price, those
 * written to it at the cache-write price, the rest at the input price; output (reasoning
 * included) at the output price; rounded up to the unit once.
 */
export function costOfUsage(u: TokenUsage, price: Price): bigint {
  const cached = Math.min(u.cachedTokens, u.promptTokens);
  const written = Math.min(u.cacheWriteTokens, u.promptTokens - cached);
  const uncached = BigInt(u.promptTokens - cached - written);
  const raw = uncached * price.input + BigInt(cached) * price.cachedInput + BigInt(written) * price.cacheWrite + BigInt(u.completionTokens) * price.output;
  return raw <= 0n ? 0n : (raw + PER_MILLION - 1n) / PER_MILLION;
}
