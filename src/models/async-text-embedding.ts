/**
 * Async batch text-embedding models: one task embeds a whole file (one text per line) fetched by DashScope from
 * `input.url`, and the result comes back later as a file URL on the task. They share the sync text-embedding
 * path and are told apart by `X-DashScope-Async: enable` (see src/routes/dashscope-tasks.ts).
 * Limits from the batch API docs (docs/dashscope-contract.md §2.2, §6.2): 100,000 lines per file, 2,048 tokens
 * per line, at most 50 queued + running tasks per account. DashScope reads the file, so the gateway cannot check them;
 * they are here for the README and the emulator.
 */

export interface AsyncTextEmbeddingModel {
  kind: 'async-text-embedding';
  name: string;
  /** Lines (texts) per input file. */
  maxLines: number;
  /** Tokens per line. */
  maxTokensPerLine: number;
  /** The sync model whose vectors the task produces (the docs say to pick the async twin of the sync model in use). */
  syncTwin: string;
}

export const ASYNC_TEXT_EMBEDDING_MODELS: readonly AsyncTextEmbeddingModel[] = [
  {
    kind: 'async-text-embedding',
    name: 'text-embedding-async-v1',
    maxLines: 100_000,
    maxTokensPerLine: 2048,
    syncTwin: 'text-embedding-v1',
  },
  {
    kind: 'async-text-embedding',
    name: 'text-embedding-async-v2',
    maxLines: 100_000,
    maxTokensPerLine: 2048,
    syncTwin: 'text-embedding-v2',
  },
];
