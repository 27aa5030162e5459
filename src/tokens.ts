/**
 * Compatibility shim for src/emulator/** only, which still imports from here and stays synchronous (another change
 * makes the emulator independent; delete this file then). The gateway uses ./tokens/index.ts, which never counts
 * on the main thread.
 */
import { classify } from './tokens/bounds.js';
import { countTokens } from './tokens/worker.js';

export { estimateTokens } from './tokens/bounds.js';

/** Tokens in `text` if they exceed `limit`, else undefined; counts synchronously (the emulator is a test double). */
export function tokensOverLimit(text: string, limit: number): number | undefined {
  if (classify(text, limit, Number.POSITIVE_INFINITY).kind === 'under') return undefined;
  const tokens = countTokens(text);
  return tokens > limit ? tokens : undefined;
}
