/**
 * Embedding replies are written as Buffer parts (src/http/parts-body.ts): above 64 KB as one corked writev with
 * an exact Content-Length, below it joined. Over a real port: the bytes arrive whole, the length is exact (no
 * chunked encoding), the headers every reply gets are there, and the float vectors are DashScope's own bytes.
 */
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { auth, UPSTREAM_KEY, useStack } from '../helpers.js';

const NATIVE = '/api/v1/services/embeddings/text-embedding/text-embedding';

/** The `[...]` text of each `"embedding":` value, in order of appearance. */
function embeddingTexts(body: string): string[] {
  const out: string[] = [];
  for (let at = body.indexOf('"embedding":['); at >= 0; at = body.indexOf('"embedding":[', at + 1)) {
    const start = at + '"embedding":'.length;
    out.push(body.slice(start, body.indexOf(']', start) + 1));
  }
  return out;
}

describe('embedding replies sent as parts', () => {
  const s = useStack();
  const texts = Array.from({ length: 10 }, (_, i) => `parts ${i}`);
  let listening: Promise<string> | undefined;
  const url = (): Promise<string> => {
    listening ??= s.listen();
    return listening;
  };

  it('a 10 × 1,024 float reply (over 64 KB) arrives whole with an exact Content-Length and DashScope’s bytes', async () => {
    const base = await url();
    const res = await request(`${base}/v1/embeddings`, {
      method: 'POST',
      headers: { ...auth(), 'content-type': 'application/json', 'x-request-id': 'parts-big' },
      body: JSON.stringify({ model: 'text-embedding-v4', input: texts, dimensions: 1024 }),
    });
    const body = Buffer.from(await res.body.arrayBuffer());
    expect(res.statusCode).toBe(200);
    expect(body.length).toBeGreaterThan(64 * 1024);
    expect(res.headers['content-length']).toBe(String(body.length));
    expect(res.headers['transfer-encoding']).toBeUndefined();
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.headers['x-request-id']).toBe('parts-big');
    const json = JSON.parse(body.toString('utf8')) as { data: { index: number; embedding: number[] }[] };
    expect(json.data.map((d) => d.index)).toEqual(texts.map((_, i) => i));
    for (const d of json.data) expect(d.embedding).toHaveLength(1024);

    // The same texts straight from the emulator: each vector's text is passed on byte for byte.
    const direct = await request(`${s.emu.url}${NATIVE}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${UPSTREAM_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'text-embedding-v4', input: { texts }, parameters: { dimension: 1024 } }),
    });
    const upstream = await direct.body.text();
    expect(direct.statusCode).toBe(200);
    expect(embeddingTexts(body.toString('utf8'))).toEqual(embeddingTexts(upstream));
  });

  it('a small reply is joined and still carries an exact Content-Length', async () => {
    const base = await url();
    const res = await request(`${base}/v1/embeddings`, {
      method: 'POST',
      headers: { ...auth(), 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'text-embedding-v4', input: 'one', dimensions: 64 }),
    });
    const body = Buffer.from(await res.body.arrayBuffer());
    expect(res.statusCode).toBe(200);
    expect(body.length).toBeLessThan(64 * 1024);
    expect(res.headers['content-length']).toBe(String(body.length));
    expect(JSON.parse(body.toString('utf8')).data[0].embedding).toHaveLength(64);
  });
});
