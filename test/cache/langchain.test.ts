/**
 * The client case: LangChain's OpenAIEmbeddings (base64 under the hood, batches of 512, two in flight)
 * embeds 1,000 documents twice through the gateway with the cache on; the second run costs no upstream call and
 * gives the same vectors.
 */
import { OpenAIEmbeddings } from '@langchain/openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { vectorFor } from '../../src/emulator/vectors.js';
import { KEYS, type Stack, startStack, upstreamCalls } from '../helpers.js';

const MODEL = 'text-embedding-v4';

describe('LangChain embedDocuments twice with the cache on', () => {
  let s: Stack;
  let base: string;
  beforeAll(async () => {
    s = await startStack({ env: { EMBEDDING_CACHE: 'on' } });
    base = await s.listen();
  });
  afterAll(async () => s.close());

  it('pays for 1,000 documents once', async () => {
    const emb = new OpenAIEmbeddings({
      apiKey: KEYS.alice,
      model: MODEL,
      configuration: { baseURL: `${base}/v1` },
    });
    const texts = Array.from({ length: 1000 }, (_, i) => `cached document ${i} on topic ${i % 41}`);
    const first = await emb.embedDocuments(texts);
    const paid = upstreamCalls(s.emu).length;
    // 512 + 488 texts, at most 10 per upstream call.
    expect(paid).toBe(52 + 49);
    s.emu.clearReceived();

    const second = await emb.embedDocuments(texts);
    expect(upstreamCalls(s.emu)).toHaveLength(0);
    expect(second).toEqual(first);
    expect(second[999]).toEqual(vectorFor(texts[999]!, 1024, MODEL));
    expect(s.app.gw.cache!.stats()).toMatchObject({ memoryHits: 1000, misses: 1000 });
  });
});
