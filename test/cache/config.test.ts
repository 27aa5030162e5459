/** The EMBEDDING_CACHE_* settings: documented defaults, accepted spellings, and bounds reported by name. */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { configProblems } from '../support/config.js';

const base = { DASHSCOPE_API_KEY: 'sk-upstream-123', GATEWAY_API_KEYS: 'svc:key-for-svc-1' };

const problems = (env: Record<string, string>): string[] => configProblems({ ...base, ...env });

describe('embedding cache settings', () => {
  it('default to off (the demo turns it on), per-caller scope, no URL keys, 64 MiB in memory, 7 days in Redis', () => {
    expect(loadConfig(base).embeddingCache).toEqual({
      enabled: false,
      scope: 'caller',
      cacheUrls: false,
      memoryBytes: 64 * 1024 * 1024,
      ttlSec: 7 * 24 * 3600,
      keyPrefix: 'dsgw:emb:',
      redisTimeoutMs: 200,
      maxPendingWrites: 10_000,
    });
  });

  it('read every setting', () => {
    const c = loadConfig({
      ...base,
      EMBEDDING_CACHE: 'on',
      EMBEDDING_CACHE_SCOPE: 'shared',
      EMBEDDING_CACHE_URLS: 'true',
      EMBEDDING_CACHE_MEMORY_BYTES: '0',
      EMBEDDING_CACHE_TTL_SEC: '60',
      EMBEDDING_CACHE_KEY_PREFIX: '{emb}:',
      EMBEDDING_CACHE_REDIS_TIMEOUT_MS: '50',
      EMBEDDING_CACHE_MAX_PENDING_WRITES: '5',
    }).embeddingCache;
    expect(c).toEqual({
      enabled: true,
      scope: 'shared',
      cacheUrls: true,
      memoryBytes: 0,
      ttlSec: 60,
      keyPrefix: '{emb}:',
      redisTimeoutMs: 50,
      maxPendingWrites: 5,
    });
  });

  it('name each setting that is out of bounds', () => {
    const p = problems({
      EMBEDDING_CACHE: 'maybe',
      EMBEDDING_CACHE_SCOPE: 'global',
      EMBEDDING_CACHE_MEMORY_BYTES: '-1',
      EMBEDDING_CACHE_TTL_SEC: '0',
      EMBEDDING_CACHE_KEY_PREFIX: 'has space',
      EMBEDDING_CACHE_REDIS_TIMEOUT_MS: '10001',
    });
    for (const name of [
      'EMBEDDING_CACHE',
      'EMBEDDING_CACHE_SCOPE',
      'EMBEDDING_CACHE_MEMORY_BYTES',
      'EMBEDDING_CACHE_TTL_SEC',
      'EMBEDDING_CACHE_KEY_PREFIX',
      'EMBEDDING_CACHE_REDIS_TIMEOUT_MS',
    ]) {
      expect(p.some((m) => m.startsWith(`${name}:`))).toBe(true);
    }
  });
});
