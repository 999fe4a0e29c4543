import { performance } from 'node:perf_hooks';
import { GatewayError, isGatewayError } from '../errors.js';
import { UpstreamError } from '../providers/upstream-error.js';
import { inBackground, type Exchange, type Gateway } from '../gateway/gateway.js';
import type { TokenUsage } from '../providers/types.js';
import type { Admission } from '../limits/admit.js';
import type { Subject } from '../limits/types.js';
import type { ApiKey, Hold } from '../store/types.js';

const NO_USAGE: TokenUsage = { promptTokens: 0, completionTokens: 0, cachedTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 };
const FINISHED: Promise<unknown> = Promise.resolve();

/**
 * Follows one authenticated request and leaves exactly one usage record for it: settled against
 * its hold when one was placed, or written alone (cost 0) for a refusal. Writes happen after the
 * response so they add nothing to latency; the hold itself was placed before forwarding.
 */
export class Meter {
  model = '';
  provider: string | null = null;
  upstreamModel: string | null = null;
  stream = false;
  hold: Hold | null = null;
  /** The UTC day the hold's amount was reserved against the spend quotas; null when nothing was reserved. */
  quotaDay: string | null = null;
  admission: Admission | null = null;
  subjects: Subject[] = [];
  ttftMs: number | null = null;
  private done = false;

  constructor(
    private readonly gw: Gateway,
    private readonly ex: Exchange,
    private readonly key: ApiKey,
  ) {}

  /**
   * The request ended: charge `cost` (0 for failures that produced nothing) and record it.
   * Resolves once the charge would survive the process dying (journaled or committed), or once
   * the store has given up waiting and keeps it for later; it never rejects.
   */
  finish(status: number, errorType: string | null, usage: TokenUsage | null, cost: bigint): Promise<unknown> {
    if (this.done) return FINISHED;
    this.done = true;
    const u = usage ?? NO_USAGE;
    const record = {
      traceId: this.ex.traceId,
      accountId: this.key.accountId,
      keyId: this.key.id,
      model: this.model,
      provider: this.provider,
      upstreamModel: this.upstreamModel,
      promptTokens: u.promptTokens,
      completionTokens: u.completionTokens,
      cachedTokens: u.cachedTokens,
      cacheWriteTokens: u.cacheWriteTokens,
      reasoningTokens: u.reasoningTokens,
      cost,
      status,
      errorType,
      stream: this.stream,
      latencyMs: performance.now() - this.ex.started,
      ttftMs: this.ttftMs,
      createdAt: Date.now(),
    };
    const { store, limiter } = this.gw;
    // The concurrency slot frees now; tpm is corrected to what was really used.
    if (this.admission !== null) inBackground(this.gw, limiter.release(this.admission.ticket, u.promptTokens + u.completionTokens, Date.now()));
    const hold = this.hold;
    if (hold === null) return inBackground(this.gw, store.recordUsage(record));
    const subjects = this.subjects;
    const day = this.quotaDay;
    // Never more than the hold, whatever the caller computed: the hold is the most a request may cost.
    let durable!: () => void;
    const isDurable = new Promise<void>((resolve) => (durable = resolve));
    const settled = store.settle({ hold, cost: cost > hold.amount ? hold.amount : cost, usage: record, onDurable: durable });
    // The spend quotas follow in the background: the response waits for the ledger, not for Redis.
    if (day !== null && subjects.length > 0) inBackground(this.gw, settled.then((charged) => limiter.settleSpend(subjects, hold.amount, charged, day), () => undefined));
    // A settlement the store could not journal is durable once committed (or, failing that, kept and retried: the response goes on).
    inBackground(this.gw, settled).then(durable, durable);
    return isDurable;
  }

  /** The request was refused or failed with `err` before producing anything: cost 0. */
  fail(err: unknown): void {
    if (isGatewayError(err)) void this.finish(err.status, err.type, null, 0n);
    else void this.finish(500, 'api_error', null, 0n);
  }

  /**
   * Records a failure after the hold and says what the client gets: nothing (null) when it went
   * away, else the error to send. An upstream failure that escaped routing is a 502.
   */
  failAfterHold(err: unknown): GatewayError | null {
    if (err instanceof UpstreamError && err.failure === 'aborted') {
      void this.finish(499, 'client_closed', null, 0n);
      return null;
    }
    this.fail(err);
    if (err instanceof UpstreamError) return new GatewayError('upstream_failed');
    return isGatewayError(err) ? err : new GatewayError('internal');
  }
}
