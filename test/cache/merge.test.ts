/**
 * The merge helpers with the real pipelines and the real DashScope emulator over HTTP: what goes upstream (only
 * the distinct misses), what the caller gets (the same vectors, float32 bit for bit and as the same text, the
 * same sparse bytes, in input order), and what usage says (only what this request's upstream calls billed).
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { EmbeddingCache, type EmbeddingCacheSettings } from '../../src/cache/cache.js';
import { type KeyScope, multimodalKeys, textKeys } from '../../src/cache/keys.js';
import {
  cacheHeaders,
  type FloatText,
  mergeFused,
  mergeMultimodalItems,
  mergeText,
  plan,
  textWant,
} from '../../src/cache/merge.js';
import { renderNativeMultimodal } from '../../src/cache/render.js';
import { loadConfig } from '../../src/config.js';
import {
  type MultimodalEmbeddingJob,
  type MultimodalEmbeddingResult,
  runMultimodalEmbedding,
} from '../../src/embeddings/multimodal-pipeline.js';
import {
  runTextEmbedding,
  type TextEmbeddingJob,
  type TextEmbeddingResult,
} from '../../src/embeddings/text-pipeline.js';
import { type Emulator, startEmulator } from '../../src/emulator/server.js';
import type { CallContext } from '../../src/http/call-context.js';
import { joinParts } from '../../src/http/parts-body.js';
import { buildModelTable } from '../../src/models/index.js';
import type { MultimodalEmbeddingModel } from '../../src/models/multimodal-embedding.js';
import type { TextEmbeddingModel } from '../../src/models/text-embedding.js';
import { textResultToNative } from '../../src/translate/native-text-embedding.js';
import { renderOpenAIEmbeddings } from '../../src/translate/openai-render.js';
import { Upstream } from '../../src/upstream/client.js';
import { requireRedis, uniquePrefix } from '../ratelimit/support.js';

const KEY = 'sk-test-upstream-key-merge-0123456789';
let emu: Emulator;
let upstream: Upstream;
const models = buildModelTable(new Map());
const scope: KeyScope = { scope: 'caller', caller: 'alice' };

beforeAll(async () => {
  emu = await startEmulator({ apiKey: KEY });
  const config = loadConfig({
    DASHSCOPE_API_KEY: KEY,
    DASHSCOPE_BASE_URL: emu.url,
    GATEWAY_ALLOW_ANONYMOUS: 'true',
  });
  upstream = new Upstream(config.upstream);
});
afterAll(async () => {
  await upstream.close();
  await emu.close();
});

const ctx = (): CallContext => ({
  upstream: upstream.forCaller(undefined),
  caller: 'alice',
  workspace: undefined,
  requestId: 'merge-test',
  signal: new AbortController().signal,
  trace: [],
  concurrency: 4,
  deadline: Date.now() + 60_000,
  governor: undefined,
});

const settings = (keyPrefix = 'unused:'): EmbeddingCacheSettings => ({
  enabled: true,
  scope: 'caller',
  cacheUrls: true,
  memoryBytes: 16 * 1024 * 1024,
  ttlSec: 600,
  keyPrefix,
  redisTimeoutMs: 500,
  maxPendingWrites: 1000,
});

const textModel = (name: string): TextEmbeddingModel => models.get(name) as TextEmbeddingModel;
const mmModel = (name: string): MultimodalEmbeddingModel => models.get(name) as MultimodalEmbeddingModel;

function textJob(
  texts: string[],
  outputType: TextEmbeddingJob['outputType'] = 'dense&sparse',
): TextEmbeddingJob {
  return {
    model: textModel('text-embedding-v4'),
    texts,
    parameters: { dimension: 256, output_type: outputType },
    dimension: 256,
    outputType,
  };
}

/** A request through the cache, as a route will do it; returns the merge, the plan and the upstream texts sent. */
async function cachedText(cache: EmbeddingCache, job: TextEmbeddingJob, floatText: boolean) {
  const keys = textKeys(scope, job, job.texts);
  const p = plan(job.texts, keys, await cache.getMany(keys), textWant(job.dimension, job.outputType));
  emu.clearReceived();
  const up = p.send.length > 0 ? await runTextEmbedding(ctx(), { ...job, texts: p.send }) : undefined;
  const sent = emu.received.map((r) => (JSON.parse(r.body) as { input: { texts: string[] } }).input.texts);
  const ft: FloatText | undefined = floatText ? (k, i) => cache.floatText(k, i) : undefined;
  const merged = mergeText(p, up, ft);
  cache.setMany(merged.store);
  return { merged, p, sent, up };
}

interface NativeItem {
  embedding?: number[];
  sparse_embedding?: unknown;
  text_index: number;
}
const nativeItems = (body: Buffer): NativeItem[] =>
  (JSON.parse(body.toString('utf8')) as { output: { embeddings: NativeItem[] } }).output.embeddings;
/** The raw text of every `"embedding":[...]` in a body, in order. */
const embeddingTexts = (body: Buffer): string[] =>
  [...body.toString('latin1').matchAll(/"embedding":(\[[^\]]*\])/g)].map((m) => m[1]!);

async function reference(job: TextEmbeddingJob): Promise<TextEmbeddingResult> {
  return runTextEmbedding(ctx(), job);
}

describe('text: plan and merge', () => {
  it('sends only distinct misses, answers in input order, and bills only what went upstream', async () => {
    const cache = new EmbeddingCache(settings());
    const first = await cachedText(cache, textJob(['alpha', 'beta', 'gamma']), true);
    expect(first.sent).toEqual([['alpha', 'beta', 'gamma']]);
    expect(cacheHeaders(first.p)).toEqual({ 'x-cache': 'miss', 'x-cache-hits': '0', 'x-cache-misses': '3' });
    // A full miss served by one in-order call still passes the upstream body through.
    expect(first.merged.result.passthrough).toBe(first.up!.passthrough);
    expect(first.merged.store).toHaveLength(3);

    const texts = ['gamma', 'delta', 'alpha', 'delta', 'beta'];
    const second = await cachedText(cache, textJob(texts), true);
    expect(second.sent).toEqual([['delta']]);
    expect(cacheHeaders(second.p)).toEqual({
      'x-cache': 'partial',
      'x-cache-hits': '3',
      'x-cache-misses': '2',
    });
    const body = joinParts(textResultToNative(second.merged.result, 'rid'));
    const ref = await reference(textJob(texts));
    const refBody = joinParts(textResultToNative(ref, 'rid'));
    // Same items, same numbers, same sparse values, same text of each vector.
    expect(nativeItems(body)).toEqual(nativeItems(refBody));
    expect(embeddingTexts(body)).toEqual(embeddingTexts(refBody));
    const alone = await reference(textJob(['delta']));
    const usage = (JSON.parse(body.toString()) as { usage: { total_tokens: number } }).usage.total_tokens;
    expect(usage).toBe(alone.totalTokens);
    expect(usage).toBeGreaterThan(0);
    // delta was sent once and is stored once.
    expect(second.merged.store.map(([k]) => k)).toEqual(textKeys(scope, textJob(['delta']), ['delta']));

    const third = await cachedText(cache, textJob(['beta', 'alpha']), true);
    expect(third.sent).toEqual([]);
    expect(cacheHeaders(third.p)['x-cache']).toBe('hit');
    const hitBody = joinParts(textResultToNative(third.merged.result, 'rid'));
    expect(JSON.parse(hitBody.toString())).toMatchObject({ usage: { total_tokens: 0 } });
    expect(nativeItems(hitBody).map((i) => i.text_index)).toEqual([0, 1]);
  });

  it('never serves a dense-only entry for a dense&sparse request, nor one dimension for another', async () => {
    const cache = new EmbeddingCache(settings());
    await cachedText(cache, textJob(['one'], 'dense'), true);
    const both = await cachedText(cache, textJob(['one'], 'dense&sparse'), true);
    expect(both.sent).toEqual([['one']]);
    const other = { ...textJob(['one'], 'dense'), dimension: 512, parameters: { dimension: 512 } };
    const again = await cachedText(cache, other, true);
    expect(again.sent).toEqual([['one']]);
    expect(nativeItems(joinParts(textResultToNative(again.merged.result, 'r')))[0]!.embedding).toHaveLength(
      512,
    );
  });

  it('serves sparse-only output from the cache as the same bytes', async () => {
    const cache = new EmbeddingCache(settings());
    const job = textJob(['sparse one', 'sparse two'], 'sparse');
    const miss = await cachedText(cache, job, true);
    const hit = await cachedText(cache, job, true);
    expect(hit.sent).toEqual([]);
    const missBody = joinParts(textResultToNative(miss.merged.result, 'r')).toString();
    const hitBody = joinParts(textResultToNative(hit.merged.result, 'r')).toString();
    expect(missBody).toContain('sparse_embedding');
    expect(missBody).not.toContain('"embedding"');
    // Byte for byte up to usage (usage and request_id differ: a hit bills nothing and has no upstream id).
    const output = (b: string): string => b.slice(0, b.indexOf('"usage"'));
    expect(output(hitBody)).toBe(output(missBody));
  });

  it('renders OpenAI float and base64 replies from hits exactly as from upstream', async () => {
    const cache = new EmbeddingCache(settings());
    const texts = ['red', 'green', 'blue'];
    const job = textJob(texts, 'dense');
    await cachedText(cache, job, true);
    const refResult = await reference({ ...job, decode: true });
    const refs = refResult.items.map(({ buf, item }) => ({
      buf,
      span: item.embedding!,
      values: item.values,
    }));
    for (const encoding of ['float', 'base64'] as const) {
      const hit = await cachedText(cache, job, encoding === 'float');
      expect(hit.sent).toEqual([]);
      const vectors = hit.merged.result.items.map(({ buf, item }) => ({
        buf,
        span: item.embedding!,
        values: item.values,
      }));
      const got = joinParts(renderOpenAIEmbeddings('text-embedding-v4', vectors, 0, encoding));
      expect(got.equals(joinParts(renderOpenAIEmbeddings('text-embedding-v4', refs, 0, encoding)))).toBe(
        true,
      );
    }
  });
});

const redisUrl = inject('redisUrl');
describe.skipIf(!requireRedis(redisUrl, 'the cache merge test through Redis'))(
  'text: a hit from another replica',
  () => {
    it('prints float32 from Redis as the same text DashScope sent', async () => {
      const prefix = uniquePrefix('merge');
      const ra = new Redis(redisUrl);
      const rb = new Redis(redisUrl);
      try {
        const a = new EmbeddingCache(settings(prefix), ra);
        const b = new EmbeddingCache(settings(prefix), rb);
        const texts = Array.from({ length: 10 }, (_, i) => `document number ${i} about caching`);
        const job = {
          ...textJob(texts, 'dense&sparse'),
          dimension: 1024,
          parameters: { dimension: 1024, output_type: 'dense&sparse' },
        };
        const miss = await cachedText(a, job, true);
        await a.idle();
        const missBody = joinParts(textResultToNative(miss.merged.result, 'r'));
        const hit = await cachedText(b, job, true);
        expect(hit.sent).toEqual([]);
        expect(b.stats()).toMatchObject({ redisHits: 10, renders: 10 });
        const hitBody = joinParts(textResultToNative(hit.merged.result, 'r'));
        expect(embeddingTexts(hitBody)).toEqual(embeddingTexts(missBody));
        expect(nativeItems(hitBody)).toEqual(nativeItems(missBody));
      } finally {
        ra.disconnect();
        rb.disconnect();
      }
    });
  },
);

describe('multimodal: plan and merge', () => {
  function mmJob(
    contents: Record<string, unknown>[],
    model = 'tongyi-embedding-vision-plus',
  ): MultimodalEmbeddingJob {
    const m = mmModel(model);
    return {
      model: m,
      contents,
      parameters: undefined,
      dimension: undefined,
      fused: m.output === 'fused',
      ossResolve: false,
    };
  }

  async function cachedItems(cache: EmbeddingCache, job: MultimodalEmbeddingJob) {
    const keys = multimodalKeys(scope, job, { cacheUrls: true });
    const p = plan(job.contents, keys, await cache.getMany(keys), {
      dimension: job.dimension,
      dense: true,
      sparse: false,
    });
    emu.clearReceived();
    const up: MultimodalEmbeddingResult | undefined =
      p.send.length > 0 ? await runMultimodalEmbedding(ctx(), { ...job, contents: p.send }) : undefined;
    const merged = mergeMultimodalItems(p, job.contents, up, (k, i) => cache.floatText(k, i));
    cache.setMany(merged.store);
    return { merged, p, calls: emu.received.length };
  }

  it('merges per-item hits and renders the native body as DashScope shapes it', async () => {
    const cache = new EmbeddingCache(settings());
    const a = { text: 'a cat on a mat' };
    const b = { image: 'https://example.com/cat.png' };
    const c = { text: 'a dog' };
    const first = await cachedItems(cache, mmJob([a, b]));
    expect(first.calls).toBe(1);
    const second = await cachedItems(cache, mmJob([b, c, a]));
    expect(second.calls).toBe(1);
    expect(cacheHeaders(second.p)['x-cache']).toBe('partial');
    const body = joinParts(
      renderNativeMultimodal(
        second.merged.result.vectors,
        second.merged.types,
        'items',
        { input_tokens: second.merged.result.tokens },
        'r',
      ),
    );
    const ref = await runMultimodalEmbedding(ctx(), mmJob([b, c, a]));
    const refJson = JSON.parse(ref.passthrough!.toString()) as { output: unknown };
    expect((JSON.parse(body.toString()) as { output: unknown }).output).toEqual(refJson.output);
    expect(embeddingTexts(body)).toEqual(embeddingTexts(ref.passthrough!));
  });

  it('caches a fused vector under one key for the whole list', async () => {
    const cache = new EmbeddingCache(settings());
    const job = mmJob(
      [
        { text: 'sunset', factor: 1 },
        { image: 'https://example.com/sun.png', factor: 2 },
      ],
      'multimodal-embedding-one-peace-v1',
    );
    const [key] = multimodalKeys(scope, job, { cacheUrls: true });
    emu.clearReceived();
    const up = await runMultimodalEmbedding(ctx(), job);
    const miss = mergeFused(key, undefined, up, undefined);
    cache.setMany(miss.store);
    const [hit] = await cache.getMany([key]);
    const served = mergeFused(key, hit, undefined, (k, i) => cache.floatText(k, i));
    expect(served.result.tokens).toBe(0);
    const body = joinParts(
      renderNativeMultimodal(served.result.vectors, served.types, 'fused', { total_usage: 0 }, 'r'),
    );
    expect(embeddingTexts(body)).toEqual(embeddingTexts(up.passthrough!));
    // Swapping the factors is another request.
    const swapped = {
      ...job,
      contents: [
        { text: 'sunset', factor: 2 },
        { image: 'https://example.com/sun.png', factor: 1 },
      ],
    };
    expect((await cache.getMany(multimodalKeys(scope, swapped, { cacheUrls: true })))[0]).toBeUndefined();
  });
});
