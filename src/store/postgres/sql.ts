import type { Hold, NewHold, Settlement, UsageRecord } from '../types.js';

// The statements that move money, each ONE statement (data-modifying CTEs), so that it is atomic
// without a transaction held open across round trips, and never a read-then-write race: every
// condition on a balance is decided by the UPDATE that changes it, on the row's latest version
// (READ COMMITTED re-checks an UPDATE's WHERE after waiting for a concurrent writer).

/** Numbered parameters, each with an explicit type: a parameter only used inside `INSERT … SELECT` has no type PostgreSQL could infer. */
export class Params {
  readonly values: unknown[] = [];
  private add(v: unknown, type: string): string {
    this.values.push(v);
    return `$${this.values.length}::${type}`;
  }
  text(v: string | null): string {
    return this.add(v, 'text');
  }
  /** Money and epoch milliseconds: sent as decimal strings, never through a float. */
  big(v: bigint | number | null): string {
    return this.add(v === null ? null : typeof v === 'bigint' ? v.toString() : Math.round(v).toString(), 'bigint');
  }
  int(v: number): string {
    return this.add(v, 'integer');
  }
  bool(v: boolean): string {
    return this.add(v, 'boolean');
  }
}

export interface Statement {
  /** Prepared once per connection under this name (the text of a name never varies): big CTEs cost more to plan than to run. */
  name: string;
  text: string;
  values: unknown[];
}

const USAGE_COLUMNS = [
  'trace_id', 'account_id', 'key_id', 'model', 'provider', 'upstream_model', 'prompt_tokens', 'completion_tokens', 'cached_tokens',
  'cache_write_tokens', 'reasoning_tokens', 'cost', 'status', 'error_type', 'stream', 'attempts', 'latency_ms', 'ttft_ms', 'created_at',
  'client_request_id',
] as const;
type UsageColumn = (typeof USAGE_COLUMNS)[number];

export const USAGE_COLUMN_LIST = USAGE_COLUMNS.join(', ');

/** The record's values as parameters, in USAGE_COLUMNS order; `cost` may be an SQL expression instead. */
function usageValues(p: Params, u: UsageRecord, cost?: string): string[] {
  const v: Record<UsageColumn, string> = {
    trace_id: p.text(u.traceId),
    account_id: p.text(u.accountId),
    key_id: p.text(u.keyId),
    model: p.text(u.model),
    provider: p.text(u.provider),
    upstream_model: p.text(u.upstreamModel),
    prompt_tokens: p.big(u.promptTokens),
    completion_tokens: p.big(u.completionTokens),
    cached_tokens: p.big(u.cachedTokens),
    cache_write_tokens: p.big(u.cacheWriteTokens),
    reasoning_tokens: p.big(u.reasoningTokens),
    cost: cost ?? p.big(u.cost),
    status: p.int(u.status),
    error_type: p.text(u.errorType),
    stream: p.bool(u.stream),
    attempts: p.int(u.attempts),
    latency_ms: p.big(u.latencyMs),
    ttft_ms: p.big(u.ttftMs),
    created_at: p.big(u.createdAt),
    client_request_id: p.text(u.clientRequestId),
  };
  return USAGE_COLUMNS.map((c) => v[c]);
}

/**
 * On a retry (the first try's answer was lost, so it may have committed), a statement first
 * looks for the record it would write: found, it does nothing. The record's own created_at
 * narrows the look-up to the created_at index.
 */
function alreadyWritten(p: Params, u: UsageRecord, retry: boolean): string {
  if (!retry) return 'SELECT 1 WHERE FALSE';
  return `SELECT 1 FROM usage WHERE created_at = ${p.big(u.createdAt)} AND trace_id = ${p.text(u.traceId)} AND error_type IS DISTINCT FROM 'interrupted' LIMIT 1`;
}

export function recordUsageSql(u: UsageRecord, retry: boolean): Statement {
  const p = new Params();
  const done = alreadyWritten(p, u, retry);
  const values = usageValues(p, u);
  return {
    name: retry ? 'token360-usage-retry' : 'token360-usage',
    text: `WITH done AS (${done}) INSERT INTO usage (${USAGE_COLUMN_LIST}) SELECT ${values.join(', ')} WHERE NOT EXISTS (SELECT 1 FROM done)`,
    values: p.values,
  };
}

/**
 * Reserves `amount` and writes the hold, or does nothing (no row returned): with `seen` null,
 * when the available balance (balance − held) is below `amount`; with `seen`, unless the
 * available balance is still exactly what the caller's plan saw (a compare-and-set: another
 * hold that slipped in between makes the caller read and plan again).
 */
export function placeHoldSql(h: NewHold, amount: bigint, owner: string, seen: bigint | null): Statement {
  const p = new Params();
  const accountId = p.text(h.accountId);
  const amt = p.big(amount);
  const condition = seen === null ? `balance - held >= ${amt}` : `balance - held = ${p.big(seen)}`;
  return {
    name: seen === null ? 'token360-hold' : 'token360-hold-planned',
    text: `WITH reserved AS (UPDATE accounts SET held = held + ${amt} WHERE id = ${accountId} AND ${condition} RETURNING id)
INSERT INTO holds (id, account_id, key_id, model, amount, stream, created_at, owner)
SELECT ${p.text(h.id)}, id, ${p.text(h.keyId)}, ${p.text(h.model)}, ${amt}, ${p.bool(h.stream)}, ${p.big(h.createdAt)}, ${p.text(owner)} FROM reserved
RETURNING id`,
    values: p.values,
  };
}

/**
 * Releases the hold, debits min(cost, what is free of other holds) and writes the ledger entry
 * and the usage record with what was charged. The account row is locked (FOR UPDATE) inside the
 * statement (FOR NO KEY UPDATE: the lock its UPDATE takes anyway, which lets other transactions insert rows that reference the account) so the amount charged is computed on its latest version. If the hold was released
 * as interrupted meanwhile, the cost is still charged if the balance allows, and the interrupted
 * record (written after the hold was placed) becomes this one. Returns one row: `charged`.
 */
export function settleSql(st: Settlement, now: number, retry: boolean): Statement {
  const p = new Params();
  const done = alreadyWritten(p, st.usage, retry);
  const holdId = p.text(st.hold.id);
  const cost = p.big(st.cost);
  const charged = 'COALESCE((SELECT charged FROM charge), 0)';
  const values = usageValues(p, st.usage, charged);
  const assignments = USAGE_COLUMNS.map((c, i) => `${c} = ${values[i]}`).join(', ');
  return {
    name: retry ? 'token360-settle-retry' : 'token360-settle',
    text: `WITH done AS (${done}),
released AS (DELETE FROM holds WHERE id = ${holdId} AND NOT EXISTS (SELECT 1 FROM done) RETURNING amount),
acct AS (
  SELECT id, COALESCE((SELECT amount FROM released), 0) AS rel, balance - held + COALESCE((SELECT amount FROM released), 0) AS free
  FROM accounts WHERE id = ${p.text(st.hold.accountId)} AND NOT EXISTS (SELECT 1 FROM done) FOR NO KEY UPDATE
),
charge AS (SELECT id, rel, CASE WHEN ${cost} <= 0 THEN 0::bigint ELSE LEAST(${cost}, GREATEST(free, 0)) END AS charged FROM acct),
debit AS (UPDATE accounts a SET held = a.held - c.rel, balance = a.balance - c.charged FROM charge c WHERE a.id = c.id RETURNING a.id),
entry AS (
  INSERT INTO ledger (account_id, kind, amount, trace_id, created_at)
  SELECT id, 'debit', charged, ${holdId}, ${p.big(now)} FROM charge WHERE charged > 0
),
replaced AS (
  UPDATE usage SET ${assignments}
  WHERE NOT EXISTS (SELECT 1 FROM released) AND NOT EXISTS (SELECT 1 FROM done)
    AND created_at >= ${p.big(st.hold.createdAt)} AND trace_id = ${holdId} AND error_type = 'interrupted'
  RETURNING 1
),
recorded AS (
  INSERT INTO usage (${USAGE_COLUMN_LIST}) SELECT ${values.join(', ')}
  WHERE NOT EXISTS (SELECT 1 FROM replaced) AND NOT EXISTS (SELECT 1 FROM done)
)
SELECT ${charged} AS charged`,
    values: p.values,
  };
}

/** Releases a hold of this owner if it exists, and nothing else. */
export function releaseHoldSql(holdId: string, owner: string): Statement {
  const p = new Params();
  return {
    name: 'token360-release',
    text: `WITH gone AS (DELETE FROM holds WHERE id = ${p.text(holdId)} AND owner = ${p.text(owner)} RETURNING account_id, amount)
UPDATE accounts a SET held = a.held - g.amount FROM gone g WHERE a.id = g.account_id`,
    values: p.values,
  };
}

/** The database's clock in epoch milliseconds: leases are compared on one clock, whatever the hosts' clocks say. */
export const DB_NOW_MS = '(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint';

export function putLeaseSql(owner: string, host: string, pid: number, leaseMs: number): Statement {
  const p = new Params();
  return {
    name: 'token360-lease',
    text: `INSERT INTO leases (owner, host, pid, expires_at) VALUES (${p.text(owner)}, ${p.text(host)}, ${p.int(pid)}, ${DB_NOW_MS} + ${p.big(leaseMs)})
ON CONFLICT (owner) DO UPDATE SET expires_at = EXCLUDED.expires_at`,
    values: p.values,
  };
}

/**
 * Deletes the leases that ran out and releases every hold whose owner has no live lease (it
 * closed, or its lease ran out), never the caller's own: each released from its account's held
 * amount and recorded as an interrupted request (status 500, cost 0). A hold is deleted by
 * exactly one statement however many stores recover at once (the DELETE decides), so each is
 * recorded once. Returns one row: `released`.
 */
export function recoverSql(owner: string, now: number): Statement {
  const p = new Params();
  const me = p.text(owner);
  const at = p.big(now);
  const interrupted: Record<UsageColumn, string> = {
    trace_id: 'id', account_id: 'account_id', key_id: 'key_id', model: 'model', provider: 'NULL', upstream_model: 'NULL',
    prompt_tokens: '0', completion_tokens: '0', cached_tokens: '0', cache_write_tokens: '0', reasoning_tokens: '0', cost: '0',
    status: '500', error_type: `'interrupted'`, stream: 'stream', attempts: '0', latency_ms: `GREATEST(${at} - created_at, 0)`, ttft_ms: 'NULL',
    created_at: at,
    client_request_id: 'NULL',
  };
  return {
    name: 'token360-recover',
    text: `WITH expired AS (DELETE FROM leases WHERE owner <> ${me} AND expires_at < ${DB_NOW_MS} RETURNING owner),
victims AS (
  DELETE FROM holds h WHERE h.owner <> ${me}
    AND (h.owner IN (SELECT owner FROM expired) OR NOT EXISTS (SELECT 1 FROM leases l WHERE l.owner = h.owner))
  RETURNING h.id, h.account_id, h.key_id, h.model, h.amount, h.stream, h.created_at
),
per_account AS (SELECT account_id, SUM(amount)::bigint AS amount FROM victims GROUP BY account_id),
-- Locked in id order, as batches lock them: a recovery and a batch never wait for each other in a circle.
locked AS (SELECT id FROM accounts WHERE id IN (SELECT account_id FROM per_account) ORDER BY id FOR NO KEY UPDATE),
unheld AS (UPDATE accounts a SET held = a.held - v.amount FROM per_account v, locked l WHERE a.id = v.account_id AND l.id = a.id RETURNING a.id),
recorded AS (INSERT INTO usage (${USAGE_COLUMN_LIST}) SELECT ${USAGE_COLUMNS.map((c) => interrupted[c]).join(', ')} FROM victims)
SELECT COUNT(*)::integer AS released FROM victims`,
    values: p.values,
  };
}

/** A hold as the caller passed it, for placeHold. */
export function withoutAmount(h: Hold): NewHold {
  const { amount: _amount, ...rest } = h;
  return rest;
}
