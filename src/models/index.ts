import { TEXT_EMBEDDING_MODELS, type TextEmbeddingModel } from './text-embedding.js';

export type { TextEmbeddingModel } from './text-embedding.js';

/**
 * The model table: what the gateway knows about each upstream model, in one place.
 * A new model is a new row, not new code. Row limits have changed over time upstream
 * (text-embedding-v3 went 6 → 20 → 10), so they can be overridden with MODEL_ROW_LIMITS.
 */

/** Every model family; a new family adds its type here and its rows to ALL_MODELS. */
export type Model = TextEmbeddingModel;

const ALL_MODELS: readonly Model[] = [...TEXT_EMBEDDING_MODELS];

export interface ModelTable {
  get(name: string): Model | undefined;
  names(): string[];
}

/** Build the table with operator overrides applied (unknown names in the overrides are an error). */
export function buildModelTable(rowLimits: Map<string, number>): ModelTable {
  const byName = new Map<string, Model>();
  for (const m of ALL_MODELS) byName.set(m.name, { ...m, maxRows: rowLimits.get(m.name) ?? m.maxRows });
  for (const name of rowLimits.keys()) {
    if (!byName.has(name)) throw new Error(`MODEL_ROW_LIMITS names an unknown model: ${name}`);
  }
  return {
    get: (name) => byName.get(name),
    names: () => [...byName.keys()],
  };
}
