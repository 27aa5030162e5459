/**
 * Pure helpers between a validated job and the cache: which items are hits, what goes upstream (each distinct
 * missing item once), and how hits and upstream replies merge back, in input order, into the structures the
 * existing renderers take (MergedItem for text replies, VectorRef for OpenAI/multimodal replies). A hit becomes
 * a small buffer of its own (the vector's JSON text, plus the sparse JSON) with spans into it, so renderers splice
 * it exactly as they splice an upstream reply.
 *
 * Usage counts only what DashScope billed for this request: a full hit reports 0 tokens.
 */

import type { MergedItem, MultimodalEmbeddingResult, TextEmbeddingResult } from '../embeddings/results.js';
import type { VectorRef } from '../translate/openai-render.js';
import { type ScannedItem, type Span, spanToFloat32 } from '../upstream/embedding-scan.js';
import type { CachedItem } from './entry.js';

export type { MergedItem, MultimodalEmbeddingResult, TextEmbeddingResult } from '../embeddings/results.js';

/** Renders the text of a hit's dense vector (EmbeddingCache.floatText, bound to the cache). */
export type FloatText = (key: string, item: CachedItem) => Buffer;

const EMPTY = Buffer.alloc(0);

/** Which inputs are served from the cache and which distinct items go upstream. */
export interface CachePlan<T> {
  keys: readonly (string | undefined)[];
  /** Per input: the usable cached entry, or undefined. */
  hits: (CachedItem | undefined)[];
  /** Per input: -1 for a hit, else the position of its item in `send`. */
  slots: number[];
  /** What to send upstream, each distinct missing key once (uncacheable items each once), in input order. */
  send: T[];
  hitCount: number;
  missCount: number;
}

/** What a hit must hold to answer this request (a defence in depth: the key already pins all of this). */
export interface Want {
  /** The dense length the reply must have; undefined: any length, or no dense vector (sparse-only). */
  dimension: number | undefined;
  dense: boolean;
  sparse: boolean;
}

function usable(item: CachedItem | undefined, want: Want): boolean {
  if (!item) return false;
  if (want.dense && (!item.dense || (want.dimension !== undefined && item.dense.length !== want.dimension))) {
    return false;
  }
  return !(want.sparse && !item.sparse);
}

export function plan<T>(
  inputs: readonly T[],
  keys: readonly (string | undefined)[],
  found: readonly (CachedItem | undefined)[],
  want: Want,
): CachePlan<T> {
  const hits = new Array<CachedItem | undefined>(inputs.length).fill(undefined);
  const slots = new Array<number>(inputs.length);
  const send: T[] = [];
  const sent = new Map<string, number>();
  let hitCount = 0;
  for (let i = 0; i < inputs.length; i++) {
    const key = keys[i];
    const f = found[i];
    if (usable(f, want)) {
      hits[i] = f;
      slots[i] = -1;
      hitCount++;
      continue;
    }
    const prior = key === undefined ? undefined : sent.get(key);
    if (prior !== undefined) {
      slots[i] = prior;
      continue;
    }
    slots[i] = send.length;
    if (key !== undefined) sent.set(key, send.length);
    send.push(inputs[i]!);
  }
  return { keys, hits, slots, send, hitCount, missCount: inputs.length - hitCount };
}

/** `x-cache` (hit | miss | partial) and the counts, for the reply. */
export function cacheHeaders(p: { hitCount: number; missCount: number }): Record<string, string> {
  return {
    'x-cache': p.missCount === 0 ? 'hit' : p.hitCount === 0 ? 'miss' : 'partial',
    'x-cache-hits': String(p.hitCount),
    'x-cache-misses': String(p.missCount),
  };
}

function copySpan(buf: Buffer, span: Span): Buffer {
  // A copy: a subarray would keep the whole upstream reply alive for as long as the entry lives.
  return Buffer.from(buf.subarray(span.start, span.end));
}

/** A hit as a MergedItem: its own buffer `<dense text><sparse json>` and spans into it. */
function hitToMerged(
  key: string,
  item: CachedItem,
  index: number,
  floatText: FloatText | undefined,
): MergedItem {
  const text = item.dense && floatText ? floatText(key, item) : undefined;
  const sparse = item.sparse;
  const buf = text && sparse ? Buffer.concat([text, sparse]) : (text ?? sparse ?? EMPTY);
  const scanned: ScannedItem = {
    index,
    embedding: item.dense ? (text ? { start: 0, end: text.length } : { start: 0, end: 0 }) : undefined,
    dims: item.dense?.length ?? 0,
    values: item.dense,
    extras: sparse ? [['sparse_embedding', { start: text?.length ?? 0, end: buf.length }]] : [],
  };
  return { buf, item: scanned };
}

/** The entry to keep for an upstream text item, or undefined when it carries keys a hit could not reproduce. */
function textEntry(m: MergedItem, tokens: number | undefined): CachedItem | undefined {
  const { buf, item } = m;
  let sparse: Buffer | undefined;
  for (const [key, span] of item.extras) {
    if (key !== 'sparse_embedding') return undefined;
    sparse = copySpan(buf, span);
  }
  const e = item.embedding;
  return {
    dense: e ? (item.values ?? spanToFloat32(buf, e)) : undefined,
    sparse,
    tokens,
    type: undefined,
    text: e ? copySpan(buf, e) : undefined,
  };
}

export interface TextMerge {
  result: TextEmbeddingResult;
  /** Entries for EmbeddingCache.setMany. */
  store: [string, CachedItem][];
}

/** What a text job needs from a hit. */
export function textWant(dimension: number, outputType: string): Want {
  return { dimension, dense: outputType !== 'sparse', sparse: outputType !== 'dense' };
}

/**
 * Hits and the upstream result for `p.send` (undefined when everything was a hit) → one TextEmbeddingResult in
 * input order. `floatText` is needed when the reply prints vectors as JSON (every native reply, OpenAI float);
 * pass undefined for OpenAI base64, which reads only the float32 values.
 */
export function mergeText(
  p: CachePlan<string>,
  upstream: TextEmbeddingResult | undefined,
  floatText: FloatText | undefined,
): TextMerge {
  const fromUpstream = upstream?.items ?? [];
  if (fromUpstream.length !== p.send.length) {
    throw new Error(`mergeText: ${fromUpstream.length} upstream items for ${p.send.length} sent`);
  }
  const tokensEach = fromUpstream.length === 1 ? upstream?.totalTokens : undefined;
  const store: [string, CachedItem][] = [];
  const stored = new Set<number>();
  const items: MergedItem[] = p.slots.map((slot, i) => {
    const key = p.keys[i];
    if (slot === -1) return hitToMerged(key!, p.hits[i]!, i, floatText);
    const m = fromUpstream[slot]!;
    if (key !== undefined && !stored.has(slot)) {
      stored.add(slot);
      const entry = textEntry(m, tokensEach);
      if (entry) store.push([key, entry]);
    }
    return m;
  });
  const whole = p.hitCount === 0 && p.send.length === p.slots.length;
  return {
    result: {
      items,
      totalTokens: upstream?.totalTokens ?? 0,
      upstreamRequestIds: upstream?.upstreamRequestIds ?? [],
      passthrough: whole ? upstream?.passthrough : undefined,
    },
    store,
  };
}

/** A hit as a VectorRef: the text when the reply prints JSON, else the float32 values only. */
function hitToRef(key: string, item: CachedItem, floatText: FloatText | undefined): VectorRef {
  if (!floatText) return { buf: EMPTY, span: { start: 0, end: 0 }, values: item.dense };
  const text = floatText(key, item);
  return { buf: text, span: { start: 0, end: text.length }, values: item.dense };
}

function refEntry(ref: VectorRef, tokens: number | undefined, type: string): CachedItem {
  return {
    dense: ref.values ?? spanToFloat32(ref.buf, ref.span),
    sparse: undefined,
    tokens,
    type,
    text: copySpan(ref.buf, ref.span),
  };
}

export interface MultimodalMerge {
  result: MultimodalEmbeddingResult;
  /** The item `type` per vector in order (the modality; `fusion` for a fused vector), for native replies. */
  types: string[];
  store: [string, CachedItem][];
}

/** The modality of a validated content item. */
export function modalityOf(item: Record<string, unknown>): string {
  for (const m of ['text', 'image', 'audio', 'video']) if (Object.hasOwn(item, m)) return m;
  return 'unknown';
}

/**
 * Per-item multimodal output: hits and the upstream result for `p.send` → one result in input order.
 * Fused jobs use mergeFused instead.
 */
export function mergeMultimodalItems(
  p: CachePlan<Record<string, unknown>>,
  inputs: readonly Record<string, unknown>[],
  upstream: MultimodalEmbeddingResult | undefined,
  floatText: FloatText | undefined,
): MultimodalMerge {
  const fromUpstream = upstream?.vectors ?? [];
  if (fromUpstream.length !== p.send.length) {
    throw new Error(
      `mergeMultimodalItems: ${fromUpstream.length} upstream vectors for ${p.send.length} sent`,
    );
  }
  const tokensEach = fromUpstream.length === 1 ? upstream?.tokens : undefined;
  const store: [string, CachedItem][] = [];
  const stored = new Set<number>();
  const types: string[] = [];
  const vectors = p.slots.map((slot, i) => {
    const key = p.keys[i];
    const hit = p.hits[i];
    types.push(hit?.type ?? modalityOf(inputs[i]!));
    if (slot === -1) return hitToRef(key!, hit!, floatText);
    const ref = fromUpstream[slot]!;
    if (key !== undefined && !stored.has(slot)) {
      stored.add(slot);
      store.push([key, refEntry(ref, tokensEach, modalityOf(inputs[i]!))]);
    }
    return ref;
  });
  const whole = p.hitCount === 0 && p.send.length === p.slots.length;
  return {
    result: {
      vectors,
      tokens: upstream?.tokens ?? 0,
      upstreamRequestIds: upstream?.upstreamRequestIds ?? [],
      passthrough: whole ? upstream?.passthrough : undefined,
    },
    types,
    store,
  };
}

/** Fused output (ONE-PEACE, enable_fusion): one key, one vector; `hit` or else the upstream result. */
export function mergeFused(
  key: string | undefined,
  hit: CachedItem | undefined,
  upstream: MultimodalEmbeddingResult | undefined,
  floatText: FloatText | undefined,
): MultimodalMerge {
  if (hit && key !== undefined) {
    return {
      result: {
        vectors: [hitToRef(key, hit, floatText)],
        tokens: 0,
        upstreamRequestIds: [],
        passthrough: undefined,
      },
      types: [hit.type ?? 'fusion'],
      store: [],
    };
  }
  if (upstream?.vectors.length !== 1) throw new Error('mergeFused: expected one upstream vector');
  return {
    result: upstream,
    types: ['fusion'],
    store: key === undefined ? [] : [[key, refEntry(upstream.vectors[0]!, upstream.tokens, 'fusion')]],
  };
}
