import { generateKey } from '../auth/keys.js';
import { formatUsd, MAX_BALANCE, MAX_BALANCE_USD, parseUsd } from '../billing/money.js';
import { badRequest, GatewayError } from '../errors.js';
import { parseBoundedJson } from '../gateway/json-shape.js';
import { sumTotals } from './present.js';
import type { Account, ApiKey, KeyPatch, Limits, Store, UsageGroupBy, UsagePage, UsageSummaryRow, UsageTotals } from '../store/types.js';
import { accountCreated, accountCredited, accountUpdated, keyCreated, keyRevoked, keyUpdated, type Audit } from './audit.js';

// The operations of the admin API, with their input checks, shared by the HTTP routes and the
// CLI so that both accept and refuse exactly the same things. Inputs are untrusted JSON. Each
// change, once made, is told to `audit` (audit.ts), whichever of the two made it.

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

function body(input: unknown): Obj {
  if (input === undefined || input === null) return {};
  if (!isObj(input)) throw badRequest('The request body must be a JSON object');
  return input;
}

function onlyKeys(o: Obj, allowed: readonly string[]): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) throw badRequest(`Unknown parameter: '${k}'`, k);
}

export function parseAmount(v: unknown, param: string, allowZero = false): bigint {
  if (typeof v !== 'string' && typeof v !== 'number') throw badRequest(`Invalid '${param}': expected a USD amount as a decimal string`, param);
  const units = parseUsd(v);
  if (units === null || (!allowZero && units === 0n) || units > MAX_BALANCE) {
    throw badRequest(
      `Invalid '${param}': expected a ${allowZero ? 'non-negative' : 'positive'} USD amount of at most ${MAX_BALANCE_USD} with at most 9 decimal places`,
      param,
    );
  }
  return units;
}

export function parseLimits(v: unknown, param = 'limits'): Limits | null {
  if (v === null) return null;
  if (!isObj(v)) throw badRequest(`Invalid '${param}': expected an object`, param);
  onlyKeys(v, ['rpm', 'tpm', 'concurrency', 'daily_spend']);
  const out: Limits = {};
  for (const name of ['rpm', 'tpm', 'concurrency'] as const) {
    const n = v[name];
    if (n === undefined || n === null) continue;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 1e12) {
      throw badRequest(`Invalid '${param}.${name}': expected a positive integer`, `${param}.${name}`);
    }
    out[name] = n;
  }
  if (v['daily_spend'] !== undefined && v['daily_spend'] !== null) out.daily_spend = parseAmount(v['daily_spend'], `${param}.daily_spend`, true);
  return out;
}

function parseModels(v: unknown): string[] | null {
  if (v === null) return null;
  if (!Array.isArray(v) || !v.every((m) => typeof m === 'string' && m !== '' && m.length <= 256) || v.length > 1000) {
    throw badRequest("Invalid 'models': expected a list of model ids or globs", 'models');
  }
  return v as string[];
}

function parseExpiry(v: unknown): number | null {
  if (v === null) return null;
  if (typeof v === 'number' && Number.isFinite(v) && v > 0) return Math.round(v * 1000);
  if (typeof v === 'string' && /^\d{4}-\d{2}-\d{2}/.test(v)) {
    const ms = Date.parse(v);
    if (!Number.isNaN(ms)) return ms;
  }
  throw badRequest("Invalid 'expires_at': expected an ISO 8601 time or Unix seconds", 'expires_at');
}

function parseName(v: unknown, required: boolean): string | null {
  if (v === undefined || v === null) {
    if (required) throw badRequest("Missing required parameter: 'name'", 'name');
    return null;
  }
  if (typeof v !== 'string' || v.length === 0 || v.length > 200) throw badRequest("Invalid 'name': expected a string of 1 to 200 characters", 'name');
  return v;
}

export async function createAccount(store: Store, input: unknown, audit: Audit): Promise<Account> {
  const b = body(input);
  onlyKeys(b, ['name', 'credit', 'limits']);
  const name = parseName(b['name'], true)!;
  const credit = b['credit'] === undefined || b['credit'] === null ? 0n : parseAmount(b['credit'], 'credit', true);
  const limits = b['limits'] === undefined ? null : parseLimits(b['limits']);
  const a = await store.createAccount({ name, credit, limits });
  accountCreated(audit, a);
  return a;
}

export async function getAccount(store: Store, id: string): Promise<Account> {
  const a = await store.getAccount(id);
  if (a === null) throw new GatewayError('not_found', { message: `No account with id "${id.slice(0, 100)}"` });
  return a;
}

export async function updateAccount(store: Store, id: string, input: unknown, audit: Audit): Promise<Account> {
  const b = body(input);
  onlyKeys(b, ['name', 'limits']);
  const patch: { name?: string; limits?: Limits | null } = {};
  if (b['name'] !== undefined) patch.name = parseName(b['name'], true)!;
  if (b['limits'] !== undefined) patch.limits = parseLimits(b['limits']);
  const a = await store.updateAccount(id, patch);
  if (a === null) throw new GatewayError('not_found', { message: `No account with id "${id.slice(0, 100)}"` });
  accountUpdated(audit, a, patch);
  return a;
}

export async function creditAccount(store: Store, id: string, input: unknown, idempotencyKey: string | undefined, audit: Audit): Promise<Account> {
  const b = body(input);
  onlyKeys(b, ['amount', 'note']);
  if (b['amount'] === undefined) throw badRequest("Missing required parameter: 'amount'", 'amount');
  const amount = parseAmount(b['amount'], 'amount');
  const note = b['note'] === undefined || b['note'] === null ? null : String(b['note']).slice(0, 500);
  if (idempotencyKey !== undefined && (idempotencyKey === '' || idempotencyKey.length > 200)) {
    throw badRequest('Invalid Idempotency-Key header: expected 1 to 200 characters', 'Idempotency-Key');
  }
  const r = await store.credit({ accountId: id, amount, note, idempotencyKey: idempotencyKey ?? null });
  switch (r.kind) {
    case 'no_account':
      throw new GatewayError('not_found', { message: `No account with id "${id.slice(0, 100)}"` });
    case 'conflict':
      throw badRequest('This Idempotency-Key was already used with a different amount', 'Idempotency-Key');
    case 'over_max':
      throw badRequest(
        `Invalid 'amount': the balance (${formatUsd(r.balance)} USD) plus this credit would pass the largest balance an account may hold (${MAX_BALANCE_USD} USD)`,
        'amount',
      );
    default:
      accountCredited(audit, r.account, amount, idempotencyKey ?? null, r.kind === 'replayed');
      return r.account;
  }
}

export async function createKey(store: Store, input: unknown, audit: Audit): Promise<{ key: ApiKey; secret: string }> {
  const b = body(input);
  onlyKeys(b, ['account_id', 'name', 'models', 'limits', 'expires_at']);
  const accountId = b['account_id'];
  if (typeof accountId !== 'string' || accountId === '') throw badRequest("Missing required parameter: 'account_id'", 'account_id');
  if ((await store.getAccount(accountId)) === null) throw new GatewayError('not_found', { message: `No account with id "${accountId.slice(0, 100)}"`, param: 'account_id' });
  const { key: secret, prefix, hash } = generateKey();
  const key = await store.createKey({
    accountId,
    name: parseName(b['name'], false),
    prefix,
    hash,
    models: b['models'] === undefined ? null : parseModels(b['models']),
    limits: b['limits'] === undefined ? null : parseLimits(b['limits']),
    expiresAt: b['expires_at'] === undefined ? null : parseExpiry(b['expires_at']),
  });
  keyCreated(audit, key);
  return { key, secret };
}

export async function updateKey(store: Store, id: string, input: unknown, audit: Audit): Promise<ApiKey> {
  const b = body(input);
  onlyKeys(b, ['frozen', 'models', 'limits', 'expires_at', 'name']);
  const patch: KeyPatch = {};
  if (b['frozen'] !== undefined) {
    if (typeof b['frozen'] !== 'boolean') throw badRequest("Invalid 'frozen': expected a boolean", 'frozen');
    patch.frozen = b['frozen'];
  }
  if (b['models'] !== undefined) patch.models = parseModels(b['models']);
  if (b['limits'] !== undefined) patch.limits = parseLimits(b['limits']);
  if (b['expires_at'] !== undefined) patch.expiresAt = parseExpiry(b['expires_at']);
  if (b['name'] !== undefined) patch.name = parseName(b['name'], false);
  const key = await store.updateKey(id, patch);
  if (key === null) throw new GatewayError('not_found', { message: `No key with id "${id.slice(0, 100)}"` });
  keyUpdated(audit, key, patch);
  return key;
}

export async function revokeKey(store: Store, id: string, audit: Audit): Promise<void> {
  if (!(await store.revokeKey(id))) throw new GatewayError('not_found', { message: `No key with id "${id.slice(0, 100)}"` });
  // The revoked key, for its prefix and account in the line.
  keyRevoked(audit, id, await store.getKey(id).catch(() => null));
}

/** One query parameter as one string: absent or empty is undefined; repeated (`?a=1&a=2`) is a 400. */
function queryParam(q: Record<string, unknown>, name: string): string | undefined {
  const v = q[name];
  if (v === undefined || v === '') return undefined;
  if (typeof v !== 'string') throw badRequest(`Invalid '${name}': expected one value`, name);
  return v;
}

export async function listKeys(store: Store, q: Record<string, unknown>): Promise<ApiKey[]> {
  return store.listKeys(queryParam(q, 'account_id'));
}

const ISO_TIME = /^(\d{4}-\d{2}-\d{2})(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/i;

/**
 * A time in a query: Unix seconds, or ISO 8601 (a date is its UTC midnight; a time without an
 * offset is UTC, whatever the server's zone). Epoch ms, as in the store. Strict, unlike
 * Date.parse, which reads `1 2` as a date and `2026-02-31` as March 3rd.
 */
export function parseTime(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  let ms = Number.NaN;
  if (/^\d{1,12}$/.test(v)) {
    ms = Number(v) * 1000;
  } else {
    const m = ISO_TIME.exec(v);
    const date = m?.[1];
    // The date must exist: Date.parse rolls 2026-02-31 over into March.
    if (m !== null && date !== undefined && new Date(Date.parse(date)).toISOString().startsWith(date)) {
      ms = Date.parse(v.length === date.length || m[2] !== undefined ? v : `${v}Z`);
    }
  }
  if (!Number.isFinite(ms) || ms < 0) throw badRequest(`Invalid '${name}': expected an ISO 8601 time or Unix seconds`, name);
  return ms;
}

export async function listUsage(store: Store, query: Record<string, unknown>): Promise<UsagePage> {
  const q = (name: string): string | undefined => queryParam(query, name);
  const time = (name: 'from' | 'to'): number | undefined => parseTime(q(name), name);
  let limit = 100;
  if (q('limit') !== undefined) {
    limit = Number(q('limit'));
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw badRequest("Invalid 'limit': expected an integer from 1 to 10000", 'limit');
  }
  const cursor = q('cursor');
  if (cursor !== undefined && !/^[A-Za-z0-9_-]{1,40}$/.test(cursor)) throw badRequest("Invalid 'cursor'", 'cursor');
  const accountId = q('account_id');
  const keyId = q('key_id');
  const from = time('from');
  const to = time('to');
  return store.listUsage({
    ...(accountId !== undefined ? { accountId } : {}),
    ...(keyId !== undefined ? { keyId } : {}),
    ...(from !== undefined ? { from } : {}),
    ...(to !== undefined ? { to } : {}),
    ...(cursor !== undefined ? { cursor } : {}),
    limit,
  });
}

const DAY_MS = 86_400_000;
const GROUPINGS: readonly UsageGroupBy[] = ['day', 'model', 'key', 'account'];

export interface UsageSummary {
  groupBy: UsageGroupBy;
  from: number;
  to: number;
  rows: UsageSummaryRow[];
}

/** The start of the UTC day after `now`'s: the default end of a summary, so that today counts whole. */
export const endOfUtcDay = (now: number): number => (Math.floor(now / DAY_MS) + 1) * DAY_MS;

/**
 * `GET /admin/usage/summary` and `token360 usage --summary`. Records with from <= created_at < to;
 * by default the last 30 UTC days, today included (from 00:00 UTC 29 days ago to 00:00 UTC
 * tomorrow); `to` alone means the 30 days before it, `from` alone runs to the end of today.
 */
export async function summarizeUsage(store: Store, query: Record<string, unknown>, now = Date.now()): Promise<UsageSummary> {
  onlyKeys(query, ['group_by', 'from', 'to', 'account_id', 'key_id']);
  const q = (name: string): string | undefined => queryParam(query, name);
  const groupBy = (q('group_by') ?? 'day') as UsageGroupBy;
  if (!GROUPINGS.includes(groupBy)) throw badRequest(`Invalid 'group_by': expected one of ${GROUPINGS.join(', ')}`, 'group_by');
  const from = parseTime(q('from'), 'from');
  const to = parseTime(q('to'), 'to') ?? endOfUtcDay(now);
  const start = from ?? to - 30 * DAY_MS;
  if (start >= to) throw badRequest("Invalid 'from': expected a time before 'to'", 'from');
  const accountId = q('account_id');
  const keyId = q('key_id');
  const rows = await store.summarizeUsage({
    groupBy,
    from: start,
    to,
    ...(accountId !== undefined ? { accountId } : {}),
    ...(keyId !== undefined ? { keyId } : {}),
  });
  return { groupBy, from: start, to, rows };
}

export interface Period {
  from: number;
  to: number;
  totals: UsageTotals;
}

/** A key's own usage for `/v1/me`: today (UTC) and the last 30 UTC days, today included; one summary query. */
export async function recentKeyUsage(store: Store, key: ApiKey, now = Date.now()): Promise<{ today: Period; last30Days: Period }> {
  const to = endOfUtcDay(now);
  const from = to - 30 * DAY_MS;
  const rows = await store.summarizeUsage({ groupBy: 'day', from, to, accountId: key.accountId, keyId: key.id });
  const today = new Date(to - DAY_MS).toISOString().slice(0, 10);
  return {
    today: { from: to - DAY_MS, to, totals: sumTotals(rows.filter((r) => r.group === today)) },
    last30Days: { from, to, totals: sumTotals(rows) },
  };
}

export async function getKey(store: Store, id: string): Promise<ApiKey> {
  const k = await store.getKey(id);
  if (k === null || k.revokedAt !== null) throw new GatewayError('not_found', { message: `No key with id "${id.slice(0, 100)}"` });
  return k;
}

/** Admin bodies arrive as text (see server/app.ts); empty means no fields. */
export function parseAdminBody(raw: unknown): unknown {
  if (raw === undefined || raw === null || raw === '') return undefined;
  if (typeof raw !== 'string') return raw;
  return parseBoundedJson(raw);
}
