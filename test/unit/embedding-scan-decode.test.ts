/**
 * `scanEmbeddingReply(buf, { decode: true })` validates and decodes each vector in one pass (base64 requests).
 * It must accept exactly what the validating scan accepts, fail with the same ScanError, and give
 * `new Float32Array(JSON.parse(array))` bit for bit: -0, exponents, 17+ digit mantissas, float32 ties, leading
 * zeros, digit runs cut at every offset of a 4-byte word, and whitespace anywhere JSON allows it. Numbers that
 * are not finite as float32 (1e400, 3.5e38, long integers) are refused by both modes alike.
 */
import { describe, expect, it } from 'vitest';
import { joinParts } from '../../src/http/parts-body.js';
import { renderOpenAIEmbeddings } from '../../src/translate/openai-render.js';
import { ScanError, scanEmbeddingReply } from '../../src/upstream/embedding-scan.js';
import { rng } from '../support/rng.js';

const pick = <T>(rnd: () => number, xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
const digitString = (rnd: () => number, len: number): string =>
  Array.from({ length: len }, () => Math.floor(rnd() * 10)).join('');

/** The exact midpoint of two adjacent float32 values (or a hair either side of it), printed with 17–24 digits. */
function nearTie(rnd: () => number): string {
  const f = new Float32Array([(rnd() - 0.5) * 10 ** Math.floor(rnd() * 8 - 4)]);
  const bits = new Uint32Array(f.buffer);
  const a = f[0]!;
  bits[0]! += 1;
  const mid = (a + f[0]!) / 2;
  const nudge = pick(rnd, [0, 0, 1, -1]) * Math.abs(mid) * 2 ** -52;
  return (mid + nudge).toPrecision(17 + Math.floor(rnd() * 8));
}

function numberText(rnd: () => number): string {
  const r = rnd();
  const sign = rnd() < 0.5 ? '-' : '';
  // What DashScope and the emulator send: float32 values printed as the shortest double (up to 17 digits).
  if (r < 0.3) return String(Math.fround((rnd() - 0.5) * 10 ** Math.floor(rnd() * 10 - 6)));
  if (r < 0.4) return String((rnd() - 0.5) * 10 ** Math.floor(rnd() * 90 - 45));
  if (r < 0.6) return nearTie(rnd);
  if (r < 0.7) return Math.fround(rnd() - 0.5).toPrecision(1 + Math.floor(rnd() * 12));
  if (r < 0.75) return pick(rnd, ['0', '-0', '-0.0', '0.000', '-0e5', '0E-99999999', '-0.0e+0']);
  const int = rnd() < 0.6 ? '0' : `${1 + Math.floor(rnd() * 9)}${digitString(rnd, Math.floor(rnd() * 22))}`;
  const frac =
    rnd() < 0.8
      ? `.${'0'.repeat(rnd() < 0.3 ? Math.floor(rnd() * 30) : 0)}${digitString(rnd, 1 + Math.floor(rnd() * 30))}`
      : '';
  const exp =
    rnd() < 0.4
      ? `${pick(rnd, ['e', 'E'])}${pick(rnd, ['', '+', '-'])}${'0'.repeat(Math.floor(rnd() * 2))}${Math.floor(rnd() * 70)}`
      : '';
  return `${sign}${int}${frac}${exp}`;
}

/** The scanner's range rule: an embedding number is accepted exactly when it is finite as float32. */
const fits = (text: string): boolean => Number.isFinite(Math.fround(JSON.parse(text) as number));

/** numberText, redrawn until it fits float32: for tests about decoding rather than refusing. */
function fittingNumber(rnd: () => number): string {
  for (;;) {
    const t = numberText(rnd);
    if (fits(t)) return t;
  }
}

const EDGE = [
  '0',
  '-0',
  '1e400',
  '-1e400',
  '1e-400',
  '3.4028235677973366e38',
  '3.4028236e38',
  '3.40282357e38',
  '1.401298464324817e-45',
  '7e-46',
  '7.006492321624086e-46',
  '1.1754943508222875e-38',
  '123456789012345678901234567890',
  '9007199254740992',
  '9007199254740993',
  '9007199254740993.0',
  '0.9007199254740993',
  '1e22',
  '1e23',
  '1E-22',
  '1e-23',
  '1e-44',
  '1e-45',
  '0.1234567890123456789012345678901234567890123',
  '1.00000005960464477539062500000000000001',
  '1.000000059604644775390625',
  '1.00000005960464477539062499999999999999',
];

const doc = (arr: string): string =>
  `{"output":{"embeddings":[{"embedding":${arr},"text_index":0}]},"usage":{}}`;
/** Where the embedding array starts in doc(...). */
const DOC_PREFIX = doc('\u0000').indexOf('\u0000');

function expectSameFloat32(got: Float32Array | undefined, text: string, what: string): void {
  const want = new Float32Array(JSON.parse(text) as number[]);
  expect(got, what).toBeInstanceOf(Float32Array);
  expect(got!.length, what).toBe(want.length);
  for (let k = 0; k < want.length; k++) {
    if (!Object.is(got![k], want[k])) expect(`${what}[${k}] → ${got![k]}`).toBe(`${what}[${k}] → ${want[k]}`);
  }
}

function outcome(text: string, decode: boolean): string {
  try {
    const r = scanEmbeddingReply(Buffer.from(text), { decode });
    return `ok ${JSON.stringify(r.items.map((i) => [i.index, i.embedding, i.dims]))}`;
  } catch (err) {
    expect(err).toBeInstanceOf(ScanError);
    return `ScanError ${(err as Error).message}`;
  }
}

describe('scanEmbeddingReply({ decode: true })', () => {
  it('gives new Float32Array(JSON.parse(...)) bit for bit on edge cases and 3,000 random arrays (refusing overflow)', () => {
    const rnd = rng(0x5eed);
    const negated = EDGE.map((x) => (x.startsWith('-') ? x.slice(1) : `-${x}`));
    const arrays = [EDGE.filter(fits), negated.filter(fits), EDGE, negated];
    let refused = 0;
    for (let i = 0; i < 3000; i++)
      arrays.push(Array.from({ length: 1 + Math.floor(rnd() * 40) }, () => numberText(rnd)));
    for (const nums of arrays) {
      const sep = pick(rnd, [',', ', ', ' ,\n\t', '\r\n,']);
      const open = rnd() < 0.5 ? '[' : '[ ';
      const text = `${open}${nums.join(sep)}${open === '[' ? ']' : ' ]'}`;
      const buf = Buffer.from(doc(text));
      const bad = nums.findIndex((x) => !fits(x));
      if (bad >= 0) {
        // Both modes name the earliest number beyond float32 by its byte offset.
        const at =
          DOC_PREFIX + open.length + nums.slice(0, bad).reduce((sum, x) => sum + x.length + sep.length, 0);
        const want = `ScanError embedding value beyond float32 range at byte ${at}`;
        expect(outcome(doc(text), false), text).toBe(want);
        expect(outcome(doc(text), true), text).toBe(want);
        refused++;
        continue;
      }
      const decoded = scanEmbeddingReply(buf, { decode: true });
      const plain = scanEmbeddingReply(buf);
      expect(decoded.items[0]!.embedding).toEqual(plain.items[0]!.embedding);
      expect(decoded.items[0]!.dims).toBe(plain.items[0]!.dims);
      expect(plain.items[0]!.values).toBeUndefined();
      expectSameFloat32(decoded.items[0]!.values, text, text.slice(0, 60));
    }
    // Both outcomes are exercised: a share of the random arrays holds a number beyond float32.
    expect(refused).toBeGreaterThan(100);
    expect(refused).toBeLessThan(arrays.length - 1000);
  });

  it('decodes every item and the fused vector of whole replies, in any key order and layout', () => {
    const rnd = rng(99);
    for (let seed = 0; seed < 200; seed++) {
      const n = 1 + Math.floor(rnd() * 5);
      const dim = Math.floor(rnd() * 70);
      const vectors = Array.from({ length: n }, () => Array.from({ length: dim }, () => fittingNumber(rnd)));
      const items = vectors.map((v, i) =>
        rnd() < 0.5
          ? `{"embedding":[${v.join(',')}],"index":${i},"type":"text"}`
          : `{ "text_index" : ${i} , "embedding" : [ ${v.join(' , ')} ] }`,
      );
      const fused = Array.from({ length: dim }, () => fittingNumber(rnd));
      const text = `{"request_id":"r","output":{"embeddings":[${items.join(',')}],"embedding":[${fused.join(',')}]},"usage":{"total_tokens":3}}`;
      const r = scanEmbeddingReply(Buffer.from(text), { decode: true });
      for (const [k, item] of r.items.entries()) {
        expectSameFloat32(item.values, `[${vectors[k]!.join(',')}]`, `item ${k}`);
      }
      expectSameFloat32(r.fused!.values, `[${fused.join(',')}]`, 'fused');
    }
  });

  it('accepts and refuses exactly what the validating scan does, with the same error, on 4,000 mutated arrays', () => {
    const rnd = rng(31337);
    const noise = [
      '0',
      '1',
      '9',
      '-',
      '+',
      '.',
      'e',
      'E',
      ',',
      ' ',
      '\n',
      ']',
      '[',
      'x',
      '"',
      '\u0000',
      '\u00ff',
      ':',
    ];
    for (let i = 0; i < 4000; i++) {
      let arr = `[${Array.from({ length: Math.floor(rnd() * 6) }, () => numberText(rnd)).join(', ')}]`;
      for (let k = 1 + Math.floor(rnd() * 3); k > 0; k--) {
        const at = Math.floor(rnd() * arr.length);
        const ch = pick(rnd, noise);
        const mode = rnd();
        arr =
          mode < 0.4
            ? arr.slice(0, at) + ch + arr.slice(at + 1)
            : mode < 0.8
              ? arr.slice(0, at) + ch + arr.slice(at)
              : arr.slice(0, at) + arr.slice(at + 1);
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
      const numeric =
        Array.isArray(embedding) &&
        embedding.every((x) => typeof x === 'number' && Number.isFinite(Math.fround(x)));
      const got = outcome(text, true);
      expect(got, text).toBe(outcome(text, false));
      expect(got.startsWith('ok'), text).toBe(numeric);
      if (numeric) {
        expectSameFloat32(scanEmbeddingReply(Buffer.from(text), { decode: true }).items[0]!.values, arr, arr);
      }
    }
  });

  it('fails every truncation of a reply the same way as the validating scan (digit runs cut at the end)', () => {
    const rnd = rng(4);
    for (let round = 0; round < 20; round++) {
      const nums = Array.from({ length: 6 }, () => numberText(rnd));
      const text = `{"output":{"embedding":[${nums.join(',')}]}}`;
      for (let cut = 0; cut < text.length; cut++) {
        const prefix = text.slice(0, cut);
        const got = outcome(prefix, true);
        expect(got.startsWith('ScanError'), prefix).toBe(true);
        expect(got, prefix).toBe(outcome(prefix, false));
      }
    }
  });

  it('renders the same base64 with decoded values as from the spans', () => {
    const rnd = rng(8);
    const vectors = Array.from({ length: 3 }, () => Array.from({ length: 32 }, () => fittingNumber(rnd)));
    const text = `{"output":{"embeddings":[${vectors.map((v, i) => `{"embedding":[${v.join(',')}],"text_index":${i}}`).join(',')}]}}`;
    const buf = Buffer.from(text);
    const plain = scanEmbeddingReply(buf).items.map((it) => ({ buf, span: it.embedding! }));
    const decoded = scanEmbeddingReply(buf, { decode: true }).items.map((it) => ({
      buf,
      span: it.embedding!,
      values: it.values,
    }));
    const a = joinParts(renderOpenAIEmbeddings('m', plain, 5, 'base64')).toString();
    expect(joinParts(renderOpenAIEmbeddings('m', decoded, 5, 'base64')).toString()).toBe(a);
    const data = (JSON.parse(a) as { data: { embedding: string }[] }).data;
    data.forEach((d, k) => {
      const b = Buffer.from(d.embedding, 'base64');
      expectSameFloat32(
        new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4),
        `[${vectors[k]!.join(',')}]`,
        `data[${k}]`,
      );
    });
  });
});
