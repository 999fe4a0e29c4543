import { WINDOW_MS, type AdmitRequest, type AdmitResult, type LimitState, type Limiter, type SpendResult, type Subject, type Ticket } from './types.js';

/**
 * A sliding log of admissions, oldest first, pruned as the window moves: times and tokens in a
 * ring of two typed arrays, addressed by a running sequence number. Not an object per admission:
 * at a few thousand requests per second a minute's log is hundreds of thousands of entries, which
 * as objects the collector would carry into the old generation and mark again and again.
 */
class Log {
  private times = new Float64Array(16);
  private tokens = new Float64Array(16);
  private mask = 15;
  /** Sequence numbers of the oldest live entry and one past the newest; entry n is at n & mask. */
  private first = 0;
  private next = 0;
  tokenSum = 0;

  prune(now: number): void {
    const edge = now - WINDOW_MS;
    while (this.first < this.next && this.times[this.first & this.mask]! <= edge) {
      this.tokenSum -= this.tokens[this.first & this.mask]!;
      this.first++;
    }
    // A burst's ring is given back once the window has emptied of it.
    if (this.mask >= 1023 && this.count * 8 <= this.mask) this.resize((this.mask + 1) / 2);
  }

  get count(): number {
    return this.next - this.first;
  }

  /** When the oldest admission leaves the window. */
  resetMs(now: number): number {
    return this.count === 0 ? 0 : this.times[this.first & this.mask]! + WINDOW_MS - now;
  }

  /** Adds an admission; its sequence number lets `correct` find it. */
  add(t: number, tokens: number): number {
    if (this.count > this.mask) this.resize((this.mask + 1) * 2);
    const i = this.next & this.mask;
    this.times[i] = t;
    this.tokens[i] = tokens;
    this.tokenSum += tokens;
    return this.next++;
  }

  /**
   * The admission `seq` used `tokens`, if it is still in the log. One that has left the window
   * but is not yet pruned leaves the sum with its correction at the next prune, which every read
   * begins with.
   */
  correct(seq: number, tokens: number): void {
    if (seq < this.first || seq >= this.next) return;
    const i = seq & this.mask;
    this.tokenSum += tokens - this.tokens[i]!;
    this.tokens[i] = tokens;
  }

  /** Time until `tokens` more fit under `limit`. */
  tokensFreeInMs(tokens: number, limit: number, now: number): number {
    let sum = this.tokenSum;
    for (let n = this.first; n < this.next; n++) {
      if (sum + tokens <= limit) return this.times[n & this.mask]! + WINDOW_MS - now;
      sum -= this.tokens[n & this.mask]!;
    }
    return WINDOW_MS;
  }

  /** To `size` entries (a power of two, at least the count). */
  private resize(size: number): void {
    const times = new Float64Array(size);
    const tokens = new Float64Array(size);
    for (let n = this.first; n < this.next; n++) {
      times[n & (size - 1)] = this.times[n & this.mask]!;
      tokens[n & (size - 1)] = this.tokens[n & this.mask]!;
    }
    this.times = times;
    this.tokens = tokens;
    this.mask = size - 1;
  }
}

interface SubjectState {
  requests: Log;
  tokens: Log;
  inFlight: number;
  /** The token log's sequence numbers of requests still in flight, to correct their tokens at release. */
  open: Map<string, number>;
}

interface SpendState {
  day: string;
  spent: bigint;
  reserved: bigint;
}

/**
 * The in-process limiter: exact, and atomic because it never awaits between check and record.
 * Limits hold per process; with several replicas, configure Redis.
 */
export class MemoryLimiter implements Limiter {
  readonly kind = 'memory' as const;
  private readonly subjects = new Map<string, SubjectState>();
  private readonly spend = new Map<string, SpendState>();

  private state(id: string): SubjectState {
    let s = this.subjects.get(id);
    if (s === undefined) {
      s = { requests: new Log(), tokens: new Log(), inFlight: 0, open: new Map() };
      this.subjects.set(id, s);
    }
    return s;
  }

  async admit(req: AdmitRequest): Promise<AdmitResult> {
    const { now } = req;
    for (const subject of req.subjects) {
      const s = this.state(subject.id);
      const { rpm, tpm, concurrency } = subject.limits;
      s.requests.prune(now);
      s.tokens.prune(now);
      if (rpm !== undefined && s.requests.count >= rpm) {
        return { ok: false, limit: 'rpm', subject, retryAfterMs: s.requests.resetMs(now), state: this.report(req.subjects[0]!, now) };
      }
      if (tpm !== undefined && s.tokens.tokenSum + req.tokens > tpm) {
        const wait = req.tokens > tpm ? WINDOW_MS : s.tokens.tokensFreeInMs(req.tokens, tpm, now);
        return { ok: false, limit: 'tpm', subject, retryAfterMs: wait, state: this.report(req.subjects[0]!, now) };
      }
      if (concurrency !== undefined && s.inFlight >= concurrency) {
        // A slot frees when a response ends, which nothing here can predict: suggest a short wait.
        return { ok: false, limit: 'concurrency', subject, retryAfterMs: 1000, state: this.report(req.subjects[0]!, now) };
      }
    }
    for (const subject of req.subjects) {
      const s = this.state(subject.id);
      const { rpm, tpm, concurrency } = subject.limits;
      if (rpm !== undefined) s.requests.add(now, 0);
      if (tpm !== undefined) s.open.set(req.requestId, s.tokens.add(now, req.tokens));
      if (concurrency !== undefined) s.inFlight++;
    }
    return { ok: true, ticket: { requestId: req.requestId, subjects: req.subjects, tokens: req.tokens }, state: this.report(req.subjects[0]!, now) };
  }

  async peek(subject: Subject, now: number): Promise<LimitState> {
    const s = this.state(subject.id);
    s.requests.prune(now);
    s.tokens.prune(now);
    return this.report(subject, now);
  }

  private report(subject: Subject, now: number): LimitState {
    const s = this.state(subject.id);
    const out: LimitState = {};
    const { rpm, tpm } = subject.limits;
    if (rpm !== undefined) out.requests = { limit: rpm, remaining: Math.max(0, rpm - s.requests.count), resetMs: s.requests.resetMs(now) };
    if (tpm !== undefined) out.tokens = { limit: tpm, remaining: Math.max(0, tpm - s.tokens.tokenSum), resetMs: s.tokens.resetMs(now) };
    return out;
  }

  async release(ticket: Ticket, actualTokens: number, _now: number): Promise<void> {
    for (const subject of ticket.subjects) {
      const s = this.state(subject.id);
      if (subject.limits.concurrency !== undefined && s.inFlight > 0) s.inFlight--;
      const seq = s.open.get(ticket.requestId);
      if (seq !== undefined) {
        s.open.delete(ticket.requestId);
        s.tokens.correct(seq, actualTokens);
      }
    }
  }

  async reserveSpend(subjects: Subject[], amount: bigint, day: string, spentToday: (s: Subject) => Promise<bigint>): Promise<SpendResult> {
    const limited = subjects.filter((s) => s.limits.daily_spend !== undefined);
    for (const s of limited) {
      if (this.spend.get(s.id)?.day !== day) {
        const spent = await spentToday(s);
        // Another request may have filled it in while this one read the store.
        if (this.spend.get(s.id)?.day !== day) this.spend.set(s.id, { day, spent, reserved: 0n });
      }
    }
    for (const s of limited) {
      const st = this.spend.get(s.id)!;
      if (st.spent + st.reserved + amount > s.limits.daily_spend!) return { ok: false, subject: s };
    }
    for (const s of limited) this.spend.get(s.id)!.reserved += amount;
    return { ok: true };
  }

  async settleSpend(subjects: Subject[], reserved: bigint, actual: bigint, day: string): Promise<void> {
    for (const s of subjects) {
      if (s.limits.daily_spend === undefined) continue;
      const st = this.spend.get(s.id);
      if (st === undefined) continue;
      if (st.day === day) st.reserved = st.reserved > reserved ? st.reserved - reserved : 0n;
      // A request that ran past midnight is recorded, and counted, on the day it settled.
      st.spent += actual;
    }
  }

  async ping(): Promise<boolean> {
    return true;
  }

  async close(): Promise<void> {}
}
