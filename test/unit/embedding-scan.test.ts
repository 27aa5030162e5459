/**
 * The byte scanner must agree with JSON.parse on every well-formed reply and refuse everything else, since
 * its spans are spliced straight into what callers receive.
 */
import { describe, expect, it } from 'vitest';
import { ScanError, scanEmbeddingReply, spanToFloat32 } from '../../src/upstream/embedding-scan.js';

const slice = (buf: Buffer, span: { start: number; end: number }): unknown =>
  JSON.parse(buf.toString('utf8', span.start, span.end));

function randomReply(seed: number): { json: Record<string, unknown>; text: string } {
  let x = seed;
  const rnd = (): number => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x / 2147483648;
  };
  const n = 1 + Math.floor(rnd() * 6);
  const dim = 1 + Math.floor(rnd() * 40);
  const order = Array.from({ length: n }, (_, i) => i).sort(() => rnd() - 0.5);
  const embeddings = order.map((i) => {
    const item: Record<string, unknown> = {
      embedding: Array.from({ length: dim }, () => (rnd() - 0.5) * 10 ** Math.floor(rnd() * 8 - 4)),
      text_index: i,
    };
    if (rnd() < 0.5) item.sparse_embedding = [{ index: 7, value: 0.5, token: '风"\\n' }];
    return item;
  });
  const json = { output: { embeddings }, usage: { total_tokens: 26 }, request_id: `rid-${seed}` };
  const text = rnd() < 0.5 ? JSON.stringify(json) : JSON.stringify(json, null, rnd() < 0.5 ? 2 : '\t');
  return { json, text };
}

describe('scanEmbeddingReply', () => {
  it('agrees with JSON.parse on 300 random replies (key order, whitespace, escapes, exponents)', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const { json, text } = randomReply(seed);
      const buf = Buffer.from(text);
      const r = scanEmbeddingReply(buf);
      const items = (json.output as { embeddings: Record<string, unknown>[] }).embeddings;
      expect(r.requestId).toBe(`rid-${seed}`);
      expect(r.usage).toEqual({ total_tokens: 26 });
      expect(r.items).toHaveLength(items.length);
      r.items.forEach((it, k) => {
        const want = items[k]!;
        expect(it.index).toBe(want.text_index);
        expect(slice(buf, it.embedding!)).toEqual(want.embedding);
        expect(it.dims).toBe((want.embedding as number[]).length);
        expect(Array.from(spanToFloat32(buf, it.embedding!))).toEqual(
          Array.from(new Float32Array(want.embedding as number[])),
        );
        const extras = Object.fromEntries(it.extras.map(([k2, span]) => [k2, slice(buf, span)]));
        expect(extras.sparse_embedding).toEqual(want.sparse_embedding);
      });
    }
  });

  it("reads ONE-PEACE's single fused vector and multimodal `index`", () => {
    const buf = Buffer.from(
      JSON.stringify({
        output: { embedding: [0.5, -0.25], embeddings: [{ index: 0, embedding: [1], type: 'image' }] },
        usage: { total_usage: 3 },
        request_id: 'x',
      }),
    );
    const r = scanEmbeddingReply(buf);
    expect(slice(buf, r.fused!.embedding)).toEqual([0.5, -0.25]);
    expect(r.fused!.dims).toBe(2);
    expect(r.items[0]!.index).toBe(0);
    expect(r.items[0]!.extras.map(([k]) => k)).toEqual(['type']);
  });

  it.each([
    ['truncated', '{"output":{"embeddings":[{"embedding":[0.1,'],
    ['trailing garbage', '{"output":{"embeddings":[]}} x'],
    ['a leading zero', '{"output":{"embeddings":[{"embedding":[01],"text_index":0}]}}'],
    ['a bare dot', '{"output":{"embeddings":[{"embedding":[1.],"text_index":0}]}}'],
    ['NaN', '{"output":{"embeddings":[{"embedding":[NaN],"text_index":0}]}}'],
    ['a string in a vector', '{"output":{"embeddings":[{"embedding":["1"],"text_index":0}]}}'],
    ['a negative index', '{"output":{"embeddings":[{"embedding":[1],"text_index":-1}]}}'],
    ['no output', '{"code":"InvalidParameter","message":"x"}'],
    ['a control character in a string', '{"output":{},"request_id":"a\u0001"}'],
    ['not an object', '[1,2,3]'],
    ['empty', ''],
  ])('refuses %s', (_name, text) => {
    expect(() => scanEmbeddingReply(Buffer.from(text))).toThrow(ScanError);
  });
});
