/**
 * Text-embedding models (native text-embedding endpoint; also served on /v1/embeddings).
 * Sources: DashScope "text embedding synchronous API" and the embedding model overview; see README "Models".
 */

export interface TextEmbeddingModel {
  kind: 'text-embedding';
  name: string;
  /** Allowed `dimension` / `dimensions` values; the first is not necessarily the default. */
  dimensions: readonly number[];
  defaultDimension: number;
  /** Texts per upstream call. */
  maxRows: number;
  /** Tokens per text. */
  maxTokens: number;
  /** Whether `output_type` sparse / dense&sparse is available. */
  sparse: boolean;
}

export const TEXT_EMBEDDING_MODELS: readonly TextEmbeddingModel[] = [
  {
    kind: 'text-embedding',
    name: 'text-embedding-v1',
    dimensions: [1536],
    defaultDimension: 1536,
    maxRows: 25,
    maxTokens: 2048,
    sparse: false,
  },
  {
    kind: 'text-embedding',
    name: 'text-embedding-v2',
    dimensions: [1536],
    defaultDimension: 1536,
    maxRows: 25,
    maxTokens: 2048,
    sparse: false,
  },
  {
    kind: 'text-embedding',
    name: 'text-embedding-v3',
    // 256/128/64 appear only in later docs; accepted (lenient on input), upstream has the last word.
    dimensions: [1024, 768, 512, 256, 128, 64],
    defaultDimension: 1024,
    maxRows: 10,
    maxTokens: 8192,
    sparse: true,
  },
  {
    kind: 'text-embedding',
    name: 'text-embedding-v4',
    dimensions: [2048, 1536, 1024, 768, 512, 256, 128, 64],
    defaultDimension: 1024,
    maxRows: 10,
    maxTokens: 8192,
    sparse: true,
  },
];
