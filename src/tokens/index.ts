/**
 * Per-text token-limit checks (2,048 tokens for text-embedding-v1/v2, 8,192 for v3/v4) before any upstream call,
 * so an oversized text costs no upstream call and the error can say how long it is — without ever tokenizing on
 * the event loop, and with bounded CPU, memory and time per request:
 *
 * 1. Every text of the request gets the cheap bounds of ./bounds.ts first (no tokenizer): provably under → fine;
 *    provably over → refused with "is at least N tokens". A request whose texts are all decided here never
 *    touches the worker pool.
 * 2. The texts left are refused as a whole if together they are more than `maxBytesPerRequest` UTF-8 bytes: the
 *    tokenizer's cost grows with the bytes (and worse than linearly on long runs without spaces), so this is the
 *    cheap cap on work and memory, checked before any counting.
 * 3. The rest are counted exactly in a worker (./pool.ts), within `timeoutMs` per request.
 */
import { GatewayError, invalidInput } from '../errors.js';
import { classify, estimateTokens } from './bounds.js';
import { type CountOutcome, PoolBusyError, TokenizerPool } from './pool.js';

export { estimateTokens, NFC_MAX_UTF8_EXPANSION, QWEN3_LONGEST_TOKEN_BYTES } from './bounds.js';
export { countTokens, TOKENIZER_PACKAGE, tokenizerLoaded } from './worker.js';

export interface TokenCheckerOptions {
  /** Worker threads (TOKENIZER_WORKERS), at least 1: counting never runs on the main thread. */
  workers: number;
  /** UTF-8 bytes one request may send to the tokenizer (TOKENIZER_MAX_BYTES_PER_REQUEST). */
  maxBytesPerRequest: number;
  /** Time one request's counting may take, once its worker is ready (TOKENIZER_TIMEOUT_MS). */
  timeoutMs: number;
  /** Requests that may wait for a busy pool; default 8 per worker. */
  queueSize?: number;
  /** V8 old-generation cap per worker in MB; default 1024 (the tokenizer needs about 100 MB, 1 MiB of text about 300 MB more). */
  maxHeapMb?: number;
}

/** Per-text token counts, in input order. `exact[i]` false: `tokens[i]` is estimateTokens(), not a count. */
export interface TokenCounts {
  tokens: number[];
  exact: boolean[];
}

export interface TokenChecker {
  /**
   * Checks each text against `limit` tokens; throws GatewayError (400 naming `describe(i)` and the limit, or 429
   * when the token counter is saturated). `modelName` appears in the messages.
   */
  checkTexts(
    texts: string[],
    limit: number,
    describe: (i: number) => string,
    modelName: string,
  ): Promise<TokenCounts>;
  /** Workers started so far (observability and tests). */
  readonly workersStarted: number;
  close(): Promise<void>;
}

const DEFAULT_QUEUE_PER_WORKER = 8;
const DEFAULT_MAX_HEAP_MB = 1024;
/** A worker that cannot load an 11 MB JSON tokenizer in this time is broken, not slow. */
const LOAD_TIMEOUT_MS = 30_000;

export function createTokenChecker(opts: TokenCheckerOptions): TokenChecker {
  const workers = Math.max(1, Math.floor(opts.workers));
  const pool = new TokenizerPool({
    workers,
    timeoutMs: opts.timeoutMs,
    queueSize: opts.queueSize ?? DEFAULT_QUEUE_PER_WORKER * workers,
    maxHeapMb: opts.maxHeapMb ?? DEFAULT_MAX_HEAP_MB,
    loadTimeoutMs: LOAD_TIMEOUT_MS,
  });
  const maxBytes = opts.maxBytesPerRequest;

  async function checkTexts(
    texts: string[],
    limit: number,
    describe: (i: number) => string,
    modelName: string,
  ): Promise<TokenCounts> {
    const tokens = new Array<number>(texts.length);
    const exact = new Array<boolean>(texts.length).fill(false);
    const pending: number[] = [];
    let pendingBytes = 0;
    for (let i = 0; i < texts.length; i++) {
      const text = texts[i]!;
      const bound = classify(text, limit, maxBytes);
      if (bound.kind === 'over') {
        throw invalidInput(
          describe(i),
          `is at least ${bound.atLeast} tokens long (${bound.bytes} bytes); ${modelName} accepts at most ${limit} tokens per input`,
        );
      }
      tokens[i] = estimateTokens(text);
      if (bound.kind === 'count') {
        pending.push(i);
        pendingBytes += bound.bytes;
      }
    }
    if (pending.length === 0) return { tokens, exact };
    if (pendingBytes > maxBytes) {
      const what =
        pending.length === 1
          ? `is ${pendingBytes} bytes and needs an exact token count`
          : `and ${pending.length - 1} other texts need an exact token count, ${pendingBytes} bytes in all`;
      throw invalidInput(
        describe(pending[0]!),
        `${what}; the gateway counts at most ${maxBytes} bytes per request (TOKENIZER_MAX_BYTES_PER_REQUEST): split the request or shorten the texts`,
      );
    }
    let outcome: CountOutcome;
    try {
      outcome = await pool.count(
        pending.map((i) => texts[i]!),
        limit,
      );
    } catch (err) {
      if (err instanceof PoolBusyError) {
        throw new GatewayError(
          'RATE_LIMITED',
          `the gateway's token counter is busy (${err.message}); retry shortly`,
          {
            retryAfterSec: Math.max(1, Math.ceil(opts.timeoutMs / 1000)),
          },
        );
      }
      throw err;
    }
    switch (outcome.kind) {
      case 'done':
        outcome.tokens.forEach((n, k) => {
          tokens[pending[k]!] = n;
          exact[pending[k]!] = true;
        });
        return { tokens, exact };
      case 'over':
        throw invalidInput(
          describe(pending[outcome.index]!),
          `is ${outcome.tokens} tokens long; ${modelName} accepts at most ${limit} per input`,
        );
      case 'timeout':
        throw invalidInput(
          describe(pending[outcome.index]!),
          `could not be checked against the ${limit}-token limit of ${modelName} within ${opts.timeoutMs} ms (TOKENIZER_TIMEOUT_MS); split it into shorter texts`,
        );
      case 'crashed':
        throw invalidInput(
          describe(pending[outcome.index]!),
          `could not be checked against the ${limit}-token limit of ${modelName} (the tokenizer failed: ${outcome.reason}); split it into shorter texts`,
        );
    }
  }

  return {
    checkTexts,
    get workersStarted() {
      return pool.started;
    },
    close: () => pool.close(),
  };
}
