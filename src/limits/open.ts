import { Redis } from 'ioredis';
import { FallbackLimiter } from './fallback.js';
import { MemoryLimiter } from './memory.js';
import { RedisLimiter } from './redis.js';
import type { Limiter } from './types.js';

/** Redis when `redis` is configured (limits hold across replicas), else in-process. */
export async function openLimiter(redisUrl: string | undefined, log: { warn(o: object, m: string): void; info(o: object, m: string): void }): Promise<Limiter> {
  if (redisUrl === undefined || redisUrl === '') return new MemoryLimiter();
  const client = new Redis(redisUrl, {
    // Fail fast instead of queueing while disconnected: the fallback limiter takes over at once.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: 500,
    connectTimeout: 2000,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  });
  const limiter = new FallbackLimiter(new RedisLimiter(client), client, log);
  if (!(await limiter.ready(3000))) log.warn({}, 'Redis did not answer at start-up: rate limits start in process');
  return limiter;
}
