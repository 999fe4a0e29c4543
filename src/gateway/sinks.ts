import type { UsageRecord } from '../store/types.js';
import { inBackground, type Gateway } from './gateway.js';
import type { Outcome, OutcomeSink } from './outcome.js';

// The outcome sinks of the request pipeline, built once at start-up (compose/start.ts).

/**
 * Billing: settles the hold at the outcome's cost and records the request, or records a refusal
 * (cost 0) that placed no hold. Its promise resolves once the charge would survive the process
 * dying (journaled or committed), or once the store has given up waiting and keeps it for later.
 */
export function billingSink(gw: Gateway): OutcomeSink {
  return (o) => {
    const record = usageRecord(o);
    const hold = o.hold;
    if (hold === null) {
      inBackground(gw, gw.store.recordUsage(record));
      return null;
    }
    let durable!: () => void;
    const isDurable = new Promise<void>((resolve) => (durable = resolve));
    const settled = gw.store.settle({ hold, cost: o.cost, usage: record, onDurable: durable });
    // The spend quotas follow in the background: the response waits for the ledger, not for Redis.
    const day = o.quotaDay;
    if (day !== null && o.subjects.length > 0) {
      inBackground(gw, settled.then((charged) => gw.limiter.settleSpend(o.subjects, hold.amount, charged, day), () => undefined));
    }
    // A settlement the store could not journal is durable once committed (or, failing that, kept and retried: the response goes on).
    inBackground(gw, settled).then(durable, durable);
    return isDurable;
  };
}

/** Limits: the concurrency slot frees, and tpm is corrected to what was really used. */
export function limitsSink(gw: Gateway): OutcomeSink {
  return (o) => {
    if (o.admission !== null) inBackground(gw, gw.limiter.release(o.admission.ticket, o.usage.promptTokens + o.usage.completionTokens, Date.now()));
    return null;
  };
}

function usageRecord(o: Outcome): UsageRecord {
  return {
    traceId: o.traceId,
    accountId: o.key.accountId,
    keyId: o.key.id,
    model: o.model,
    provider: o.provider,
    upstreamModel: o.upstreamModel,
    promptTokens: o.usage.promptTokens,
    completionTokens: o.usage.completionTokens,
    cachedTokens: o.usage.cachedTokens,
    cacheWriteTokens: o.usage.cacheWriteTokens,
    reasoningTokens: o.usage.reasoningTokens,
    cost: o.cost,
    status: o.status,
    errorType: o.errorType,
    stream: o.stream,
    latencyMs: o.latencyMs,
    ttftMs: o.ttftMs,
    createdAt: o.at,
    attempts: o.attempts,
    clientRequestId: o.clientRequestId,
  };
}
