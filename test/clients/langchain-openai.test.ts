/**
 * `@langchain/openai` OpenAIEmbeddings (1.5.8, with the openai 6.49.0 SDK underneath) against the gateway.
 * LangChain's defaults are the hard case for a DashScope gateway: batches of 512 texts (DashScope takes 10 per
 * call for v3/v4), two batches in flight, base64 asked for by the SDK, vectors read by position.
 */
import { OpenAIEmbeddings } from '@langchain/openai';
import { beforeAll, describe, expect, it } from 'vitest';
import { vectorFor } from '../../src/emulator/vectors.js';
import { KEYS, upstreamCalls, useStack } from '../helpers.js';

const MODEL = 'text-embedding-v4';

describe('LangChain OpenAIEmbeddings → /v1/embeddings', () => {
  const s = useStack();
  let base: string;

  beforeAll(async () => {
    base = await s.listen();
  });

  it('embedDocuments of 600 texts with default batchSize 512 returns 600 exact vectors in input order', async () => {
    const emb = new OpenAIEmbeddings({
      apiKey: KEYS.alice,
      model: MODEL,
      configuration: { baseURL: `${base}/v1` },
    });
    expect(emb.batchSize).toBe(512);
    expect(emb.encodingFormat).toBeUndefined();
    // Distinct texts, each with a newline that LangChain's default stripNewLines turns into a space.
    const texts = Array.from({ length: 600 }, (_, i) => `document ${i}\nabout topic ${i % 37}`);
    const vectors = await emb.embedDocuments(texts);
    expect(vectors).toHaveLength(600);
    vectors.forEach((v, i) => {
      expect(v).toEqual(vectorFor(texts[i]!.replace(/\n/g, ' '), 1024, MODEL));
    });

    // LangChain sent two requests (512 + 88); the gateway split each into calls of at most 10 texts:
    // ceil(512 / 10) + ceil(88 / 10) = 52 + 9 = 61 upstream calls, together carrying all 600 texts once.
    const sizes = upstreamCalls(s.emu).map(
      (c) => (JSON.parse(c.body) as { input: { texts: string[] } }).input.texts.length,
    );
    expect(sizes).toHaveLength(61);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(10);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(600);
    const seen = upstreamCalls(s.emu).flatMap(
      (c) => (JSON.parse(c.body) as { input: { texts: string[] } }).input.texts,
    );
    expect(new Set(seen).size).toBe(600);
  });

  it('embedQuery sends a bare string and gets the exact vector (with dimensions passed through)', async () => {
    const emb = new OpenAIEmbeddings({
      apiKey: KEYS.alice,
      model: MODEL,
      dimensions: 128,
      configuration: { baseURL: `${base}/v1` },
    });
    const v = await emb.embedQuery('what is\na gateway?');
    expect(v).toEqual(vectorFor('what is a gateway?', 128, MODEL));
    const calls = upstreamCalls(s.emu);
    expect(calls).toHaveLength(1);
    expect(JSON.parse(calls[0]!.body)).toEqual({
      model: MODEL,
      input: { texts: ['what is a gateway?'] },
      parameters: { dimension: 128 },
    });
  });

  it('a bad item fails fast with a 400 naming it, without retries and without any upstream call', async () => {
    const emb = new OpenAIEmbeddings({
      apiKey: KEYS.alice,
      model: MODEL,
      maxRetries: 0,
      configuration: { baseURL: `${base}/v1` },
    });
    const err = (await emb.embedDocuments(['fine', '', 'also fine']).catch((e) => e)) as {
      status?: number;
      message: string;
    };
    expect(err).toBeInstanceOf(Error);
    expect(err.status).toBe(400);
    expect(err.message).toContain('input[1]: must not be empty');
    expect(upstreamCalls(s.emu)).toEqual([]);
  });

  it('retries an upstream 429 because the gateway 429 carries retry-after (LangChain needs it)', async () => {
    s.emu.addFault({ status: 429, headers: { 'retry-after': '1' }, times: 1 });
    const emb = new OpenAIEmbeddings({
      apiKey: KEYS.alice,
      model: MODEL,
      dimensions: 64,
      maxRetries: 1,
      configuration: { baseURL: `${base}/v1` },
    });
    const v = await emb.embedQuery('throttled once');
    expect(v).toEqual(vectorFor('throttled once', 64, MODEL));
    expect(upstreamCalls(s.emu)).toHaveLength(2);
  });
});
