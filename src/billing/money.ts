// Money is an integer count of nano-dollars (1e-9 USD) held in a bigint: no float ever touches
// it. Amounts cross the API as decimal strings with all nine places ("12.500000000").

export const UNIT_DECIMALS = 9;
const UNITS_PER_USD = 10n ** BigInt(UNIT_DECIMALS);

/**
 * The largest amount an account may hold, and so the largest credit: one billion USD. The
 * databases keep money in signed 64-bit integers (at most ~9.2 billion USD); a bound well below
 * that keeps sums over the ledger in range too.
 */
export const MAX_BALANCE_USD = 1_000_000_000n;
export const MAX_BALANCE = MAX_BALANCE_USD * UNITS_PER_USD;
const DECIMAL = /^(\d+)(?:\.(\d+))?$/;

/**
 * Parses a non-negative USD decimal ("12.5", "0.000000001", or a JS number rendered by String()).
 * Returns null for anything that is not such a number or has more than nine decimal places.
 */
export function parseUsd(input: string | number): bigint | null {
  let text = typeof input === 'number' ? numberToDecimal(input) : input.trim();
  if (text === null) return null;
  if (text.startsWith('+')) text = text.slice(1);
  const m = DECIMAL.exec(text);
  if (m === null) return null;
  const whole = m[1]!;
  const frac = (m[2] ?? '').replace(/0+$/, '');
  if (frac.length > UNIT_DECIMALS) return null;
  if (whole.length > 18) return null; // beyond any sane balance; keeps bigint math bounded
  return BigInt(whole) * UNITS_PER_USD + BigInt(frac.padEnd(UNIT_DECIMALS, '0') || '0');
}

/** Exact decimal form of a finite non-negative JS number, or null (e.g. 1e-7 → "0.0000001"). */
function numberToDecimal(n: number): string | null {
  if (!Number.isFinite(n) || n < 0) return null;
  const s = String(n);
  const exp = /^(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(s);
  if (exp === null) return s;
  const digits = exp[1]! + (exp[2] ?? '');
  const e = Number(exp[3]);
  if (e < 0) return '0.' + '0'.repeat(-e - 1) + digits;
  return digits.padEnd(e + 1, '0');
}

/** "12.500000000" */
export function formatUsd(units: bigint): string {
  const neg = units < 0n;
  const abs = neg ? -units : units;
  const whole = abs / UNITS_PER_USD;
  const frac = (abs % UNITS_PER_USD).toString().padStart(UNIT_DECIMALS, '0');
  return `${neg ? '-' : ''}${whole}.${frac}`;
}

/** For display only (usage.cost in responses): a JSON number in USD. */
export function usdNumber(units: bigint): number {
  return Number(units) / 1e9;
}

const PER_MILLION = 1_000_000n;

/** Cost of `tokens` at a price in units per 1M tokens, rounded up to the unit. */
export function costOf(tokens: number, unitsPerMillion: bigint): bigint {
  if (tokens <= 0 || unitsPerMillion === 0n) return 0n;
  const raw = BigInt(tokens) * unitsPerMillion;
  return (raw + PER_MILLION - 1n) / PER_MILLION;
}

/** How many whole tokens `budget` buys at a price in units per 1M tokens. */
export function tokensAffordable(budget: bigint, unitsPerMillion: bigint): number {
  if (unitsPerMillion === 0n) return Number.MAX_SAFE_INTEGER;
  if (budget <= 0n) return 0;
  const n = (budget * PER_MILLION) / unitsPerMillion;
  return n > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(n);
}
