/**
 * The cache's two steps inside the embedding pipelines: before any upstream call, look every item up and decide
 * what goes upstream (each distinct miss once); after the calls, merge hits and upstream items in input order,
 * store what came back, and count hits and misses for the `x-cache*` headers.
 *
 * Kept apart from the pipelines' own chunking and calling, so the pipelines read: lookup → (chunk, call) → finish.
 * Nothing is stored when an upstream call fails (finish is never reached), and a cache problem is only ever a
 * miss: lookups and stores never throw.
 */
import type { EmbeddingCache } from './cache.js';
import type { CachedItem } from './entry.js';
import { type KeyScope, type MultimodalKeyJob, multimodalKeys, type TextKeyJob, textKeys } from './keys.js';
import {
  type CachePlan,
  cacheHeaders,
  type FloatText,
  type MultimodalEmbeddingResult,
  mergeFused,
  mergeMultimodalItems,
  mergeText,
  plan,
  type TextEmbeddingResult,
  textWant,
} from './merge.js';

/** What the pipelines need from the request for the cache (fields of CallContext). */
export interface CacheContext {
  cache?: EmbeddingCache | undefined;
  /** The gateway key name; part of every key under EMBEDDING_CACHE_SCOPE=caller. */
  caller?: string | undefined;
}

import type { CacheCounts } from '../embeddings/results.js';

export type { CacheCounts } from '../embeddings/results.js';

/** `x-cache: hit|miss|partial`, `x-cache-hits`, `x-cache-misses`; none when the cache is off. */
export function xCacheHeaders(counts: CacheCounts | undefined): Record<string, string> {
  return counts ? cacheHeaders({ hitCount: counts.hits, missCount: counts.misses }) : {};
}

function scopeOf(cache: EmbeddingCache, ctx: CacheContext): KeyScope {
  return { scope: cache.settings.scope, caller: ctx.caller ?? 'anonymous' };
}

/** Hits print their vector as JSON text unless the caller asked for base64 (`decode`: only float32 is read). */
function floatTextFor(cache: EmbeddingCache, decode: boolean | undefined): FloatText | undefined {
  return decode === true ? undefined : (key, item) => cache.floatText(key, item);
}

export interface TextLookup {
  cache: EmbeddingCache;
  plan: CachePlan<string>;
  floatText: FloatText | undefined;
}

/** Looks the job's texts up; undefined without a cache. `plan.send` is what to chunk and send. */
export async function lookupTexts(
  ctx: CacheContext,
  job: TextKeyJob & { texts: readonly string[]; decode?: boolean | undefined },
): Promise<TextLookup | undefined> {
  const { cache } = ctx;
  if (!cache) return undefined;
  const keys = textKeys(scopeOf(cache, ctx), job, job.texts);
  const found = await cache.getMany(keys);
  return {
    cache,
    plan: plan(job.texts, keys, found, textWant(job.dimension, job.outputType)),
    floatText: floatTextFor(cache, job.decode),
  };
}

/** Merges hits and the upstream result for `plan.send` (undefined when nothing was sent), and stores the misses. */
export function finishTexts(
  lookup: TextLookup,
  upstream: TextEmbeddingResult | undefined,
): TextEmbeddingResult & { cache: CacheCounts } {
  const merged = mergeText(lookup.plan, upstream, lookup.floatText);
  lookup.cache.setMany(merged.store);
  return { ...merged.result, cache: { hits: lookup.plan.hitCount, misses: lookup.plan.missCount } };
}

export interface MultimodalLookup {
  cache: EmbeddingCache;
  contents: readonly Record<string, unknown>[];
  floatText: FloatText | undefined;
  /** Per-item output. */
  plan: CachePlan<Record<string, unknown>> | undefined;
  /** Fused output: the one key (undefined when an item cannot be keyed) and its usable hit. */
  fusedKey: string | undefined;
  fusedHit: CachedItem | undefined;
  /** What to send upstream: the distinct misses (per item), the whole list (fused miss), or nothing. */
  send: Record<string, unknown>[];
}

/** Looks a multimodal job up; undefined without a cache. */
export async function lookupContents(
  ctx: CacheContext,
  job: MultimodalKeyJob & { contents: Record<string, unknown>[]; decode?: boolean | undefined },
): Promise<MultimodalLookup | undefined> {
  const { cache } = ctx;
  if (!cache) return undefined;
  const keys = multimodalKeys(scopeOf(cache, ctx), job, { cacheUrls: cache.settings.cacheUrls });
  const floatText = floatTextFor(cache, job.decode);
  const found = await cache.getMany(keys);
  if (job.fused) {
    const hit = found[0];
    const usable =
      hit?.dense !== undefined && (job.dimension === undefined || hit.dense.length === job.dimension);
    return {
      cache,
      contents: job.contents,
      floatText,
      plan: undefined,
      fusedKey: keys[0],
      fusedHit: usable ? hit : undefined,
      send: usable ? [] : job.contents,
    };
  }
  const p = plan(job.contents, keys, found, { dimension: job.dimension, dense: true, sparse: false });
  return {
    cache,
    contents: job.contents,
    floatText,
    plan: p,
    fusedKey: undefined,
    fusedHit: undefined,
    send: p.send,
  };
}

/** Merges hits and the upstream result for `send` (undefined when nothing was sent), and stores the misses. */
export function finishContents(
  lookup: MultimodalLookup,
  upstream: MultimodalEmbeddingResult | undefined,
): MultimodalEmbeddingResult & { cache: CacheCounts } {
  if (!lookup.plan) {
    const merged = mergeFused(lookup.fusedKey, lookup.fusedHit, upstream, lookup.floatText);
    lookup.cache.setMany(merged.store);
    const hit = lookup.fusedHit !== undefined;
    return { ...merged.result, cache: { hits: hit ? 1 : 0, misses: hit ? 0 : 1 } };
  }
  const merged = mergeMultimodalItems(lookup.plan, lookup.contents, upstream, lookup.floatText);
  lookup.cache.setMany(merged.store);
  return { ...merged.result, cache: { hits: lookup.plan.hitCount, misses: lookup.plan.missCount } };
}
