/**
 * The reply builders splice scanned byte ranges instead of re-serialising numbers: renderOpenAIEmbeddings
 * (float: the upstream's bytes exactly; base64: little-endian float32 that decodes to
 * `new Float32Array(JSON.parse(span))`) and textResultToNative (the upstream body as is, or a merged body with
 * items re-indexed). Inputs are hand-written upstream replies run through scanEmbeddingReply.
 */
import { describe, expect, it } from 'vitest';
import type { TextEmbeddingResult } from '../../src/embeddings/text-pipeline.js';
import { joinParts } from '../../src/http/parts-body.js';
import { textResultToNative } from '../../src/translate/native-text-embedding.js';
import { float32Base64, renderOpenAIEmbeddings, type VectorRef } from '../../src/translate/openai-render.js';
import { scanEmbeddingReply } from '../../src/upstream/embedding-scan.js';

// Deliberately odd but valid number spellings and layout: the float output must carry them byte for byte.
const REPLY = `{"output":{"embeddings":[
  {"text_index":1,"embedding":[ 1.0E+0 , -0.000 ,3.4028234663852886e38]},
  {"embedding":[0.5,-2,1e-7,  0.30000001192092896],"text_index":0,"sparse_embedding":[{"index":3,"value":0.25,"token":"风\\"x"}]}
]},"usage":{"total_tokens":9},"request_id":"up-1"}`;

interface OpenAIReply {
  object: string;
  data: { object: string; index: number; embedding: number[] | string }[];
  model: string;
  usage: { prompt_tokens: number; total_tokens: number };
}

const spanText = (ref: VectorRef): string => ref.buf.toString('utf8', ref.span.start, ref.span.end);

function refs(decode: boolean): VectorRef[] {
  const buf = Buffer.from(REPLY);
  const r = scanEmbeddingReply(buf, { decode });
  // Upstream order is [1, 0]; the caller's order is by index.
  return [...r.items]
    .sort((a, b) => a.index - b.index)
    .map((it) => ({ buf, span: it.embedding!, values: it.values }));
}

describe('float32Base64', () => {
  it('is standard base64 of little-endian float32', () => {
    expect(float32Base64(new Float32Array([1, -2, 0.5]))).toBe('AACAPwAAAMAAAAA/');
    expect(float32Base64(new Float32Array(0))).toBe('');
  });

  it('encodes only the view, not the whole underlying buffer', () => {
    const all = new Float32Array([9, 1, -2, 0.5, 9]);
    expect(float32Base64(all.subarray(1, 4))).toBe('AACAPwAAAMAAAAA/');
  });

  it('round-trips any float32 bit pattern, -0, subnormals and the extremes', () => {
    const f = new Float32Array([
      -0,
      1.401298464324817e-45,
      3.4028234663852886e38,
      -3.4028234663852886e38,
      Math.PI,
    ]);
    const b = Buffer.from(float32Base64(f), 'base64');
    const back = new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
    expect(Array.from(back)).toEqual(Array.from(f));
    expect(Object.is(back[0], -0)).toBe(true);
  });
});

describe('renderOpenAIEmbeddings', () => {
  it('float: valid JSON whose embeddings are the upstream bytes exactly, indexed in the given order', () => {
    const vectors = refs(false);
    const out = joinParts(renderOpenAIEmbeddings('text-embedding-v4 "x"', vectors, 9, 'float'));
    const text = out.toString('utf8');
    const json = JSON.parse(text) as OpenAIReply;
    expect(json.object).toBe('list');
    expect(json.model).toBe('text-embedding-v4 "x"');
    expect(json.usage).toEqual({ prompt_tokens: 9, total_tokens: 9 });
    expect(json.data.map((d) => [d.object, d.index])).toEqual([
      ['embedding', 0],
      ['embedding', 1],
    ]);
    expect(json.data[0]!.embedding).toEqual([0.5, -2, 1e-7, 0.30000001192092896]);
    expect(json.data[1]!.embedding).toEqual([1, -0, 3.4028234663852886e38]);
    // Byte for byte: the odd spellings are kept, not re-serialised.
    expect(text).toContain(`"index":0,"embedding":${spanText(vectors[0]!)}}`);
    expect(text).toContain(`"index":1,"embedding":${spanText(vectors[1]!)}}`);
    expect(spanText(vectors[1]!)).toBe('[ 1.0E+0 , -0.000 ,3.4028234663852886e38]');
  });

  it('base64: each embedding decodes to new Float32Array(JSON.parse(span)), with or without decoded values', () => {
    for (const decode of [false, true]) {
      const vectors = refs(decode);
      expect(vectors.every((v) => (v.values !== undefined) === decode)).toBe(true);
      const json = JSON.parse(
        joinParts(renderOpenAIEmbeddings('m', vectors, 9, 'base64')).toString('utf8'),
      ) as OpenAIReply;
      json.data.forEach((d, i) => {
        expect(typeof d.embedding).toBe('string');
        const b = Buffer.from(d.embedding as string, 'base64');
        const got = new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
        const want = new Float32Array(JSON.parse(spanText(vectors[i]!)) as number[]);
        expect(got.length).toBe(want.length);
        for (let k = 0; k < want.length; k++) expect(Object.is(got[k], want[k]), `${i}[${k}]`).toBe(true);
      });
    }
  });

  it('renders an empty list and a zero-length vector', () => {
    expect(JSON.parse(joinParts(renderOpenAIEmbeddings('m', [], 0, 'float')).toString())).toEqual({
      object: 'list',
      data: [],
      model: 'm',
      usage: { prompt_tokens: 0, total_tokens: 0 },
    });
    const buf = Buffer.from('{"output":{"embedding":[]}}');
    const fused = scanEmbeddingReply(buf).fused!;
    for (const enc of ['float', 'base64'] as const) {
      const json = JSON.parse(
        joinParts(renderOpenAIEmbeddings('m', [{ buf, span: fused.embedding }], 1, enc)).toString(),
      ) as OpenAIReply;
      expect(json.data[0]!.embedding).toEqual(enc === 'float' ? [] : '');
    }
  });
});

describe('textResultToNative', () => {
  const result = (over: Partial<TextEmbeddingResult>): TextEmbeddingResult => ({
    items: [],
    totalTokens: 0,
    upstreamRequestIds: [],
    passthrough: undefined,
    ...over,
  });

  it('returns the upstream body itself when one in-order call served the request', () => {
    const body = Buffer.from(REPLY);
    expect(joinParts(textResultToNative(result({ passthrough: body }), 'gw-1'))).toBe(body);
  });

  it('merges items from several upstream bodies: valid JSON, re-indexed, vectors and extras kept byte for byte', () => {
    const a = Buffer.from(REPLY);
    const b = Buffer.from(
      '{"output":{"embeddings":[{"text_index":0,"sparse_embedding":[{"index":1,"value":-0.5}]},{"text_index":1,"embedding":[7e0]}]},"usage":{"total_tokens":4},"request_id":"up-2"}',
    );
    const sa = scanEmbeddingReply(a).items;
    const sb = scanEmbeddingReply(b).items;
    // Caller order: a's index 0, a's index 1, then b's two (one of them sparse-only).
    const items = [
      { buf: a, item: sa.find((i) => i.index === 0)! },
      { buf: a, item: sa.find((i) => i.index === 1)! },
      { buf: b, item: sb[0]! },
      { buf: b, item: sb[1]! },
    ];
    const out = joinParts(
      textResultToNative(result({ items, totalTokens: 13, upstreamRequestIds: ['up-1', 'up-2'] }), 'gw-"1"'),
    );
    const text = out.toString('utf8');
    const json = JSON.parse(text) as {
      output: { embeddings: Record<string, unknown>[] };
      usage: unknown;
      request_id: string;
    };
    expect(json.usage).toEqual({ total_tokens: 13 });
    expect(json.request_id).toBe('gw-"1"');
    expect(json.output.embeddings.map((e) => e.text_index)).toEqual([0, 1, 2, 3]);
    expect(json.output.embeddings[0]).toEqual({
      embedding: [0.5, -2, 1e-7, 0.30000001192092896],
      sparse_embedding: [{ index: 3, value: 0.25, token: '风"x' }],
      text_index: 0,
    });
    expect(json.output.embeddings[1]).toEqual({ embedding: [1, -0, 3.4028234663852886e38], text_index: 1 });
    expect(json.output.embeddings[2]).toEqual({
      sparse_embedding: [{ index: 1, value: -0.5 }],
      text_index: 2,
    });
    expect(json.output.embeddings[3]).toEqual({ embedding: [7], text_index: 3 });
    expect(text).toContain('"embedding":[ 1.0E+0 , -0.000 ,3.4028234663852886e38],"text_index":1');
    expect(text).toContain('"embedding":[7e0],"text_index":3');
    // The merged body scans as a well-formed upstream reply again.
    expect(scanEmbeddingReply(out).items.map((i) => i.index)).toEqual([0, 1, 2, 3]);
  });

  it('renders an empty merge as valid JSON', () => {
    expect(JSON.parse(joinParts(textResultToNative(result({ totalTokens: 0 }), 'g')).toString())).toEqual({
      output: { embeddings: [] },
      usage: { total_tokens: 0 },
      request_id: 'g',
    });
  });
});
