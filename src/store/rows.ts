import { decodeLimits, decodeModels } from './codec.js';
import type { Account, ApiKey, UsageRecord } from './types.js';

// Rows of either database as its driver returns them: integers as bigint (better-sqlite3 with
// safe integers, node-postgres's BIGINT with the store's parser: never through a float) or as
// number (PostgreSQL's INTEGER); flags as 0/1 (SQLite) or boolean (PostgreSQL).

export type Row = Record<string, unknown>;

const big = (v: unknown): bigint => (typeof v === 'bigint' ? v : BigInt(v as number));
const num = (v: unknown): number => Number(v as bigint | number);
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : num(v));
const textOrNull = (v: unknown): string | null => (v as string | null) ?? null;
const flag = (v: unknown): boolean => v === true || v === 1n || v === 1;

export function toAccount(r: Row): Account {
  return {
    id: r['id'] as string,
    name: r['name'] as string,
    balance: big(r['balance']),
    held: big(r['held']),
    limits: decodeLimits(textOrNull(r['limits'])),
    createdAt: num(r['created_at']),
  };
}

export function toKey(r: Row): ApiKey {
  return {
    id: r['id'] as string,
    accountId: r['account_id'] as string,
    name: textOrNull(r['name']),
    prefix: r['prefix'] as string,
    hash: r['key_hash'] as string,
    models: decodeModels(textOrNull(r['models'])),
    limits: decodeLimits(textOrNull(r['limits'])),
    frozen: flag(r['frozen']),
    expiresAt: numOrNull(r['expires_at']),
    revokedAt: numOrNull(r['revoked_at']),
    createdAt: num(r['created_at']),
  };
}

export function toUsage(r: Row): UsageRecord {
  return {
    traceId: r['trace_id'] as string,
    accountId: r['account_id'] as string,
    keyId: r['key_id'] as string,
    model: r['model'] as string,
    provider: textOrNull(r['provider']),
    upstreamModel: textOrNull(r['upstream_model']),
    promptTokens: num(r['prompt_tokens']),
    completionTokens: num(r['completion_tokens']),
    cachedTokens: num(r['cached_tokens']),
    cacheWriteTokens: num(r['cache_write_tokens']),
    reasoningTokens: num(r['reasoning_tokens']),
    cost: big(r['cost']),
    status: num(r['status']),
    errorType: textOrNull(r['error_type']),
    stream: flag(r['stream']),
    latencyMs: num(r['latency_ms']),
    ttftMs: numOrNull(r['ttft_ms']),
    createdAt: num(r['created_at']),
    attempts: num(r['attempts']),
    clientRequestId: textOrNull(r['client_request_id']),
  };
}
