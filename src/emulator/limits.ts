/**
 * What DashScope accepts, per model, as the emulator enforces it. This is deliberately a second, independent copy
 * of the upstream facts (docs/dashscope-contract.md §6 and the model pages it cites), typed on its own: the gateway
 * has its own table, and if the two were one, a wrong limit in the gateway would be confirmed by the tests instead
 * of caught. Change a value here only when DashScope's documentation changes, never to follow the gateway.
 */

export type EmuModality = 'text' | 'image' | 'audio' | 'video';

/** Order in which DashScope lists modalities (and the emulator reports usage). */
export const EMU_MODALITIES: readonly EmuModality[] = ['text', 'image', 'audio', 'video'];

/** Synchronous text embedding (native text-embedding endpoint and compatible-mode /embeddings). */
export interface EmuTextModel {
  api: 'text-embedding';
  name: string;
  /** Texts per call. */
  rows: number;
  /** Qwen3 tokens per text. */
  tokensPerText: number;
  dimensions: readonly number[];
  defaultDimension: number;
  /** output_type sparse / dense&sparse. */
  sparse: boolean;
}

/** Batch text embedding: same path with X-DashScope-Async: enable; DashScope reads the file itself. */
export interface EmuBatchModel {
  api: 'batch-text-embedding';
  name: string;
  linesPerFile: number;
  tokensPerLine: number;
}

export interface EmuTextLimit {
  /** Longest text item. */
  max: number;
  unit: 'characters' | 'tokens';
  /** `reject`: 400 unless parameters.auto_truncation is true. `truncate`: DashScope cuts it itself. */
  whenLonger: 'reject' | 'truncate';
}

export interface EmuMultimodalModel {
  api: 'multimodal-embedding';
  name: string;
  /** Content items per call (not reliably documented; 20 is the lenient reading). */
  rows: number;
  modalities: readonly EmuModality[];
  text: EmuTextLimit;
  dimensions: readonly number[];
  defaultDimension: number;
  /** `fused`: one `output.embedding` for the call; `per-item`: `output.embeddings[]`, one per content. */
  output: 'fused' | 'per-item';
  /** Whether parameters.enable_fusion=true turns per-item output into one fused item. */
  enableFusion: boolean;
}

/** Qwen-VL conversation models (native multimodal-generation and compatible-mode chat). */
export interface EmuChatModel {
  api: 'multimodal-generation';
  name: string;
  media: readonly ('image' | 'video')[];
}

export type EmuModel = EmuTextModel | EmuBatchModel | EmuMultimodalModel | EmuChatModel;

const text = (
  name: string,
  rows: number,
  tokensPerText: number,
  dimensions: readonly number[],
  defaultDimension: number,
  sparse: boolean,
): EmuTextModel => ({
  api: 'text-embedding',
  name,
  rows,
  tokensPerText,
  dimensions,
  defaultDimension,
  sparse,
});

const chat = (name: string, media: readonly ('image' | 'video')[]): EmuChatModel => ({
  api: 'multimodal-generation',
  name,
  media,
});

const VISION = ['image', 'video'] as const;

export const EMULATED_MODELS: readonly EmuModel[] = [
  // v1/v2: 25 texts x 2,048 tokens, 1,536 dimensions only.
  text('text-embedding-v1', 25, 2048, [1536], 1536, false),
  text('text-embedding-v2', 25, 2048, [1536], 1536, false),
  // v3: 10 texts (it was 6, then 20, then 10) x 8,192 tokens; 256/128/64 only in the later docs.
  text('text-embedding-v3', 10, 8192, [1024, 768, 512, 256, 128, 64], 1024, true),
  text('text-embedding-v4', 10, 8192, [2048, 1536, 1024, 768, 512, 256, 128, 64], 1024, true),
  // Batch: 100,000 lines x 2,048 tokens per file.
  {
    api: 'batch-text-embedding',
    name: 'text-embedding-async-v1',
    linesPerFile: 100_000,
    tokensPerLine: 2048,
  },
  {
    api: 'batch-text-embedding',
    name: 'text-embedding-async-v2',
    linesPerFile: 100_000,
    tokensPerLine: 2048,
  },
  {
    api: 'multimodal-embedding',
    name: 'multimodal-embedding-one-peace-v1',
    rows: 20,
    modalities: ['text', 'image', 'audio'],
    // "70 字" on the API page: characters, rejected unless auto_truncation.
    text: { max: 70, unit: 'characters', whenLonger: 'reject' },
    dimensions: [1536],
    defaultDimension: 1536,
    output: 'fused',
    enableFusion: false,
  },
  {
    api: 'multimodal-embedding',
    name: 'multimodal-embedding-v1',
    rows: 20,
    modalities: ['text', 'image', 'video'],
    text: { max: 512, unit: 'tokens', whenLonger: 'truncate' },
    dimensions: [1024],
    defaultDimension: 1024,
    output: 'per-item',
    enableFusion: false,
  },
  {
    api: 'multimodal-embedding',
    name: 'tongyi-embedding-vision-plus',
    rows: 20,
    modalities: ['text', 'image', 'video'],
    text: { max: 1024, unit: 'tokens', whenLonger: 'truncate' },
    dimensions: [1152, 1024, 512, 256, 128, 64],
    defaultDimension: 1152,
    output: 'per-item',
    enableFusion: false,
  },
  {
    api: 'multimodal-embedding',
    name: 'tongyi-embedding-vision-flash',
    rows: 20,
    modalities: ['text', 'image', 'video'],
    text: { max: 1024, unit: 'tokens', whenLonger: 'truncate' },
    dimensions: [768, 512, 256, 128, 64],
    defaultDimension: 768,
    output: 'per-item',
    enableFusion: false,
  },
  {
    api: 'multimodal-embedding',
    name: 'qwen3-vl-embedding',
    rows: 20,
    modalities: ['text', 'image', 'video'],
    text: { max: 32_000, unit: 'tokens', whenLonger: 'truncate' },
    dimensions: [2560, 2048, 1536, 1024, 768, 512, 256],
    defaultDimension: 2560,
    output: 'per-item',
    enableFusion: true,
  },
  chat('qwen-vl-chat-v1', ['image']),
  chat('qwen-vl-plus', VISION),
  chat('qwen-vl-max', VISION),
  chat('qwen-vl-plus-latest', VISION),
  chat('qwen-vl-max-latest', VISION),
  chat('qwen2.5-vl-72b-instruct', VISION),
  chat('qwen2.5-vl-32b-instruct', VISION),
  chat('qwen2.5-vl-7b-instruct', VISION),
  chat('qwen2.5-vl-3b-instruct', VISION),
  chat('qwen3-vl-plus', VISION),
  chat('qwen3-vl-flash', VISION),
];

export interface EmuCatalog {
  get(name: string): EmuModel | undefined;
}

/**
 * The emulator's model catalog with per-call row overrides applied (DashScope has changed row limits before, and
 * tests play the upstream changing its mind). An override naming an unknown model, or one without a row limit,
 * is a start-up error: it is a typo in a test, not something to ignore.
 */
export function emulatorCatalog(rowLimits: ReadonlyMap<string, number> = new Map()): EmuCatalog {
  const byName = new Map<string, EmuModel>(EMULATED_MODELS.map((m) => [m.name, m]));
  for (const [name, rows] of rowLimits) {
    const m = byName.get(name);
    if (!m) throw new Error(`emulator rowLimits names an unknown model: ${name}`);
    if (m.api !== 'text-embedding' && m.api !== 'multimodal-embedding') {
      throw new Error(`emulator rowLimits names ${name}, which has no per-call row limit`);
    }
    byName.set(name, { ...m, rows });
  }
  return { get: (name) => byName.get(name) };
}
