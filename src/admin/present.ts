import { formatUsd } from '../billing/money.js';
import type { Account, ApiKey, Limits, UsageRecord } from '../store/types.js';

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
