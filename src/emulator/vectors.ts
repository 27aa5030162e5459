/**
 * Deterministic embeddings for the emulator: the same text and dimension always give the same unit vector, so
 * tests can compute the expected answer themselves. Values are rounded to float32 so a float → base64 → float
 * round trip through the gateway is exact.
 */
import { createHash } from 'node:crypto';

/** xoshiro128** seeded from SHA-256 of the text: fast, deterministic, good enough spread for fake vectors. */
function prng(seedText: string): () => number {
  const h = createHash('sha256').update(seedText).digest();
  let a = h.readUInt32LE(0) | 0;
  let b = h.readUInt32LE(4) | 0;
  let c = h.readUInt32LE(8) | 0;
  let d = h.readUInt32LE(12) | 0;
  return () => {
    const t = b << 9;
    let r = Math.imul(b, 5);
    r = Math.imul((r << 7) | (r >>> 25), 9);
    c ^= a;
    d ^= b;
    b ^= c;
    a ^= d;
    c ^= t;
    d = (d << 11) | (d >>> 21);
    return (r >>> 0) / 4294967296;
  };
}

/** A unit vector of `dim` float32 values derived from `text` (and a `salt` that tells models apart). */
export function vectorFor(text: string, dim: number, salt = ''): number[] {
  const next = prng(`${salt}\u0000${text}`);
  const v = new Array<number>(dim);
  let norm = 0;
  for (let i = 0; i < dim; i++) {
    const x = next() * 2 - 1;
    v[i] = x;
    norm += x * x;
  }
  const scale = 1 / Math.sqrt(norm || 1);
  for (let i = 0; i < dim; i++) v[i] = Math.fround(v[i]! * scale);
  return v;
}

export interface SparseItem {
  index: number;
  value: number;
  token: string;
}

/** Sparse output: one entry per distinct word (or CJK character), with a deterministic id and weight. */
export function sparseFor(text: string): SparseItem[] {
  const tokens = text.toLowerCase().match(/[\p{Script=Han}]|[\p{L}\p{N}]+/gu) ?? [];
  const seen = new Map<string, SparseItem>();
  for (const token of tokens) {
    if (seen.has(token)) continue;
    const h = createHash('sha256').update(token).digest();
    seen.set(token, {
      index: h.readUInt32LE(0) % 250_002,
      value: Math.fround(0.05 + (h[4]! / 255) * 0.95),
      token,
    });
  }
  return [...seen.values()];
}
