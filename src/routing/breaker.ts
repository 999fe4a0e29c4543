import type { RoutingPolicy } from './catalog.js';

export type CircuitState = 'closed' | 'open' | 'half_open';
type CircuitSettings = RoutingPolicy['circuit'];

/** What a request may do with a deployment: send as usual, send as the one probe of a half-open circuit, or skip it. */
export type Admission = 'go' | 'probe' | 'skip';

/**
 * One deployment's circuit. Closed, it counts failures in a sliding window; `failures` of them
 * open it. Open, it is skipped for `cooldownMs`; then the first request to ask becomes the probe
 * (half-open) while others still skip it; the probe's success closes the circuit, its failure
 * opens it again. The settings come with each call: a deployment serving several models is one
 * circuit, judged by the settings of the request at hand.
 */
export class Circuit {
  private recent: number[] = [];
  private openUntil = 0;
  private probing = false;
  private tripped = false;

  state(now: number): CircuitState {
    if (!this.tripped) return 'closed';
    return this.probing || now >= this.openUntil ? 'half_open' : 'open';
  }

  admit(now: number): Admission {
    if (!this.tripped) return 'go';
    if (this.probing || now < this.openUntil) return 'skip';
    this.probing = true;
    return 'probe';
  }

  /** Milliseconds until an open circuit may be probed; 0 when it may be now. */
  reopensIn(now: number): number {
    return this.tripped && !this.probing ? Math.max(0, this.openUntil - now) : 0;
  }

  /** `probe`: the attempt was admitted as the probe. Only the probe closes an open circuit; attempts let through before it opened do not. */
  succeeded(probe: boolean): void {
    if (!this.tripped) return;
    if (probe) {
      this.tripped = false;
      this.probing = false;
      this.recent = [];
    }
  }

  failed(now: number, s: CircuitSettings, probe: boolean): void {
    const recent = this.prune(now, s.windowMs);
    recent.push(now);
    if (this.tripped) {
      if (probe) {
        this.probing = false;
        this.openUntil = now + s.cooldownMs;
      }
      return;
    }
    if (recent.length >= s.failures) {
      this.tripped = true;
      this.openUntil = now + s.cooldownMs;
    }
  }

  /** A probe that ended without telling whether the deployment works (a client fault, a client gone): the next request probes. */
  released(probe: boolean): void {
    if (probe) this.probing = false;
  }

  recentFailures(now: number, windowMs: number): number {
    return this.prune(now, windowMs).length;
  }

  private prune(now: number, windowMs: number): number[] {
    let i = 0;
    while (i < this.recent.length && this.recent[i]! <= now - windowMs) i++;
    if (i > 0) this.recent = this.recent.slice(i);
    return this.recent;
  }
}
