import type { TokenUsage } from '../providers/types.js';
import type { Price } from '../routing/catalog.js';

const PER_MILLION = 1_000_000n;

/** What a request cost: uncached prompt at the input price, cached prompt at the cached price, output at the output price, rounded up to the unit once. */
export function costOfUsage(u: TokenUsage, price: Price): bigint {
  const cached = BigInt(Math.min(u.cachedTokens, u.promptTokens));
  const uncached = BigInt(u.promptTokens) - cached;
  const raw = uncached * price.input + cached * price.cachedInput + BigInt(u.completionTokens) * price.output;
  return raw <= 0n ? 0n : (raw + PER_MILLION - 1n) / PER_MILLION;
}
