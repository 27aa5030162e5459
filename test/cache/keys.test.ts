/**
 * Key separation: a cached vector is never served for a request that could have produced a different one.
 * Every field that shapes a vector changes the key; spellings that cannot change it (parameter order, line
 * breaks inside base64) do not.
 */
import { describe, expect, it } from 'vitest';
import {
  canonicalJson,
  type KeyScope,
  multimodalKeys,
  type TextKeyJob,
  textKeys,
} from '../../src/cache/keys.js';

const shared: KeyScope = { scope: 'shared', caller: 'alice' };
const base: TextKeyJob = {
  model: { name: 'text-embedding-v4' },
  parameters: { dimension: 1024 },
  dimension: 1024,
  outputType: 'dense',
};
const key = (job: TextKeyJob, text = 'hello', scope: KeyScope = shared): string =>
  textKeys(scope, job, [text])[0]!;

describe('text keys', () => {
  it('are stable and differ per text', () => {
    expect(key(base)).toBe(key(base));
    expect(key(base)).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(key(base, 'hello')).not.toBe(key(base, 'hello '));
    const ks = textKeys(shared, base, ['a', 'b', 'a']);
    expect(ks[0]).toBe(ks[2]);
    expect(ks[0]).not.toBe(ks[1]);
  });

  it('change with every field that changes a vector', () => {
    const variants: TextKeyJob[] = [
      { ...base, model: { name: 'text-embedding-v3' } },
      { ...base, dimension: 512, parameters: { dimension: 512 } },
      { ...base, parameters: { dimension: 1024, text_type: 'query' } },
      { ...base, parameters: { dimension: 1024, text_type: 'document' } },
      { ...base, outputType: 'dense&sparse' },
      { ...base, outputType: 'sparse' },
      { ...base, parameters: { dimension: 1024, instruct: 'Given a query, retrieve passages' } },
      { ...base, parameters: { dimension: 1024, instruct: '' } },
      { ...base, parameters: { dimension: 1024, some_future_knob: 3 } },
    ];
    const all = new Set([key(base), ...variants.map((v) => key(v))]);
    expect(all.size).toBe(variants.length + 1);
  });

  it('differ per caller under the caller scope, and not under the shared scope', () => {
    const a: KeyScope = { scope: 'caller', caller: 'alice' };
    const b: KeyScope = { scope: 'caller', caller: 'bob' };
    expect(key(base, 'x', a)).not.toBe(key(base, 'x', b));
    expect(key(base, 'x', a)).not.toBe(key(base, 'x', shared));
    expect(key(base, 'x', shared)).toBe(key(base, 'x', { scope: 'shared', caller: 'bob' }));
  });

  it('cannot be confused by moving bytes between fields (length-prefixed preimage)', () => {
    // Same concatenation of instruct + text, split differently.
    const j1 = { ...base, parameters: { dimension: 1024, instruct: 'ab' } };
    const j2 = { ...base, parameters: { dimension: 1024, instruct: 'a' } };
    expect(key(j1, 'c')).not.toBe(key(j2, 'bc'));
    // A caller name that looks like the start of another field.
    expect(key(base, 'x', { scope: 'caller', caller: 'a' })).not.toBe(
      key(base, 'x', { scope: 'caller', caller: 'a\u0000' }),
    );
  });

  it('ignore the order of passed-on parameters', () => {
    const j1 = { ...base, parameters: { dimension: 1024, x: { b: 1, a: 2 }, y: 1 } };
    const j2 = { ...base, parameters: { y: 1, x: { a: 2, b: 1 }, dimension: 1024 } };
    expect(key(j1)).toBe(key(j2));
    expect(canonicalJson({ b: [1, { d: 1, c: 2 }], a: null })).toBe('{"a":null,"b":[1,{"c":2,"d":1}]}');
  });
});

const png = (bytes: number[]): string => `data:image/png;base64,${Buffer.from(bytes).toString('base64')}`;
const mm = (contents: Record<string, unknown>[], parameters?: Record<string, unknown>, fused = false) => ({
  model: { name: 'tongyi-embedding-vision-plus' },
  contents,
  parameters,
  dimension: typeof parameters?.dimension === 'number' ? parameters.dimension : undefined,
  fused,
});
const noUrls = { cacheUrls: false };

describe('multimodal keys', () => {
  it('key inline data by its decoded bytes, not its spelling', () => {
    const b64 = Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9]).toString('base64');
    const wrapped = `data:image/png;base64,${b64.slice(0, 4)}\n${b64.slice(4)}`;
    const [k1] = multimodalKeys(shared, mm([{ image: png([1, 2, 3, 4, 5, 6, 7, 8, 9]) }]), noUrls);
    const [k2] = multimodalKeys(shared, mm([{ image: wrapped }]), noUrls);
    const [k3] = multimodalKeys(shared, mm([{ image: png([1, 2, 3, 4, 5, 6, 7, 8, 0]) }]), noUrls);
    expect(k1).toBeDefined();
    expect(k1).toBe(k2);
    expect(k1).not.toBe(k3);
  });

  it('key URLs only when the operator opts in', () => {
    const job = mm([{ image: 'https://example.com/a.png' }, { text: 'hi' }, { video: 'oss://bucket/v.mp4' }]);
    const off = multimodalKeys(shared, job, noUrls);
    expect(off[0]).toBeUndefined();
    expect(off[1]).toBeDefined();
    expect(off[2]).toBeUndefined();
    const on = multimodalKeys(shared, job, { cacheUrls: true });
    expect(on.every((k) => k !== undefined)).toBe(true);
    expect(on[0]).not.toBe(
      multimodalKeys(shared, mm([{ image: 'https://example.com/b.png' }]), { cacheUrls: true })[0],
    );
  });

  it('change with modality, factor and every vector-shaping parameter', () => {
    const item = { text: 'a cat' };
    const keys = [
      multimodalKeys(shared, mm([item]), noUrls)[0],
      multimodalKeys(shared, mm([{ ...item, factor: 2 }]), noUrls)[0],
      multimodalKeys(shared, { ...mm([item]), model: { name: 'qwen3-vl-embedding' } }, noUrls)[0],
      ...[
        { dimension: 512 },
        { fps: 0.5 },
        { res_level: 2 },
        { max_video_frames: 8 },
        { auto_truncation: true },
        { instruct: 'x' },
        { output_type: 'dense' },
        { unknown_knob: 1 },
      ].map((p) => multimodalKeys(shared, mm([item], p), noUrls)[0]),
      multimodalKeys({ scope: 'caller', caller: 'bob' }, mm([item]), noUrls)[0],
    ];
    expect(new Set(keys).size).toBe(keys.length);
    // The same bytes as an image and as a video are different items.
    const data = png([9, 9, 9]);
    expect(multimodalKeys(shared, mm([{ image: data }]), noUrls)[0]).not.toBe(
      multimodalKeys(shared, mm([{ video: data.replace('image/png', 'video/mp4') }]), noUrls)[0],
    );
    expect(multimodalKeys(shared, mm([{ image: data }]), noUrls)[0]).not.toBe(
      multimodalKeys(shared, mm([{ video: data }]), noUrls)[0],
    );
  });

  it('give one key over the whole list for fused output, sensitive to order, factors and membership', () => {
    const a = { text: 'a', factor: 1 };
    const b = { image: png([1, 2, 3]), factor: 2 };
    const fused = (c: Record<string, unknown>[]) =>
      multimodalKeys(shared, mm(c, { enable_fusion: true }, true), noUrls);
    expect(fused([a, b])).toHaveLength(1);
    const all = [
      fused([a, b])[0],
      fused([b, a])[0],
      fused([a, { ...b, factor: 3 }])[0],
      fused([a])[0],
      fused([a, b, a])[0],
      // Per-item keys of the same contents never equal the fused key.
      ...multimodalKeys(shared, mm([a, b], { enable_fusion: true }, false), noUrls),
    ];
    expect(new Set(all).size).toBe(all.length);
    expect(fused([a, { image: 'https://example.com/x.png' }])).toEqual([undefined]);
  });
});
