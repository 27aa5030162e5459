/**
 * The emulator's own idea of how long a text is in Qwen3 tokens, written without the gateway's tokenizer so that
 * it can catch the gateway's mistakes. It never loads a vocabulary; it only needs a *lower bound* that is true for
 * every text, so that the emulator never rejects a text DashScope would accept (at most `limit` real tokens), while
 * still rejecting texts that are grossly too long.
 *
 * Why the bound holds (Qwen2/Qwen3 byte-level BPE, as published in the model's tokenizer.json):
 * 1. The 26 added tokens (`<|endoftext|>`, `<think>`, …) are cut out of the text first and are one token each;
 *    the pieces between them are tokenized on their own. `splitSpecial` does the same.
 * 2. Each piece is NFC-normalized (the tokenizer's only normalizer) and split by the pre-tokenizer regex below.
 *    BPE never merges across pre-token boundaries, so every pre-token is at least one token.
 * 3. A pre-token that is letters (optionally led by one non-letter, non-digit character) can only be covered by
 *    tokens that are substrings of such a run. The longest vocabulary entry of that shape is 42 UTF-8 bytes
 *    (".translatesAutoresizingMaskIntoConstraints", measured over all 151,643 entries, counting partial UTF-8
 *    sequences at either end), so such a pre-token has at least ceil(bytes / 48) tokens (48 leaves a margin).
 *    Any other pre-token has at least ceil(bytes / 128): 128 bytes is the longest entry in the whole vocabulary
 *    (a run of spaces).
 * The sum over pre-tokens is therefore <= the real count (also checked against the real tokenizer on 35,000
 * fuzzed strings, and in test/integration/emulator-limits.test.ts). It is exact for ordinary prose up to the BPE splits
 * inside words (English is ~1.3 tokens per word), and it still counts a 100,000-character 'aaaa…' run as 2,084.
 */

/** The added tokens of the Qwen3 tokenizer: matched before normalization, one token each. */
const ADDED_TOKENS = [
  '<|endoftext|>',
  '<|im_start|>',
  '<|im_end|>',
  '<|object_ref_start|>',
  '<|object_ref_end|>',
  '<|box_start|>',
  '<|box_end|>',
  '<|quad_start|>',
  '<|quad_end|>',
  '<|vision_start|>',
  '<|vision_end|>',
  '<|vision_pad|>',
  '<|image_pad|>',
  '<|video_pad|>',
  '<tool_call>',
  '</tool_call>',
  '<|fim_prefix|>',
  '<|fim_middle|>',
  '<|fim_suffix|>',
  '<|fim_pad|>',
  '<|repo_name|>',
  '<|file_sep|>',
  '<tool_response>',
  '</tool_response>',
  '<think>',
  '</think>',
];

const literal = (s: string): string => s.replace(/[|/\\^$.*+?()[\]{}]/g, '\\$&');
const ADDED = new RegExp(ADDED_TOKENS.map(literal).join('|'), 'g');

/**
 * The Qwen2/Qwen3 pre-tokenizer split, rewritten for JavaScript (no inline `(?i:)`, so the contractions spell out
 * both cases). Alternatives, in order: English contractions; a letter run with at most one leading
 * non-letter/non-digit/non-newline; one digit; a punctuation run (optional leading space, trailing newlines);
 * whitespace ending in newlines; whitespace not followed by a non-space; any other whitespace.
 */
const PRE_TOKEN =
  /'(?:[sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;
const LETTER_RUN = /^[^\r\n\p{L}\p{N}]?\p{L}+$/u;

/** Bytes per token at most, for letter-run pre-tokens and for any other pre-token (see the header). */
const LETTER_RUN_BYTES_PER_TOKEN = 48;
const ANY_BYTES_PER_TOKEN = 128;

/** Calls `each` with every pre-token of `text` (added tokens included, as themselves). */
function forEachPreToken(text: string, each: (preToken: string, added: boolean) => void): void {
  let from = 0;
  const piece = (s: string): void => {
    if (s === '') return;
    for (const m of s.normalize('NFC').matchAll(PRE_TOKEN)) each(m[0], false);
  };
  for (const m of text.matchAll(ADDED)) {
    piece(text.slice(from, m.index));
    each(m[0], true);
    from = m.index + m[0].length;
  }
  piece(text.slice(from));
}

/** A number of Qwen3 tokens that `text` has at least (0 for ''). */
export function qwenTokensAtLeast(text: string): number {
  let n = 0;
  forEachPreToken(text, (p, added) => {
    if (added) {
      n += 1;
      return;
    }
    const bytes = Buffer.byteLength(p, 'utf8');
    const per = LETTER_RUN.test(p) ? LETTER_RUN_BYTES_PER_TOKEN : ANY_BYTES_PER_TOKEN;
    n += Math.ceil(bytes / per);
  });
  return n;
}

/**
 * `usage` token figure the emulator reports: an estimate, not a bound. Each pre-token counts one token per started
 * 4 UTF-8 bytes (Qwen3 averages about 4-5 bytes per token in English and Chinese), so it errs high. Any non-empty
 * text counts at least 1, which is what callers check.
 */
export function usageTokens(text: string): number {
  let n = 0;
  forEachPreToken(text, (p, added) => {
    n += added ? 1 : Math.ceil(Buffer.byteLength(p, 'utf8') / 4);
  });
  return n;
}
