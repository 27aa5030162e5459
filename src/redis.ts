/**
 * The Redis connection shared by everything that keeps state across replicas. Commands fail fast while Redis is
 * unreachable (no offline queue, one retry), so callers can fall back to local state instead of hanging;
 * ioredis keeps reconnecting in the background and callers notice when commands succeed again.
 */
import type { Redis } from 'ioredis';

/** ioredis is imported only when REDIS_URL is set: a single-replica gateway does not pay its ~20 MB of RSS. */
export async function createRedis(url: string): Promise<Redis> {
  const { Redis } = await import('ioredis');
  return new Redis(url, {
    lazyConnect: false,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    commandTimeout: 1_000,
    // Reconnect forever, at most every 2 s: Redis coming back must be noticed without a restart.
    retryStrategy: (times) => Math.min(100 * times, 2_000),
  });
}
