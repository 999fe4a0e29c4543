import { formatUsd } from '../billing/money.js';
import type { Account, ApiKey, Limits, UsageGroupBy, UsageRecord, UsageSummaryRow, UsageTotals } from '../store/types.js';

// How accounts, keys and usage records look on the admin API and in the CLI's --json output:
// snake_case, amounts as USD decimal strings, times as ISO 8601.

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export function presentLimits(l: Limits | null): Record<string, unknown> | null {
  if (l === null) return null;
  const out: Record<string, unknown> = {};
  if (l.rpm !== undefined) out['rpm'] = l.rpm;
  if (l.tpm !== undefined) out['tpm'] = l.tpm;
  if (l.concurrency !== undefined) out['concurrency'] = l.concurrency;
  if (l.daily_spend !== undefined) out['daily_spend'] = formatUsd(l.daily_spend);
  return out;
}

export function presentAccount(a: Account): Record<string, unknown> {
  return {
    id: a.id,
    object: 'account',
    name: a.name,
    balance: formatUsd(a.balance),
    held: formatUsd(a.held),
    available: formatUsd(a.balance - a.held),
    limits: presentLimits(a.limits),
    created_at: iso(a.createdAt),
  };
}

export function presentKey(k: ApiKey, secret?: string): Record<string, unknown> {
  return {
    id: k.id,
    object: 'api_key',
    ...(secret === undefined ? {} : { key: secret }),
    prefix: k.prefix,
    account_id: k.accountId,
    name: k.name,
    models: k.models,
    limits: presentLimits(k.limits),
    frozen: k.frozen,
    expires_at: iso(k.expiresAt),
    created_at: iso(k.createdAt),
  };
}

export function presentUsage(u: UsageRecord): Record<string, unknown> {
  return {
    trace_id: u.traceId,
    client_request_id: u.clientRequestId,
    account_id: u.accountId,
    key_id: u.keyId,
    model: u.model,
    provider: u.provider,
    upstream_model: u.upstreamModel,
    attempts: u.attempts,
    prompt_tokens: u.promptTokens,
    completion_tokens: u.completionTokens,
    cached_tokens: u.cachedTokens,
    cache_write_tokens: u.cacheWriteTokens,
    reasoning_tokens: u.reasoningTokens,
    cost: formatUsd(u.cost),
    status: u.status,
    error_type: u.errorType,
    stream: u.stream,
    latency_ms: Math.round(u.latencyMs),
    ttft_ms: u.ttftMs === null ? null : Math.round(u.ttftMs),
    created_at: iso(u.createdAt),
  };
}

export function presentTotals(t: UsageTotals): Record<string, unknown> {
  return {
    requests: t.requests,
    errors: t.errors,
    prompt_tokens: t.promptTokens,
    completion_tokens: t.completionTokens,
    cached_tokens: t.cachedTokens,
    cache_write_tokens: t.cacheWriteTokens,
    reasoning_tokens: t.reasoningTokens,
    cost: formatUsd(t.cost),
  };
}

/** The totals of several summary rows (over all groups). */
export function sumTotals(rows: readonly UsageTotals[]): UsageTotals {
  const t: UsageTotals = { requests: 0, errors: 0, promptTokens: 0, completionTokens: 0, cachedTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0, cost: 0n };
  for (const r of rows) {
    t.requests += r.requests;
    t.errors += r.errors;
    t.promptTokens += r.promptTokens;
    t.completionTokens += r.completionTokens;
    t.cachedTokens += r.cachedTokens;
    t.cacheWriteTokens += r.cacheWriteTokens;
    t.reasoningTokens += r.reasoningTokens;
    t.cost += r.cost;
  }
  return t;
}

export function presentUsageSummary(s: { groupBy: UsageGroupBy; from: number; to: number; rows: readonly UsageSummaryRow[] }): Record<string, unknown> {
  return {
    object: 'usage_summary',
    group_by: s.groupBy,
    from: iso(s.from),
    to: iso(s.to),
    data: s.rows.map((r) => ({ group: r.group, ...presentTotals(r) })),
    total: presentTotals(sumTotals(s.rows)),
  };
}

export function presentPeriod(p: { from: number; to: number; totals: UsageTotals }): Record<string, unknown> {
  return { from: iso(p.from), to: iso(p.to), ...presentTotals(p.totals) };
}
