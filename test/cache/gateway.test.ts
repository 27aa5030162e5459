/**
 * The cache in the gateway, over HTTP against the emulator: a repeated request is not paid for twice (no upstream
 * call, usage 0, the same vectors), a partly known request sends only what is new, `x-cache*` headers say which,
 * callers do not share entries under the default scope, replicas share them through Redis, and a failed upstream
 * call stores nothing.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { auth, KEYS, type Stack, startStack, upstreamCalls } from '../helpers.js';
import { requireRedis, uniquePrefix } from '../ratelimit/support.js';

const NATIVE_TEXT = '/api/v1/services/embeddings/text-embedding/text-embedding';
const NATIVE_MM = '/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding';

interface OpenAIReply {
  data: { index: number; embedding: number[] | string }[];
  usage: { prompt_tokens: number; total_tokens: number };
}

const sentTexts = (s: Stack): string[][] =>
  upstreamCalls(s.emu).map((r) => (JSON.parse(r.body) as { input: { texts: string[] } }).input.texts);

async function openai(
  s: Stack,
  input: string | string[],
  extra: Record<string, unknown> = {},
  key: string = KEYS.alice,
) {
  const res = await s.app.inject({
    method: 'POST',
    url: '/v1/embeddings',
    headers: auth(key),
    payload: { model: 'text-embedding-v4', input, dimensions: 256, ...extra },
  });
  expect(res.statusCode).toBe(200);
  return { res, body: res.json<OpenAIReply>() };
}

describe('embedding cache in the gateway', () => {
  let s: Stack;
  beforeAll(async () => {
    s = await startStack({ env: { EMBEDDING_CACHE: 'on' } });
  });
  afterAll(async () => s.close());
  beforeEach(() => {
    s.emu.clearReceived();
    s.emu.clearFaults();
  });

  it('serves a repeated OpenAI request without an upstream call, with usage 0 and the same vectors', async () => {
    const first = await openai(s, ['one fish', 'two fish']);
    expect(first.res.headers['x-cache']).toBe('miss');
    expect(first.res.headers['x-cache-misses']).toBe('2');
    expect(first.body.usage.total_tokens).toBeGreaterThan(0);
    s.emu.clearReceived();

    const again = await openai(s, ['one fish', 'two fish']);
    expect(upstreamCalls(s.emu)).toHaveLength(0);
    expect(again.res.headers).toMatchObject({ 'x-cache': 'hit', 'x-cache-hits': '2', 'x-cache-misses': '0' });
    expect(again.body.usage).toEqual({ prompt_tokens: 0, total_tokens: 0 });
    expect(again.body.data).toEqual(first.body.data);

    // base64 from the cache decodes to the float reply's numbers, as float32.
    const b64 = await openai(s, ['two fish'], { encoding_format: 'base64' });
    expect(upstreamCalls(s.emu)).toHaveLength(0);
    const bytes = Buffer.from(b64.body.data[0]!.embedding as string, 'base64');
    const f32 = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
    expect(Array.from(f32)).toEqual((first.body.data[1]!.embedding as number[]).map(Math.fround));
  });

  it('sends only the new texts of a partly known request and bills only them', async () => {
    await openai(s, ['red', 'green']);
    s.emu.clearReceived();
    const mixed = await openai(s, ['green', 'blue', 'red', 'blue']);
    expect(sentTexts(s)).toEqual([['blue']]);
    expect(mixed.res.headers).toMatchObject({
      'x-cache': 'partial',
      'x-cache-hits': '2',
      'x-cache-misses': '2',
    });
    expect(mixed.body.data.map((d) => d.index)).toEqual([0, 1, 2, 3]);
    expect(mixed.body.data[1]!.embedding).toEqual(mixed.body.data[3]!.embedding);
    s.emu.clearReceived();
    const alone = await s.app.inject({
      method: 'POST',
      url: '/v1/embeddings',
      headers: auth(),
      payload: { model: 'text-embedding-v4', input: ['blue'], dimensions: 256 },
    });
    expect(alone.headers['x-cache']).toBe('hit');
    const fresh = await openai(s, ['blue'], { dimensions: 512 });
    expect(fresh.res.headers['x-cache']).toBe('miss');
    expect(mixed.body.usage.total_tokens).toBeGreaterThan(0);
    expect(mixed.body.usage.total_tokens).toBe(fresh.body.usage.total_tokens);
  });

  it('keeps callers apart under the default scope (caller)', async () => {
    await openai(s, ['private note'], {}, KEYS.alice);
    s.emu.clearReceived();
    const bob = await openai(s, ['private note'], {}, KEYS.bob);
    expect(bob.res.headers['x-cache']).toBe('miss');
    expect(upstreamCalls(s.emu)).toHaveLength(1);
  });

  it('serves native text (dense and sparse) from the cache with the same output', async () => {
    const payload = {
      model: 'text-embedding-v4',
      input: { texts: ['native one', 'native two'] },
      parameters: { dimension: 128, output_type: 'dense&sparse' },
    };
    const first = await s.app.inject({ method: 'POST', url: NATIVE_TEXT, headers: auth(), payload });
    s.emu.clearReceived();
    const again = await s.app.inject({ method: 'POST', url: NATIVE_TEXT, headers: auth(), payload });
    expect(again.statusCode).toBe(200);
    expect(upstreamCalls(s.emu)).toHaveLength(0);
    expect(again.headers['x-cache']).toBe('hit');
    const out = (b: string) => b.slice(0, b.indexOf('"usage"'));
    expect(out(again.body)).toBe(out(first.body));
    expect(again.json<{ usage: { total_tokens: number } }>().usage.total_tokens).toBe(0);
  });

  it('serves native multimodal items from the cache with the same output', async () => {
    const payload = (contents: Record<string, unknown>[]) => ({
      model: 'tongyi-embedding-vision-plus',
      input: { contents },
    });
    const a = { text: 'a red bicycle' };
    const b = { text: 'a blue boat' };
    await s.app.inject({ method: 'POST', url: NATIVE_MM, headers: auth(), payload: payload([a]) });
    s.emu.clearReceived();
    const mixed = await s.app.inject({
      method: 'POST',
      url: NATIVE_MM,
      headers: auth(),
      payload: payload([b, a]),
    });
    expect(mixed.statusCode).toBe(200);
    expect(mixed.headers['x-cache']).toBe('partial');
    expect(upstreamCalls(s.emu)).toHaveLength(1);
    const direct = await s.app.inject({
      method: 'POST',
      url: NATIVE_MM,
      headers: auth(KEYS.bob),
      payload: payload([b, a]),
    });
    expect(direct.headers['x-cache']).toBe('miss');
    expect(mixed.json<{ output: unknown }>().output).toEqual(direct.json<{ output: unknown }>().output);
  });

  it('stores nothing when the upstream call fails', async () => {
    s.emu.addFault({ status: 400, times: 1 });
    const failed = await s.app.inject({
      method: 'POST',
      url: '/v1/embeddings',
      headers: auth(),
      payload: { model: 'text-embedding-v4', input: ['doomed'], dimensions: 256 },
    });
    expect(failed.statusCode).toBe(400);
    const retry = await openai(s, ['doomed']);
    expect(retry.res.headers['x-cache']).toBe('miss');
    expect(upstreamCalls(s.emu)).toHaveLength(2);
  });
});

describe('embedding cache metrics', () => {
  it('counts hits and misses per item in dsgw_cache_lookups_total', async () => {
    const s = await startStack({ env: { EMBEDDING_CACHE: 'on', METRICS_PORT: '0' } });
    try {
      await openai(s, ['metric a', 'metric b']);
      await openai(s, ['metric a', 'metric c', 'metric b']);
      const url = s.app.gw.metrics.url;
      expect(url).toBeDefined();
      const text = await (await fetch(url!)).text();
      expect(text).toMatch(/dsgw_cache_lookups_total\{result="hit"\} 2\n/);
      expect(text).toMatch(/dsgw_cache_lookups_total\{result="miss"\} 3\n/);
    } finally {
      await s.close();
    }
  });
});

describe('embedding cache off', () => {
  it('sets no x-cache header and always calls upstream', async () => {
    const s = await startStack({ env: { EMBEDDING_CACHE: 'off' } });
    try {
      await openai(s, ['same']);
      const again = await openai(s, ['same']);
      expect(again.res.headers['x-cache']).toBeUndefined();
      expect(upstreamCalls(s.emu)).toHaveLength(2);
    } finally {
      await s.close();
    }
  });
});

const redisUrl = inject('redisUrl');
describe.skipIf(!requireRedis(redisUrl, 'the embedding cache shared by replicas'))(
  'replicas sharing Redis',
  () => {
    it('serves on one replica what another paid for', async () => {
      const env = {
        EMBEDDING_CACHE: 'on',
        EMBEDDING_CACHE_SCOPE: 'shared',
        REDIS_URL: redisUrl,
        EMBEDDING_CACHE_KEY_PREFIX: uniquePrefix('gw'),
      };
      const one = await startStack({ env });
      const two = await startStack({ env });
      try {
        const first = await openai(one, ['shared across replicas', 'second text']);
        // Stores are fire and forget: wait for them to land before asking the other replica.
        await one.app.gw.cache!.idle();
        const other = await openai(two, ['shared across replicas', 'second text'], {}, KEYS.bob);
        expect(other.res.headers['x-cache']).toBe('hit');
        expect(upstreamCalls(two.emu)).toHaveLength(0);
        expect(other.body.data).toEqual(first.body.data);
        expect(two.app.gw.cache!.stats()).toMatchObject({ redisHits: 2, renders: 2 });
      } finally {
        await one.close();
        await two.close();
      }
    });
  },
);
