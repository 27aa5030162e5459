/**
 * The embedding cache: a byte-bounded memory tier in front of an optional Redis tier (REDIS_URL).
 * Lookups go memory → Redis; a Redis hit is copied into memory. Stores go to both, Redis fire-and-forget.
 * A cache failure never fails a request: the worst case is a miss, i.e. what the gateway did without a cache.
 */
import type { Cluster, Redis } from 'ioredis';
import { type CachedItem, decodeEntry, encodeEntry, renderFloatText } from './entry.js';
import { MemoryStore } from './memory-store.js';
import { type CacheLog, RedisStore } from './redis-store.js';
import type { EmbeddingCacheSettings } from './settings.js';

export type { EmbeddingCacheSettings } from './settings.js';

export interface EmbeddingCacheStats {
  memoryHits: number;
  redisHits: number;
  misses: number;
  stores: number;
  memoryEntries: number;
  memoryBytes: number;
  memoryMaxBytes: number;
  evictions: number;
  /** Float hits from Redis whose text had to be printed from float32 (then kept in memory). */
  renders: number;
  redisErrors: number;
  redisTimeouts: number;
  redisWritesDropped: number;
  /** Redis values that did not decode as an entry of this version (treated as misses). */
  redisUndecodable: number;
}

export class EmbeddingCache {
  readonly memory: MemoryStore;
  readonly redis: RedisStore | undefined;
  private memoryHits = 0;
  private redisHits = 0;
  private misses = 0;
  private stores = 0;
  private renders = 0;
  private undecodable = 0;

  constructor(
    readonly settings: EmbeddingCacheSettings,
    redis?: Redis | Cluster,
    log?: CacheLog,
  ) {
    this.memory = new MemoryStore(settings.memoryBytes);
    this.redis = redis
      ? new RedisStore(redis, {
          keyPrefix: settings.keyPrefix,
          ttlSec: settings.ttlSec,
          timeoutMs: settings.redisTimeoutMs,
          maxPendingWrites: settings.maxPendingWrites,
          log,
        })
      : undefined;
  }

  /** One entry per key, in order; an undefined key (an item that cannot be cached) is a miss. Never throws. */
  async getMany(keys: readonly (string | undefined)[]): Promise<(CachedItem | undefined)[]> {
    const out = new Array<CachedItem | undefined>(keys.length).fill(undefined);
    const remote: number[] = [];
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i];
      if (key === undefined) continue;
      const hit = this.memory.get(key);
      if (hit) {
        out[i] = hit;
        this.memoryHits++;
      } else remote.push(i);
    }
    if (this.redis && remote.length > 0) {
      const values = await this.redis.getMany(remote.map((i) => keys[i]!));
      for (let j = 0; j < remote.length; j++) {
        const v = values[j];
        if (!v) continue;
        const item = decodeEntry(v);
        if (!item) {
          this.undecodable++;
          continue;
        }
        const i = remote[j]!;
        out[i] = item;
        this.redisHits++;
        this.memory.set(keys[i]!, item);
      }
    }
    for (const item of out) if (!item) this.misses++;
    return out;
  }

  /** Stores entries in memory now and in Redis in the background (bounded); returns at once. */
  setMany(items: readonly (readonly [string, CachedItem])[]): void {
    if (items.length === 0) return;
    this.stores += items.length;
    for (const [key, item] of items) this.memory.set(key, item);
    if (this.redis) {
      // The text is a memory-tier convenience; Redis keeps float32 only (4 bytes a value instead of ~20).
      this.redis.setMany(items.map(([key, item]) => [key, encodeEntry(item)] as const));
    }
  }

  /**
   * The dense vector's JSON text for a float reply: the bytes kept from the miss when there are some, else
   * printed once from float32 and kept in the memory tier so the next hit splices it.
   */
  floatText(key: string, item: CachedItem): Buffer {
    if (item.text) return item.text;
    if (!item.dense) throw new Error('floatText: the entry has no dense vector');
    const text = renderFloatText(item.dense);
    this.renders++;
    item.text = text;
    // Re-set so the memory tier counts the text against its bound.
    this.memory.set(key, item);
    return text;
  }

  stats(): EmbeddingCacheStats {
    return {
      memoryHits: this.memoryHits,
      redisHits: this.redisHits,
      misses: this.misses,
      stores: this.stores,
      memoryEntries: this.memory.size,
      memoryBytes: this.memory.bytes,
      memoryMaxBytes: this.memory.maxBytes,
      evictions: this.memory.evictions,
      renders: this.renders,
      redisErrors: this.redis?.errors ?? 0,
      redisTimeouts: this.redis?.timeouts ?? 0,
      redisWritesDropped: this.redis?.writesDropped ?? 0,
      redisUndecodable: this.undecodable,
    };
  }

  /** Resolves when no Redis write is in flight, or after `maxMs` (a shutdown must not wait on a hung Redis). */
  async idle(maxMs = Number.POSITIVE_INFINITY): Promise<void> {
    if (!this.redis) return;
    let timer: NodeJS.Timeout | undefined;
    const limit =
      maxMs === Number.POSITIVE_INFINITY
        ? new Promise<void>(() => {})
        : new Promise<void>((resolve) => {
            timer = setTimeout(resolve, maxMs);
          });
    await Promise.race([this.redis.idle(), limit]);
    clearTimeout(timer);
  }
}

/** The cache for these settings, or undefined when EMBEDDING_CACHE=off. */
export function createEmbeddingCache(
  settings: EmbeddingCacheSettings,
  redis: Redis | Cluster | undefined,
  log?: CacheLog,
): EmbeddingCache | undefined {
  return settings.enabled ? new EmbeddingCache(settings, redis, log) : undefined;
}
