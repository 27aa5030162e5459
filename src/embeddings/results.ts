/**
 * The results the embedding pipelines return and the renderers and the cache build on: types only, shared so that no
 * module restates them (the cache merges into these shapes; the pipelines call the cache).
 */
import type { VectorRef } from '../translate/openai-render.js';
import type { ScannedItem } from '../upstream/embedding-scan.js';

/** Items served from the cache and not (undefined when the cache is off): the x-cache headers. */
export interface CacheCounts {
  hits: number;
  misses: number;
}

/** An item of a text result: the buffer it lives in and its scanned spans. */
export interface MergedItem {
  buf: Buffer;
  item: ScannedItem;
}

export interface TextEmbeddingResult {
  /** One entry per input text, in input order. */
  items: MergedItem[];
  totalTokens: number;
  /** DashScope request ids, one per upstream call, in chunk order. */
  upstreamRequestIds: string[];
  /** The raw upstream body when exactly one call served the request and its items were already in order. */
  passthrough: Buffer | undefined;
  cache?: CacheCounts | undefined;
}

export interface MultimodalEmbeddingResult {
  /** One vector (fused) or one per content item, in input order. */
  vectors: VectorRef[];
  /** Usage as a single number for OpenAI-shaped replies (tokens, or ONE-PEACE's weighted total). */
  tokens: number;
  /** DashScope request ids, one per upstream call. */
  upstreamRequestIds: string[];
  /** The raw upstream body when exactly one call served the request. */
  passthrough: Buffer | undefined;
  cache?: CacheCounts | undefined;
}
