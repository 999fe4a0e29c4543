import { formatUsd } from '../billing/money.js';
import type { Account, ApiKey, KeyPatch, Limits } from '../store/types.js';
import { presentLimits } from './present.js';

// Audit lines (SPEC §8): each admin change, whether made through the API or the CLI, is one log
// line `{ audit: true, action, … }` naming what changed, in the admin API's words. A key is its
// id and prefix, never its secret or hash.

export type AuditAction = 'account.created' | 'account.updated' | 'account.credited' | 'key.created' | 'key.updated' | 'key.frozen' | 'key.unfrozen' | 'key.revoked';

/** Where the admin operations (service.ts) tell their changes. */
export type Audit = (action: AuditAction, fields: Record<string, unknown>) => void;

/** Audit lines on a logger, with `context` (the admin request's traceId, or the CLI's `via`) on each. */
export function auditLog(log: { info(obj: object, msg: string): void }, context: Record<string, unknown>): Audit {
  return (action, fields) => log.info({ audit: true, action, ...context, ...fields }, 'admin change');
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export function accountCreated(audit: Audit, a: Account): void {
  audit('account.created', { account: a.id, name: a.name, credit: formatUsd(a.balance), limits: presentLimits(a.limits) });
}

export function accountUpdated(audit: Audit, a: Account, patch: { name?: string; limits?: Limits | null }): void {
  const changed: Record<string, unknown> = {};
  if (patch.name !== undefined) changed['name'] = a.name;
  if (patch.limits !== undefined) changed['limits'] = presentLimits(a.limits);
  audit('account.updated', { account: a.id, changed });
}

export function accountCredited(audit: Audit, a: Account, amount: bigint, idempotencyKey: string | null, replayed: boolean): void {
  audit('account.credited', { account: a.id, amount: formatUsd(amount), balance: formatUsd(a.balance), idempotency_key: idempotencyKey, replayed });
}

export function keyCreated(audit: Audit, k: ApiKey): void {
  audit('key.created', {
    key: k.id,
    prefix: k.prefix,
    account: k.accountId,
    name: k.name,
    models: k.models,
    limits: presentLimits(k.limits),
    expires_at: iso(k.expiresAt),
  });
}

/** Freezing (or unfreezing) is said as such: the action an operator looks for after an incident. */
export function keyUpdated(audit: Audit, k: ApiKey, patch: KeyPatch): void {
  const changed: Record<string, unknown> = {};
  if (patch.frozen !== undefined) changed['frozen'] = k.frozen;
  if (patch.models !== undefined) changed['models'] = k.models;
  if (patch.limits !== undefined) changed['limits'] = presentLimits(k.limits);
  if (patch.expiresAt !== undefined) changed['expires_at'] = iso(k.expiresAt);
  if (patch.name !== undefined) changed['name'] = k.name;
  const action = patch.frozen === undefined ? 'key.updated' : patch.frozen ? 'key.frozen' : 'key.unfrozen';
  audit(action, { key: k.id, prefix: k.prefix, account: k.accountId, changed });
}

export function keyRevoked(audit: Audit, id: string, k: ApiKey | null): void {
  audit('key.revoked', { key: id, prefix: k?.prefix ?? null, account: k?.accountId ?? null });
}
