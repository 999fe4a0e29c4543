import type { Redis } from 'ioredis';
import { MemoryLimiter } from './memory.js';
import type { RedisLimiter } from './redis.js';
import type { AdmitRequest, AdmitResult, LimitState, Limiter, SpendResult, Subject, Ticket } from './types.js';

interface Log {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

/**
 * Redis when it answers, the in-process limiter when it does not: a gateway whose Redis is down
 * keeps serving (limits then hold per replica) and says so once in the log; when Redis is back it
 * takes over again. A ticket is released by the limiter that admitted it.
 */
export class FallbackLimiter implements Limiter {
  readonly kind = 'redis' as const;
  private readonly memory = new MemoryLimiter();
  private readonly issuedBy = new WeakMap<Ticket, Limiter>();
  private down = false;

  constructor(
    private readonly redis: RedisLimiter,
    client: Redis,
    private readonly log: Log,
  ) {
    client.on('ready', () => {
      if (this.down) this.log.info({}, 'Redis is reachable again: rate limits are shared across replicas again');
      this.down = false;
    });
    client.on('error', () => this.markDown());
    client.on('end', () => this.markDown());
  }

  /**
   * Resolves once Redis answers, or after `timeoutMs`. Start-up waits for it: requests admitted
   * in process while Redis connects would be invisible to Redis and could pass a limit.
   */
  ready(timeoutMs: number): Promise<boolean> {
    if (this.redis.redis.status === 'ready') return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean): void => {
        clearTimeout(timer);
        this.redis.redis.off('ready', onReady);
        this.redis.redis.off('error', onError);
        resolve(ok);
      };
      const onReady = (): void => done(true);
      // A refused connection will not turn ready in time: start in process now, not after the timeout.
      const onError = (): void => done(false);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.redis.redis.once('ready', onReady);
      this.redis.redis.once('error', onError);
    });
  }

  private markDown(): void {
    if (!this.down) this.log.warn({}, 'Redis is unreachable: rate limits fall back to this process until it returns');
    this.down = true;
  }

  private get usable(): boolean {
    return !this.down && this.redis.redis.status === 'ready';
  }

  private async either<T>(viaRedis: () => Promise<T>, viaMemory: () => Promise<T>): Promise<T> {
    if (this.usable) {
      try {
        return await viaRedis();
      } catch {
        this.markDown();
      }
    }
    return viaMemory();
  }

  async admit(req: AdmitRequest): Promise<AdmitResult> {
    let by: Limiter = this.memory;
    const r = await this.either(
      () => this.redis.admit(req).then((x) => ((by = this.redis), x)),
      () => this.memory.admit(req),
    );
    if (r.ok) this.issuedBy.set(r.ticket, by);
    return r;
  }

  peek(subject: Subject, now: number): Promise<LimitState> {
    return this.either(
      () => this.redis.peek(subject, now),
      () => this.memory.peek(subject, now),
    );
  }

  async release(ticket: Ticket, actualTokens: number, now: number): Promise<void> {
    const by = this.issuedBy.get(ticket) ?? this.memory;
    await by.release(ticket, actualTokens, now).catch(() => this.markDown());
  }

  reserveSpend(subjects: Subject[], amount: bigint, day: string, spentToday: (s: Subject) => Promise<bigint>): Promise<SpendResult> {
    return this.either(
      () => this.redis.reserveSpend(subjects, amount, day, spentToday),
      () => this.memory.reserveSpend(subjects, amount, day, spentToday),
    );
  }

  settleSpend(subjects: Subject[], reserved: bigint, actual: bigint, day: string): Promise<void> {
    return this.either(
      () => this.redis.settleSpend(subjects, reserved, actual, day),
      () => this.memory.settleSpend(subjects, reserved, actual, day),
    );
  }

  /** Redis itself, not the fallback: a replica limiting in process alone is serving but not ready. */
  ping(): Promise<boolean> {
    return this.redis.ping();
  }

  async close(): Promise<void> {
    await this.redis.close();
  }
}
