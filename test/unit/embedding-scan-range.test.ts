/**
 * Embedding numbers must be float32s: the scanner refuses a number x exactly when
 * `Math.fround(JSON.parse(x))` is not finite, in the validating loop (float output), the decoding loop (base64
 * output) and the careful loop that names the byte, and accepts everything else as before (1e-400 underflows
 * to 0 and is fine). Other numbers in the reply (usage, sparse_embedding) are not embeddings and keep JSON's range.
 */
import { describe, expect, it } from 'vitest';
import { ScanError, scanEmbeddingReply } from '../../src/upstream/embedding-scan.js';
import { rng } from '../support/rng.js';

/** The rule, stated as the issue states it. */
const fits = (text: string): boolean => Number.isFinite(Math.fround(JSON.parse(text) as number));

const PREFIX = '{"output":{"embeddings":[{"embedding":[0.5,';
const doc = (num: string): string => `${PREFIX}${num},-0.25],"text_index":0}]},"usage":{"total_tokens":1}}`;

type Outcome = { ok: true; values: Float32Array | undefined; raw: string } | { ok: false; message: string };

function scan(text: string, decode: boolean): Outcome {
  try {
    const buf = Buffer.from(text);
    const item = scanEmbeddingReply(buf, { decode }).items[0]!;
    return {
      ok: true,
      values: item.values,
      raw: buf.toString('utf8', item.embedding!.start, item.embedding!.end),
    };
  } catch (err) {
    expect(err).toBeInstanceOf(ScanError);
    return { ok: false, message: (err as Error).message };
  }
}

/** Both modes agree with the rule; refusals name the number's first byte; accepted bytes pass through as sent. */
function check(num: string): boolean {
  const want = fits(num);
  for (const decode of [false, true]) {
    const got = scan(doc(num), decode);
    if (!want) {
      expect(got, `${num} decode=${decode}`).toEqual({
        ok: false,
        message: `embedding value beyond float32 range at byte ${PREFIX.length}`,
      });
      continue;
    }
    expect(got.ok, `${num} decode=${decode}`).toBe(true);
    if (!got.ok) continue;
    expect(got.raw).toBe(`[0.5,${num},-0.25]`);
    if (decode) {
      const f = new Float32Array([0.5, JSON.parse(num) as number, -0.25]);
      expect(Array.from(got.values!), num).toEqual(Array.from(f));
    }
  }
  return want;
}

describe('scanEmbeddingReply float32 range', () => {
  it('accepts float32 max and the largest decimals that round to it', () => {
    expect(Math.fround(3.4028234663852886e38)).toBe(3.4028234663852886e38);
    for (const num of [
      '3.4028234663852886e38',
      '-3.4028234663852886e38',
      '340282346638528859811704183484516925440',
      '3.4028234663852886E+38',
      '0.34028234663852886e39',
      '34028234663852886e22',
      // 2^128 - 2^103 minus one double ulp: rounds down to float32 max.
      '3.4028235677973362e38',
      '1e38',
      '99999999999999999999999999999999999999',
    ]) {
      expect(check(num), num).toBe(true);
    }
  });

  it('refuses what rounds to ±Infinity in float32 (the exact midpoint 2^128 - 2^103 rounds up)', () => {
    // Ties go to the even significand, and float32 max's significand is odd: the midpoint becomes 2^128.
    expect(Math.fround(3.4028235677973366e38)).toBe(Number.POSITIVE_INFINITY);
    for (const num of [
      '3.4028235677973366e38',
      '340282356779733661637539395458142568448',
      '3.5e38',
      '-3.5e38',
      '1e39',
      '1E39',
      '1e+39',
      '1e400',
      '-1e400',
      '0.1e40',
      '0.0000000001e50',
      '1e99999999999',
      `1${'0'.repeat(399)}`,
      `-${'9'.repeat(40)}`,
      `${'9'.repeat(39)}.5`,
      `1${'0'.repeat(41)}e-2`,
    ]) {
      expect(check(num), num).toBe(false);
    }
  });

  it('accepts what underflows or only looks large: 1e-400, 0e999, long integers with negative exponents', () => {
    for (const num of [
      '1e-400',
      '-1e-400',
      '0e999',
      '-0.0E+400',
      '1e-99999999999',
      `1${'0'.repeat(399)}e-380`,
      `1${'0'.repeat(399)}e-99999999999`,
      `0.${'0'.repeat(400)}1e430`,
      `${'1'.repeat(38)}`,
      `${'3'.repeat(38)}.${'9'.repeat(50)}`,
    ]) {
      expect(check(num), num).toBe(true);
    }
  });

  it('agrees with the rule on 6,000 random numbers with exponents around ±38…±400', () => {
    const rnd = rng(0xf1a7);
    let accepted = 0;
    for (let i = 0; i < 6000; i++) {
      const sign = rnd() < 0.5 ? '-' : '';
      const intDigits = rnd() < 0.5 ? 1 : 1 + Math.floor(rnd() * 45);
      let int = String(1 + Math.floor(rnd() * 9));
      for (let k = 1; k < intDigits; k++) int += Math.floor(rnd() * 10);
      if (rnd() < 0.2) int = '0';
      const frac =
        rnd() < 0.6
          ? `.${Array.from({ length: 1 + Math.floor(rnd() * 20) }, () => Math.floor(rnd() * 10)).join('')}`
          : '';
      const r = rnd();
      const e =
        r < 0.5
          ? 38 - intDigits + Math.floor(rnd() * 4) - 1 // straddles float32's overflow
          : r < 0.8
            ? Math.floor(rnd() * 363) + 38
            : -(Math.floor(rnd() * 363) + 38);
      const exp = `${rnd() < 0.5 ? 'e' : 'E'}${e < 0 ? '-' : rnd() < 0.3 ? '+' : ''}${Math.abs(e)}`;
      if (check(`${sign}${int}${frac}${exp}`)) accepted++;
    }
    // Both sides of the boundary are exercised.
    expect(accepted).toBeGreaterThan(1000);
    expect(accepted).toBeLessThan(5000);
  });

  it('refuses in the fused ONE-PEACE vector and in any item, and names the first problem in byte order', () => {
    const fused = '{"output":{"embedding":[1,1e39]}}';
    for (const decode of [false, true]) {
      expect(() => scanEmbeddingReply(Buffer.from(fused), { decode })).toThrow(
        `embedding value beyond float32 range at byte ${fused.indexOf('1e39')}`,
      );
      const second =
        '{"output":{"embeddings":[{"embedding":[1],"index":0},{"embedding":[2,-4e38],"index":1}]}}';
      expect(() => scanEmbeddingReply(Buffer.from(second), { decode })).toThrow(
        `embedding value beyond float32 range at byte ${second.indexOf('-4e38')}`,
      );
      // A grammar error after an overflowing number: the overflow comes first.
      const thenBad = '{"output":{"embedding":[1e400,01]}}';
      expect(() => scanEmbeddingReply(Buffer.from(thenBad), { decode })).toThrow(
        `embedding value beyond float32 range at byte ${thenBad.indexOf('1e400')}`,
      );
      // A grammar error before it: the grammar error.
      const badFirst = '{"output":{"embedding":[01,1e400]}}';
      expect(() => scanEmbeddingReply(Buffer.from(badFirst), { decode })).toThrow(
        "expected ',' or ']' in embedding",
      );
    }
  });

  it('leaves numbers outside embeddings alone (usage, sparse_embedding, unknown keys)', () => {
    const text =
      '{"output":{"embeddings":[{"embedding":[0.5],"text_index":0,"sparse_embedding":[{"index":1,"value":1e400}],"x":1e999}],"y":-1e400},"usage":{"total_tokens":1,"z":1e39}}';
    for (const decode of [false, true]) {
      const r = scanEmbeddingReply(Buffer.from(text), { decode });
      expect(r.items[0]!.dims).toBe(1);
      expect(r.items[0]!.extras.map(([k]) => k)).toEqual(['sparse_embedding', 'x']);
    }
  });
});
