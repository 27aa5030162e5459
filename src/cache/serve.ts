/**
 * The cache in front of the embedding pipelines, for the routes: look the job's items up, send only the distinct
 * misses upstream, merge in input order, store what came back, and say what happened in `x-cache*` headers.
 * Without a cache (EMBEDDING_CACHE=off) the pipelines run as before and no header is set.
 *
 * A lookup or store problem never fails the request (the cache answers misses instead); an upstream failure fails
 * it exactly as without a cache, and nothing is stored.
 */
import type { FastifyRequest } from 'fastify';
import {
  type MultimodalEmbeddingJob,
  type MultimodalEmbeddingResult,
  runMultimodalEmbedding,
} from '../embeddings/multimodal-pipeline.js';
import {
  runTextEmbedding,
  type TextEmbeddingJob,
  type TextEmbeddingResult,
} from '../embeddings/text-pipeline.js';
import type { CallContext } from '../http/call-context.js';
import '../gateway.js';
import type { EmbeddingCache } from './cache.js';
import { type KeyScope, multimodalKeys, textKeys } from './keys.js';
import {
  cacheHeaders,
  type FloatText,
  mergeFused,
  mergeMultimodalItems,
  mergeText,
  plan,
  textWant,
} from './merge.js';
import { renderNativeMultimodal } from './render.js';

export interface Served<R> {
  result: R;
  /** `x-cache`, `x-cache-hits`, `x-cache-misses`; empty without a cache. */
  headers: Record<string, string>;
}

export interface CacheRequest {
  cache: EmbeddingCache | undefined;
  /** The gateway key name (`anonymous` without one): part of every key under EMBEDDING_CACHE_SCOPE=caller. */
  caller: string;
  /** The reply prints vectors as JSON (native replies, OpenAI float): hits need their text. */
  needText: boolean;
}

/** The cache, the caller and the reply form of a request (`needText`: it prints vectors as JSON). */
export function cacheRequest(request: FastifyRequest, needText: boolean): CacheRequest {
  return { cache: request.server.gw.embeddingCache, caller: request.caller?.name ?? 'anonymous', needText };
}

function scopeOf(cache: EmbeddingCache, caller: string): KeyScope {
  return { scope: cache.settings.scope, caller };
}

function floatTextOf(cache: EmbeddingCache, needText: boolean): FloatText | undefined {
  return needText ? (key, item) => cache.floatText(key, item) : undefined;
}

/** runTextEmbedding behind the cache. */
export async function serveTextEmbedding(
  ctx: CallContext,
  job: TextEmbeddingJob,
  req: CacheRequest,
): Promise<Served<TextEmbeddingResult>> {
  const { cache } = req;
  if (!cache) return { result: await runTextEmbedding(ctx, job), headers: {} };
  const keys = textKeys(scopeOf(cache, req.caller), job, job.texts);
  const p = plan(job.texts, keys, await cache.getMany(keys), textWant(job.dimension, job.outputType));
  // Decoding while scanning is one pass over the digits; the entries keep float32 either way.
  const upstream =
    p.send.length > 0 ? await runTextEmbedding(ctx, { ...job, texts: p.send, decode: true }) : undefined;
  const merged = mergeText(p, upstream, floatTextOf(cache, req.needText));
  cache.setMany(merged.store);
  return { result: merged.result, headers: cacheHeaders(p) };
}

export interface ServedMultimodal extends Served<MultimodalEmbeddingResult> {
  /** The item `type` of each vector, for a native reply built from cached parts. */
  types: string[];
}

/** runMultimodalEmbedding behind the cache (per-item and fused output). */
export async function serveMultimodalEmbedding(
  ctx: CallContext,
  job: MultimodalEmbeddingJob,
  req: CacheRequest,
): Promise<ServedMultimodal> {
  const { cache } = req;
  if (!cache) return { result: await runMultimodalEmbedding(ctx, job), headers: {}, types: [] };
  const keys = multimodalKeys(scopeOf(cache, req.caller), job, { cacheUrls: cache.settings.cacheUrls });
  const floatText = floatTextOf(cache, req.needText);
  if (job.fused) {
    const [key] = keys;
    const [hit] = await cache.getMany([key]);
    const usable =
      hit?.dense !== undefined && (job.dimension === undefined || hit.dense.length === job.dimension);
    const upstream = usable ? undefined : await runMultimodalEmbedding(ctx, { ...job, decode: true });
    const merged = mergeFused(key, usable ? hit : undefined, upstream, floatText);
    cache.setMany(merged.store);
    const counts = { hitCount: usable ? 1 : 0, missCount: usable ? 0 : 1 };
    return { result: merged.result, headers: cacheHeaders(counts), types: merged.types };
  }
  const p = plan(job.contents, keys, await cache.getMany(keys), {
    dimension: job.dimension,
    dense: true,
    sparse: false,
  });
  const upstream =
    p.send.length > 0
      ? await runMultimodalEmbedding(ctx, { ...job, contents: p.send, decode: true })
      : undefined;
  const merged = mergeMultimodalItems(p, job.contents, upstream, floatText);
  cache.setMany(merged.store);
  return { result: merged.result, headers: cacheHeaders(p), types: merged.types };
}

/**
 * The native multimodal reply: DashScope's body when one call served the whole request, else one built from
 * the merged vectors. Its usage reports only what this request's upstream call billed (0 on a full hit), under
 * the name DashScope uses for the model (`total_usage` for always-fused ONE-PEACE, `input_tokens` otherwise).
 */
export function multimodalToNative(
  served: ServedMultimodal,
  job: MultimodalEmbeddingJob,
  requestId: string,
): Buffer {
  const { result } = served;
  if (result.passthrough) return result.passthrough;
  const alwaysFused = job.model.output === 'fused';
  return renderNativeMultimodal(
    result.vectors,
    served.types,
    alwaysFused ? 'fused' : 'items',
    alwaysFused ? { total_usage: result.tokens } : { input_tokens: result.tokens },
    requestId,
  );
}
