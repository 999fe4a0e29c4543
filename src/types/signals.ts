// Events the request path reports where they happen (routing, limits, holds), for whoever counts
// them: the metrics (src/metrics/metrics.ts) implement this, tests may too. Dependency-free so that
// every layer may take one without importing the metrics.

/** Why a request was refused for a limit (SPEC §8's `limit` label). */
export type RefusedLimit = 'rpm' | 'tpm' | 'concurrency' | 'daily_spend' | 'balance' | 'overload';

export interface Signals {
  /** An authenticated request entered the pipeline; its outcome follows. */
  requestStarted(): void;
  /** A hold was placed; the request's outcome gives it back. */
  holdPlaced(): void;
  limitRefused(limit: RefusedLimit): void;
  /** One upstream attempt ended: `ok`, or a failure kind (`connect`, `timeout`, `reset`, `http_503`, …). */
  upstreamAttempt(deployment: string, outcome: string): void;
}

export const NO_SIGNALS: Signals = {
  requestStarted: () => undefined,
  holdPlaced: () => undefined,
  limitRefused: () => undefined,
  upstreamAttempt: () => undefined,
};
