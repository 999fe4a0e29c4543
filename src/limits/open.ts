import { Redis } from 'ioredis';
import { FallbackLimiter } from './fallback.js';
import { MemoryLimiter } from './memory.js';
import { RedisLimiter } from './redis.js';
import type { Limiter } from './types.js';

/** Redis when `redis` is configured (limits hold across replicas), else in-process. */
export function openLimiter(redisUrl: string | undefined, log: { warn(o: object, m: string): void; info(o: object, m: string): void }): Limiter {
  if (redisUrl === undefined || redisUrl === '') return new MemoryLimiter();
  const client = new Redis(redisUrl, {
    // Fail fast instead of queueing while disconnected: the fallback limiter takes over at once.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: 500,
    connectTimeout: 2000,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  });
  return new FallbackLimiter(new RedisLimiter(client), client, log);
}
