/**
 * The model table: what the gateway knows about each upstream model, in one place.
 * A new model is a new row, not new code. Row limits have changed over time upstream
 * (text-embedding-v3 went 6 → 20 → 10), so they can be overridden with MODEL_ROW_LIMITS.
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

const TEXT_MODELS: readonly TextEmbeddingModel[] = [
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

export type Model = TextEmbeddingModel;

export interface ModelTable {
  get(name: string): Model | undefined;
  names(): string[];
}

/** Build the table with operator overrides applied (unknown names in the overrides are an error). */
export function buildModelTable(rowLimits: Map<string, number>): ModelTable {
  const byName = new Map<string, Model>();
  for (const m of TEXT_MODELS) byName.set(m.name, { ...m, maxRows: rowLimits.get(m.name) ?? m.maxRows });
  for (const name of rowLimits.keys()) {
    if (!byName.has(name)) throw new Error(`MODEL_ROW_LIMITS names an unknown model: ${name}`);
  }
  return {
    get: (name) => byName.get(name),
    names: () => [...byName.keys()],
  };
}
