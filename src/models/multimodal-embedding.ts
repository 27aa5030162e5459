/**
 * Multimodal-embedding models (native multimodal-embedding endpoint; also served on /v1/embeddings).
 * One row per model: what it takes (modalities, formats, sizes, lengths), what it answers (one fused vector or one
 * vector per content item) and how many items a call may carry. A new model is a new row.
 *
 * Sources: DashScope "ONE-PEACE multimodal embedding API details", "multimodal embedding API reference" and the
 * embedding model overview (see README "Multimodal models"). Where the upstream documentation is uncertain the
 * row is lenient (the gateway passes the item on and DashScope has the last word); such values are marked below.
 * Sizes are in bytes; "MB" in the DashScope docs is taken as 2^20 bytes.
 */

export type Modality = 'text' | 'image' | 'audio' | 'video';

/** The order used in messages. */
export const MODALITIES: readonly Modality[] = ['text', 'image', 'audio', 'video'];

export interface TextRule {
  /** Longest text, in `unit`. */
  limit: number;
  unit: 'characters' | 'tokens';
  /**
   * `reject`: a longer text is a 400 unless `parameters.auto_truncation` is true (ONE-PEACE).
   * `upstream`: DashScope documents that it truncates over-long text itself, so the gateway passes it on.
   */
  overLimit: 'reject' | 'upstream';
}

export interface MediaRule {
  /** Formats accepted inline, as `file-type` extension names, checked against the bytes (not the declared type). */
  formats: readonly string[];
  /** Largest inline (data URI) payload, decoded. URLs are not fetched by the gateway, so not measured. */
  maxBytes: number;
  /** Whether a base64 data URI is accepted; when false only http(s):// and oss:// URLs are. */
  inline: boolean;
  /** Audio: longest inline duration in seconds; longer is a 400 unless `parameters.auto_truncation` is true. */
  maxSeconds?: number;
}

export interface MultimodalEmbeddingModel {
  kind: 'multimodal-embedding';
  name: string;
  /** The modalities a content item may carry, each with its limits. */
  modalities: { text?: TextRule; image?: MediaRule; audio?: MediaRule; video?: MediaRule };
  /** Allowed `parameters.dimension` values. */
  dimensions: readonly number[];
  /**
   * DashScope's default when the caller asks for none (what the emulator answers). Uncertain for the newer models,
   * so when no dimension was asked the gateway accepts a reply of any of `dimensions`.
   */
  defaultDimension: number;
  /** `fused`: one vector for the whole call (`output.embedding`); `per-item`: one per content (`output.embeddings`). */
  output: 'fused' | 'per-item';
  /** `parameters.enable_fusion: true` makes a per-item model answer with one vector. */
  fusion: boolean;
  /**
   * Content items per upstream call. DashScope does not document it reliably for multimodal models (10 or 20 both
   * appear in batch-size errors), so 20 is used — the lenient choice; MODEL_ROW_LIMITS overrides it per model.
   */
  maxRows: number;
}

const MB = 1024 * 1024;

/** ONE-PEACE image formats, from its API page: bmp, jpg, jpeg, png, tiff (file-type names jpeg `jpg`, tiff `tif`). */
const ONE_PEACE_IMAGES = ['bmp', 'jpg', 'png', 'tif'] as const;
/** multimodal-embedding-v1 image formats: JPG, PNG, BMP. */
const V1_IMAGES = ['jpg', 'png', 'bmp'] as const;
/**
 * Image formats of the newer vision models: not in the stored docs (uncertain), so the v1 set plus the common
 * formats the Qwen-VL family reads; DashScope decides.
 */
const VISION_IMAGES = ['jpg', 'png', 'bmp', 'tif', 'webp', 'heic'] as const;
/** Video: MP4, MPEG/MPG, WEBM, AVI, FLV, MKV, MOV (m4v is how file-type names some MP4 brands). */
const VIDEOS = ['mp4', 'm4v', 'mpg', 'webm', 'avi', 'flv', 'mkv', 'mov'] as const;

export const MULTIMODAL_EMBEDDING_MODELS: readonly MultimodalEmbeddingModel[] = [
  {
    kind: 'multimodal-embedding',
    name: 'multimodal-embedding-one-peace-v1',
    modalities: {
      // "70 字": counted in characters (code points). The Python SDK docstring says "words"; the API page wins.
      text: { limit: 70, unit: 'characters', overLimit: 'reject' },
      image: { formats: ONE_PEACE_IMAGES, maxBytes: 5 * MB, inline: true },
      audio: { formats: ['wav', 'mp3', 'flac'], maxBytes: 5 * MB, inline: true, maxSeconds: 15 },
    },
    dimensions: [1536],
    defaultDimension: 1536,
    output: 'fused',
    fusion: false,
    maxRows: 20,
  },
  {
    kind: 'multimodal-embedding',
    name: 'multimodal-embedding-v1',
    modalities: {
      // Over-long text is truncated upstream (model overview, "调用限制"), so it is passed on.
      text: { limit: 512, unit: 'tokens', overLimit: 'upstream' },
      image: { formats: V1_IMAGES, maxBytes: 3 * MB, inline: true },
      // "仅支持以URL形式输入视频文件": URL only.
      video: { formats: VIDEOS, maxBytes: 10 * MB, inline: false },
    },
    dimensions: [1024],
    defaultDimension: 1024,
    output: 'per-item',
    fusion: false,
    maxRows: 20,
  },
  {
    kind: 'multimodal-embedding',
    name: 'tongyi-embedding-vision-plus',
    modalities: {
      // Whether DashScope truncates or rejects over-long text for this model is uncertain: passed on.
      text: { limit: 1024, unit: 'tokens', overLimit: 'upstream' },
      image: { formats: VISION_IMAGES, maxBytes: 3 * MB, inline: true },
      // URL-only is documented for multimodal-embedding-v1 only; inline video is accepted here (uncertain).
      video: { formats: VIDEOS, maxBytes: 10 * MB, inline: true },
    },
    dimensions: [1152, 1024, 512, 256, 128, 64],
    defaultDimension: 1152,
    output: 'per-item',
    fusion: false,
    maxRows: 20,
  },
  {
    kind: 'multimodal-embedding',
    name: 'tongyi-embedding-vision-flash',
    modalities: {
      text: { limit: 1024, unit: 'tokens', overLimit: 'upstream' },
      image: { formats: VISION_IMAGES, maxBytes: 3 * MB, inline: true },
      video: { formats: VIDEOS, maxBytes: 10 * MB, inline: true },
    },
    dimensions: [768, 512, 256, 128, 64],
    defaultDimension: 768,
    output: 'per-item',
    fusion: false,
    maxRows: 20,
  },
  {
    kind: 'multimodal-embedding',
    name: 'qwen3-vl-embedding',
    modalities: {
      text: { limit: 32_000, unit: 'tokens', overLimit: 'upstream' },
      // 5 MB per the tc page (Feb 2026); a third-party digest says 10 MB. The documented value is used.
      image: { formats: VISION_IMAGES, maxBytes: 5 * MB, inline: true },
      video: { formats: VIDEOS, maxBytes: 50 * MB, inline: true },
    },
    dimensions: [2560, 2048, 1536, 1024, 768, 512, 256],
    defaultDimension: 2560,
    output: 'per-item',
    fusion: true,
    maxRows: 20,
  },
];
