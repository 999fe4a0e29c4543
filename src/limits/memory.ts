import { WINDOW_MS, type AdmitRequest, type AdmitResult, type LimitState, type Limiter, type SpendResult, type Subject, type Ticket } from './types.js';

interface Entry {
  t: number;
  tokens: number;
}

/** A sliding log of admissions: oldest first, pruned as the window moves. */
class Log {
  private entries: Entry[] = [];
  private head = 0;
  tokenSum = 0;

  prune(now: number): void {
    const edge = now - WINDOW_MS;
    while (this.head < this.entries.length && this.entries[this.head]!.t <= edge) {
      this.tokenSum -= this.entries[this.head]!.tokens;
      this.head++;
    }
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }

  get count(): number {
    return this.entries.length - this.head;
  }

  /** When the oldest admission leaves the window. */
  resetMs(now: number): number {
    return this.count === 0 ? 0 : this.entries[this.head]!.t + WINDOW_MS - now;
  }

  add(e: Entry): void {
    this.entries.push(e);
    this.tokenSum += e.tokens;
  }

  /** Time until `tokens` more fit under `limit`. */
  tokensFreeInMs(tokens: number, limit: number, now: number): number {
    let sum = this.tokenSum;
    for (let i = this.head; i < this.entries.length; i++) {
      if (sum + tokens <= limit) return this.entries[i]!.t + WINDOW_MS - now;
      sum -= this.entries[i]!.tokens;
    }
    return WINDOW_MS;
  }

  isLive(e: Entry, now: number): boolean {
    return e.t > now - WINDOW_MS;
  }
}

interface SubjectState {
  requests: Log;
  tokens: Log;
  inFlight: number;
  /** Entries of requests still in flight, to correct their tokens at release. */
  open: Map<string, Entry>;
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
      if (rpm !== undefined) s.requests.add({ t: now, tokens: 0 });
      if (tpm !== undefined) {
        const e = { t: now, tokens: req.tokens };
        s.tokens.add(e);
        s.open.set(req.requestId, e);
      }
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

  async release(ticket: Ticket, actualTokens: number, now: number): Promise<void> {
    for (const subject of ticket.subjects) {
      const s = this.state(subject.id);
      if (subject.limits.concurrency !== undefined && s.inFlight > 0) s.inFlight--;
      const e = s.open.get(ticket.requestId);
      if (e !== undefined) {
        s.open.delete(ticket.requestId);
        if (s.tokens.isLive(e, now)) {
          s.tokens.tokenSum += actualTokens - e.tokens;
          e.tokens = actualTokens;
        }
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
