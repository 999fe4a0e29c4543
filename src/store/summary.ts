import type { Row } from './rows.js';
import type { UsageSummaryRow, UsageTotals } from './types.js';

// What both stores do with the sums their databases return for a usage summary.

export const DAY_MS = 86_400_000;

/** An empty group, to add sums to. */
export function emptyGroup(group: string): UsageSummaryRow {
  return { group, requests: 0, errors: 0, promptTokens: 0, completionTokens: 0, cachedTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0, cost: 0n };
}

/** Adds a row of sums (columns requests, errors, prompt_tokens, …, cost) to a group. */
export function addTotals(into: UsageTotals, r: Row): void {
  into.requests += Number(r['requests']);
  into.errors += Number(r['errors']);
  into.promptTokens += Number(r['prompt_tokens']);
  into.completionTokens += Number(r['completion_tokens']);
  into.cachedTokens += Number(r['cached_tokens']);
  into.cacheWriteTokens += Number(r['cache_write_tokens']);
  into.reasoningTokens += Number(r['reasoning_tokens']);
  // Exact: a bigint from SQLite, a decimal string of a NUMERIC sum from PostgreSQL.
  into.cost += BigInt(r['cost'] as bigint | string);
}

/** The UTC day number (days since 1970-01-01) as `YYYY-MM-DD`. */
export const isoDay = (day: number): string => new Date(day * DAY_MS).toISOString().slice(0, 10);

/** Days ascending; else by cost, then requests, descending, then by name. */
export function summaryOrder(byDay: boolean): (a: UsageSummaryRow, b: UsageSummaryRow) => number {
  const byName = (a: UsageSummaryRow, b: UsageSummaryRow): number => (a.group < b.group ? -1 : a.group > b.group ? 1 : 0);
  if (byDay) return byName;
  return (a, b) => (a.cost !== b.cost ? (b.cost > a.cost ? 1 : -1) : b.requests - a.requests || byName(a, b));
}
