/**
 * The scanner's fast paths (digit runs checked four bytes at a time; numbers decoded to float32 without
 * JSON.parse) must give exactly what the plain definitions give: JSON.parse's acceptance, and
 * `new Float32Array(JSON.parse(array))` bit for bit, including -0, decimals that sit on a float32 tie, long
 * mantissas, large exponents, and whitespace anywhere JSON allows it.
 */
import { describe, expect, it } from 'vitest';
import { ScanError, scanEmbeddingReply, spanToFloat32 } from '../../src/upstream/embedding-scan.js';
import { rng } from '../support/rng.js';

/** A float32 tie: the exact midpoint of two adjacent float32 values, printed with 17–20 significant digits. */
function nearTie(rnd: () => number): string {
  const f = new Float32Array([rnd() - 0.5]);
  const bits = new Uint32Array(f.buffer);
  const a = f[0]!;
  bits[0]! += 1;
  return ((a + f[0]!) / 2).toPrecision(17 + Math.floor(rnd() * 4));
}

function numberText(rnd: () => number): string {
  const r = rnd();
  if (r < 0.25) return String(Math.fround((rnd() - 0.5) * 10 ** Math.floor(rnd() * 10 - 6)));
  if (r < 0.4) return String((rnd() - 0.5) * 10 ** Math.floor(rnd() * 60 - 30));
  if (r < 0.5) return Math.fround(rnd() - 0.5).toPrecision(1 + Math.floor(rnd() * 9));
  if (r < 0.75) return nearTie(rnd);
  const digits = Array.from({ length: 1 + Math.floor(rnd() * 28) }, () => Math.floor(rnd() * 10)).join('');
  const exp = rnd() < 0.4 ? `e${rnd() < 0.5 ? '-' : '+'}${Math.floor(rnd() * 60)}` : '';
  return `${rnd() < 0.5 ? '-' : ''}0.${digits}${exp}`;
}

const EDGE = [
  '0',
  '-0',
  '-0.0',
  '0e99',
  '1e400',
  '-1e400',
  '1e-400',
  '3.4028235677973366e38',
  '3.4028236e38',
  '1.401298464324817e-45',
  '7e-46',
  '1.1754943508222875e-38',
  '123456789012345678901234567890',
  '9007199254740993',
  '1e22',
  '1e23',
  '1E-22',
  '1e-23',
];

describe('spanToFloat32', () => {
  it('matches new Float32Array(JSON.parse(...)) bit for bit on edge cases and 2,000 random arrays', () => {
    const rnd = rng(20240611);
    const arrays = [EDGE];
    for (let i = 0; i < 2000; i++)
      arrays.push(Array.from({ length: 1 + Math.floor(rnd() * 40) }, () => numberText(rnd)));
    for (const nums of arrays) {
      const text = `[ ${nums.join(rnd() < 0.5 ? ',' : ' ,\n\t')} ]`;
      const buf = Buffer.from(`{"e":${text}}`);
      const got = spanToFloat32(buf, { start: 5, end: 5 + text.length });
      const want = new Float32Array(JSON.parse(text) as number[]);
      expect(got.length).toBe(want.length);
      for (let k = 0; k < want.length; k++) {
        if (!Object.is(got[k], want[k])) expect(`${nums[k]} → ${got[k]}`).toBe(`${nums[k]} → ${want[k]}`);
      }
    }
  });
});

describe('scanEmbeddingReply number arrays', () => {
  const doc = (arr: string): string => `{"output":{"embeddings":[{"embedding":${arr},"text_index":0}]}}`;

  it('accepts exactly what JSON.parse accepts as float32 numbers, on 3,000 mutated arrays', () => {
    const rnd = rng(7);
    const noise = ['0', '5', '9', '-', '+', '.', 'e', 'E', ',', ' ', '\n', ']', '[', 'x'];
    for (let i = 0; i < 3000; i++) {
      let arr = `[${Array.from({ length: Math.floor(rnd() * 6) }, () => numberText(rnd)).join(', ')}]`;
      for (let k = Math.floor(rnd() * 3); k > 0; k--) {
        const at = Math.floor(rnd() * arr.length);
        const ch = noise[Math.floor(rnd() * noise.length)]!;
        arr = rnd() < 0.5 ? arr.slice(0, at) + ch + arr.slice(at + 1) : arr.slice(0, at) + ch + arr.slice(at);
      }
      const text = doc(arr);
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      const embedding = (parsed as { output?: { embeddings?: [{ embedding?: unknown }] } } | undefined)
        ?.output?.embeddings?.[0]?.embedding;
      // ...and whose numbers are all finite as float32 (1e400 and the like are refused).
      const numeric =
        Array.isArray(embedding) &&
        embedding.every((x) => typeof x === 'number' && Number.isFinite(Math.fround(x)));
      if (numeric) {
        expect(scanEmbeddingReply(Buffer.from(text)).items[0]!.dims).toBe((embedding as number[]).length);
      } else {
        expect(() => scanEmbeddingReply(Buffer.from(text)), text).toThrow(ScanError);
      }
    }
  });

  it('reports a bad byte inside a long digit run as the careful scanner does', () => {
    const text = doc('[0.12345678901234567,0.1234567890123x4567]');
    expect(() => scanEmbeddingReply(Buffer.from(text))).toThrow("expected ',' or ']' in embedding");
  });
});
