/** The embedding cache's settings, as src/config.ts reads them (EMBEDDING_CACHE_*). Types only, no imports. */

/** Who shares entries: every caller (`shared`), or only requests made with the same gateway key (`caller`). */
export type CacheScope = 'shared' | 'caller';

export interface EmbeddingCacheSettings {
  enabled: boolean;
  scope: CacheScope;
  /** Key URL-valued media by the URL string (the content behind a URL can change). */
  cacheUrls: boolean;
  memoryBytes: number;
  ttlSec: number;
  keyPrefix: string;
  redisTimeoutMs: number;
  maxPendingWrites: number;
}
