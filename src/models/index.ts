import { GatewayError } from '../errors.js';
import { ASYNC_TEXT_EMBEDDING_MODELS, type AsyncTextEmbeddingModel } from './async-text-embedding.js';
import { CONVERSATION_MODELS, type ConversationModel } from './conversation.js';
import { MULTIMODAL_EMBEDDING_MODELS, type MultimodalEmbeddingModel } from './multimodal-embedding.js';
import { TEXT_EMBEDDING_MODELS, type TextEmbeddingModel } from './text-embedding.js';

export type { AsyncTextEmbeddingModel } from './async-text-embedding.js';
export type { ConversationModel } from './conversation.js';
export type { Modality, MultimodalEmbeddingModel } from './multimodal-embedding.js';
export type { TextEmbeddingModel } from './text-embedding.js';

/**
 * The model table: what the gateway knows about each upstream model, in one place.
 * A new model is a new row, not new code. Row limits have changed over time upstream
 * (text-embedding-v3 went 6 → 20 → 10), so they can be overridden with MODEL_ROW_LIMITS.
 */

/** Every model family; a new family adds its type here and its rows to ALL_MODELS. */
export type Model =
  | TextEmbeddingModel
  | AsyncTextEmbeddingModel
  | MultimodalEmbeddingModel
  | ConversationModel;

const ALL_MODELS: readonly Model[] = [
  ...TEXT_EMBEDDING_MODELS,
  ...ASYNC_TEXT_EMBEDDING_MODELS,
  ...MULTIMODAL_EMBEDDING_MODELS,
  ...CONVERSATION_MODELS,
];

/** Models whose per-call row limit MODEL_ROW_LIMITS may override (checked when the config is loaded). */
export const ROW_LIMITED_MODELS: readonly string[] = ALL_MODELS.filter((m) => 'maxRows' in m).map(
  (m) => m.name,
);

export type ModelKind = Model['kind'];

/** How a family is named in messages. */
const KIND_NAMES: Record<ModelKind, string> = {
  'text-embedding': 'text-embedding',
  'async-text-embedding': 'async batch text-embedding',
  'multimodal-embedding': 'multimodal-embedding',
  conversation: 'Qwen-VL conversation',
};

export interface ModelTable {
  get(name: string): Model | undefined;
  names(): string[];
  /**
   * The model `name` if it is of one of `kinds`, else a 400 (param `model`) in one wording for every route:
   * `model "x" is not a <kinds> model served here; known: …` listing the models of those kinds.
   */
  require<K extends ModelKind>(name: string, ...kinds: K[]): Extract<Model, { kind: K }>;
}

/** Build the table with operator overrides applied (unknown names in the overrides are an error). */
export function buildModelTable(rowLimits: Map<string, number>): ModelTable {
  const byName = new Map<string, Model>();
  for (const m of ALL_MODELS) {
    // Only families with a per-call row limit can be overridden; the others are taken as they are.
    byName.set(m.name, 'maxRows' in m ? { ...m, maxRows: rowLimits.get(m.name) ?? m.maxRows } : m);
  }
  for (const name of rowLimits.keys()) {
    const m = byName.get(name);
    if (!m) throw new Error(`MODEL_ROW_LIMITS names an unknown model: ${name}`);
    if (!('maxRows' in m)) throw new Error(`MODEL_ROW_LIMITS names ${name}, which has no per-call row limit`);
  }
  return {
    get: (name) => byName.get(name),
    names: () => [...byName.keys()],
    require<K extends ModelKind>(name: string, ...kinds: K[]): Extract<Model, { kind: K }> {
      const m = byName.get(name);
      if (m && (kinds as ModelKind[]).includes(m.kind)) return m as Extract<Model, { kind: K }>;
      const known = [...byName.values()]
        .filter((x) => (kinds as ModelKind[]).includes(x.kind))
        .map((x) => x.name);
      const what = kinds.map((k) => KIND_NAMES[k]).join(' or ');
      throw new GatewayError(
        'UNKNOWN_MODEL',
        `model "${name}" is not a ${what} model served here; known: ${known.join(', ')}`,
        {
          param: 'model',
        },
      );
    },
  };
}
