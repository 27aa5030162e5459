/**
 * `@ai-sdk/alibaba` (1.0.61, with ai 6) against the DashScope-native text-embedding route under /api/v1.
 * It is the one maintained JS client that speaks the native protocol: `input.texts`, `parameters.dimension`
 * (singular) and `parameters.text_type`, 10 values per call, DashScope-shaped errors `{code,message}`.
 */
import { createAlibaba } from '@ai-sdk/alibaba';
import { APICallError, embed, embedMany } from 'ai';
import { beforeAll, describe, expect, it } from 'vitest';
import { vectorFor } from '../../src/emulator/vectors.js';
import { KEYS, upstreamCalls, useStack } from '../helpers.js';

const MODEL = 'text-embedding-v4';

describe('@ai-sdk/alibaba → native /api/v1 text-embedding', () => {
  const s = useStack();
  let ali: ReturnType<typeof createAlibaba>;

  beforeAll(async () => {
    const base = await s.listen();
    ali = createAlibaba({ apiKey: KEYS.alice, embeddingBaseURL: `${base}/api/v1` });
  });

  it('embedMany of 25 values with dimension 64 and textType query returns exact vectors in order', async () => {
    const values = Array.from({ length: 25 }, (_, i) => `query text ${i}`);
    const { embeddings, usage } = await embedMany({
      model: ali.embeddingModel(MODEL),
      values,
      providerOptions: { alibaba: { dimension: 64, textType: 'query' } },
    });
    expect(embeddings).toHaveLength(25);
    embeddings.forEach((v, i) => {
      expect(v).toEqual(vectorFor(values[i]!, 64, MODEL));
    });
    expect(usage.tokens).toBeGreaterThan(0);

    // The client sends 10, 10, 5 one after another; the gateway passes the parameters on as they came.
    const bodies = upstreamCalls(s.emu).map(
      (c) => JSON.parse(c.body) as { input: { texts: string[] }; parameters: Record<string, unknown> },
    );
    expect(bodies.map((b) => b.input.texts.length)).toEqual([10, 10, 5]);
    for (const b of bodies) expect(b.parameters).toEqual({ text_type: 'query', dimension: 64 });
    expect(bodies.flatMap((b) => b.input.texts)).toEqual(values);
  });

  it('embed with no providerOptions (parameters: {}) gets the 1024-value default', async () => {
    const { embedding } = await embed({ model: ali.embeddingModel(MODEL), value: 'plain' });
    expect(embedding).toEqual(vectorFor('plain', 1024, MODEL));
    expect(JSON.parse(upstreamCalls(s.emu)[0]!.body).parameters).toEqual({});
  });

  it('dimension 65 is a DashScope-shaped 400 that surfaces as an AI_APICallError with the gateway message', async () => {
    const err = await embed({
      model: ali.embeddingModel(MODEL),
      value: 'x',
      providerOptions: { alibaba: { dimension: 65 } },
    }).catch((e: unknown) => e);
    expect(APICallError.isInstance(err)).toBe(true);
    const e = err as APICallError;
    expect(e.statusCode).toBe(400);
    expect(e.isRetryable).toBe(false);
    const body = JSON.parse(e.responseBody ?? '{}') as {
      code?: string;
      message?: string;
      request_id?: string;
    };
    expect(body.code).toBe('InvalidParameter');
    expect(body.request_id).toBe(e.responseHeaders?.['x-request-id']);
    expect(e.message).toBe(body.message);
    expect(e.message).toMatch(/^parameters\.dimension: text-embedding-v4 supports .*; got 65$/);
    expect(upstreamCalls(s.emu)).toEqual([]);
  });

  it('an upstream 429 with retry-after: 1 is retried by the client after the gateway 429 and succeeds', async () => {
    s.emu.addFault({ status: 429, headers: { 'retry-after': '1' }, times: 1 });
    const started = Date.now();
    const { embedding } = await embed({
      model: ali.embeddingModel(MODEL),
      value: 'throttled',
      providerOptions: { alibaba: { dimension: 64 } },
    });
    expect(embedding).toEqual(vectorFor('throttled', 64, MODEL));
    expect(upstreamCalls(s.emu)).toHaveLength(2);
    // The client waited at least the gateway's Retry-After (no upper bound: timing on a busy CI box is noisy).
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });
});
