/**
 * Vercel AI SDK (`ai` 6 + `@ai-sdk/openai-compatible` 2) against /v1/embeddings. This client always sends
 * `encoding_format: "float"`, validates `data[].embedding` as number[] and `usage.prompt_tokens` as a number,
 * and sends up to 2048 values in one request, so the gateway must split and keep order.
 */
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { APICallError, embed, embedMany } from 'ai';
import { beforeAll, describe, expect, it } from 'vitest';
import { vectorFor } from '../../src/emulator/vectors.js';
import { KEYS, upstreamCalls, useStack } from '../helpers.js';

const MODEL = 'text-embedding-v4';

describe('AI SDK createOpenAICompatible → /v1/embeddings', () => {
  const s = useStack();
  let gw: ReturnType<typeof createOpenAICompatible>;

  beforeAll(async () => {
    const base = await s.listen();
    gw = createOpenAICompatible({ name: 'gateway', baseURL: `${base}/v1`, apiKey: KEYS.alice });
  });

  it('embedMany of 25 values in one request returns 25 exact vectors in order, with numeric usage', async () => {
    const values = Array.from({ length: 25 }, (_, i) => `value number ${i}`);
    const { embeddings, usage, responses } = await embedMany({ model: gw.embeddingModel(MODEL), values });
    expect(embeddings).toHaveLength(25);
    embeddings.forEach((v, i) => {
      expect(v).toEqual(vectorFor(values[i]!, 1024, MODEL));
    });
    expect(typeof usage.tokens).toBe('number');
    expect(usage.tokens).toBeGreaterThan(0);
    // One client request (maxEmbeddingsPerCall 2048), split by the gateway into 10 + 10 + 5.
    expect(responses).toHaveLength(1);
    expect(
      upstreamCalls(s.emu).map(
        (c) => (JSON.parse(c.body) as { input: { texts: string[] } }).input.texts.length,
      ),
    ).toEqual([10, 10, 5]);
  });

  it('embed of one value with dimensions via providerOptions gives the exact vector', async () => {
    const { embedding, usage } = await embed({
      model: gw.embeddingModel(MODEL),
      value: 'a single value',
      providerOptions: { gateway: { dimensions: 512 } },
    });
    expect(embedding).toEqual(vectorFor('a single value', 512, MODEL));
    expect(usage.tokens).toBeGreaterThan(0);
  });

  it('an unsupported dimension is an APICallError carrying the gateway message, not retried', async () => {
    const err = await embed({
      model: gw.embeddingModel(MODEL),
      value: 'x',
      providerOptions: { gateway: { dimensions: 100 } },
    }).catch((e: unknown) => e);
    expect(APICallError.isInstance(err)).toBe(true);
    const e = err as APICallError;
    expect(e.statusCode).toBe(400);
    expect(e.isRetryable).toBe(false);
    expect(e.message).toMatch(/^dimensions: text-embedding-v4 supports .*; got 100$/);
    expect(upstreamCalls(s.emu)).toEqual([]);
  });
});
