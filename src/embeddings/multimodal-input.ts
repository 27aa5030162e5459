/**
 * The checks a multimodal-embedding request passes before any upstream call, whichever API it came in through:
 * the documented `parameters` per model, and each content item (one modality per item, factor, text length, media
 * URL policy and, for inline data, size / real format / audio duration: src/media/).
 */
import { z } from 'zod';
import { invalidInput } from '../errors.js';
import { audioDurationSeconds, checkInlineMedia, formatBytes } from '../media/inspect.js';
import { classifyMedia } from '../media/url-policy.js';
import { MODALITIES, type Modality, type MultimodalEmbeddingModel } from '../models/multimodal-embedding.js';
import { parseBody } from '../validation.js';

/** A validated multimodal-embedding request, whichever API it came in through. */
export interface MultimodalEmbeddingJob {
  model: MultimodalEmbeddingModel;
  /** Content items as sent upstream, in the caller's order. */
  contents: Record<string, unknown>[];
  /** Upstream `parameters` (validated known keys plus passed-on unknown ones); omitted when undefined. */
  parameters: Record<string, unknown> | undefined;
  /** The dimension asked for; when undefined a reply may carry any of the model's dimensions. */
  dimension: number | undefined;
  /** One vector for the whole call: ONE-PEACE always, per-item models with `enable_fusion`. */
  fused: boolean;
  /** Some value is an `oss://` URL: the upstream call must carry X-DashScope-OssResourceResolve: enable. */
  ossResolve: boolean;
  /** Decode the vectors to float32 while checking the reply (the caller wants base64): one pass, not two. */
  decode?: boolean;
}

/** Documented `parameters` of the multimodal-embedding endpoint; any other key is passed on unchecked. */
const KnownParameters = z.object({
  auto_truncation: z.boolean({ error: 'must be true or false' }).optional(),
  dimension: z.number({ error: 'must be an integer' }).int('must be an integer').positive().optional(),
  output_type: z
    .literal('dense', { error: 'only "dense" is available for multimodal embeddings' })
    .optional(),
  fps: z
    .number({ error: 'must be a number between 0 and 1' })
    .min(0, 'must be between 0 and 1 (the share of video frames sampled)')
    .max(1, 'must be between 0 and 1 (the share of video frames sampled)')
    .optional(),
  instruct: z.string({ error: 'must be a string' }).optional(),
  enable_fusion: z.boolean({ error: 'must be true or false' }).optional(),
  res_level: z.number().int().min(0, 'must be 0, 1, 2 or 3').max(3, 'must be 0, 1, 2 or 3').optional(),
  max_video_frames: z.number().int().min(1).max(64, 'must be at most 64').optional(),
});

export interface CheckedParameters {
  autoTruncation: boolean;
  dimension: number | undefined;
  fused: boolean;
}

/**
 * Validates the known parameters for `model`. `prefix` is where they sit in the caller's body
 * (`['parameters']` natively, `[]` for OpenAI-shaped extension fields).
 */
export function checkParameters(
  params: Record<string, unknown>,
  model: MultimodalEmbeddingModel,
  prefix: readonly string[],
): CheckedParameters {
  const known = parseBody(KnownParameters, params, prefix);
  const name = (key: string): string => [...prefix, key].join('.');
  if (known.dimension !== undefined && !model.dimensions.includes(known.dimension)) {
    throw invalidInput(
      name('dimension'),
      `${model.name} supports ${model.dimensions.join(', ')}; got ${known.dimension}`,
    );
  }
  if (known.enable_fusion === true && !model.fusion) {
    throw invalidInput(
      name('enable_fusion'),
      `${model.name} does not fuse contents; it answers ${model.output === 'fused' ? 'with one fused vector anyway' : 'with one vector per item'}`,
    );
  }
  return {
    autoTruncation: known.auto_truncation === true,
    dimension: known.dimension,
    fused: model.output === 'fused' || known.enable_fusion === true,
  };
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 20 ? `${v.slice(0, 20)}…` : v)}`;
  if (typeof v === 'number') return String(v);
  return Array.isArray(v) ? 'an array' : typeof v;
}

export interface ContentCheckOptions {
  autoTruncation: boolean;
  /** How the caller spells auto_truncation, for messages (`parameters.auto_truncation` natively). */
  autoTruncationParam: string;
}

/**
 * Checks every content item against `model`'s row. `param(i, field)` names item i, or a field of it, as the caller
 * wrote it (`input.contents[2].image`, `input[2].image`, or `input[2]` for an OpenAI string that became a text item).
 * Returns whether any value needs DashScope to resolve `oss://`.
 */
export async function checkContents(
  contents: readonly Record<string, unknown>[],
  model: MultimodalEmbeddingModel,
  opts: ContentCheckOptions,
  param: (i: number, field?: string) => string,
): Promise<{ ossResolve: boolean }> {
  const takes = MODALITIES.filter((m) => model.modalities[m] !== undefined);
  let ossResolve = false;
  for (let i = 0; i < contents.length; i++) {
    const item = contents[i]!;
    const at = param(i);
    const present = MODALITIES.filter((m) => Object.hasOwn(item, m));
    if (present.length === 0) {
      const others = Object.keys(item).filter((k) => k !== 'factor');
      throw invalidInput(
        at,
        `has no content: give exactly one of ${takes.join(', ')}${others.length > 0 ? ` (found ${others.join(', ')})` : ''}`,
      );
    }
    if (present.length > 1) {
      throw invalidInput(
        at,
        `has ${present.join(' and ')}; an item carries exactly one modality, so put each in its own item`,
      );
    }
    const modality = present[0]!;
    if (!takes.includes(modality)) {
      throw invalidInput(
        param(i, modality),
        `${model.name} does not take ${modality}; it takes ${takes.join(', ')}`,
      );
    }
    if (Object.hasOwn(item, 'factor')) {
      const f = item.factor;
      if (typeof f !== 'number' || !Number.isFinite(f) || f <= 0) {
        throw invalidInput(
          param(i, 'factor'),
          `must be a finite number greater than 0 (the item's weight, default 1); got ${describe(f)}`,
        );
      }
    }
    const value = item[modality];
    if (modality === 'text') {
      checkText(value, model, opts, param(i, 'text'));
      continue;
    }
    if (await checkMedia(value, modality, model, opts, param(i, modality))) ossResolve = true;
  }
  return { ossResolve };
}

function checkText(
  value: unknown,
  model: MultimodalEmbeddingModel,
  opts: ContentCheckOptions,
  at: string,
): void {
  if (typeof value !== 'string') throw invalidInput(at, `must be a string; got ${describe(value)}`);
  if (value.length === 0) throw invalidInput(at, 'must not be empty');
  const rule = model.modalities.text!;
  // Only a model that rejects over-long text is checked; the others truncate upstream (documented).
  if (rule.overLimit !== 'reject' || opts.autoTruncation) return;
  const length = rule.unit === 'characters' ? [...value].length : undefined;
  if (length !== undefined && length > rule.limit) {
    throw invalidInput(
      at,
      `is ${length} characters; ${model.name} accepts at most ${rule.limit} unless ${opts.autoTruncationParam} is true`,
    );
  }
}

/** Returns true when the value is an `oss://` URL. */
async function checkMedia(
  value: unknown,
  modality: Exclude<Modality, 'text'>,
  model: MultimodalEmbeddingModel,
  opts: ContentCheckOptions,
  at: string,
): Promise<boolean> {
  const rule = model.modalities[modality]!;
  const ref = classifyMedia(value, at);
  if (ref.kind === 'oss') return true;
  if (ref.kind === 'url') return false;
  if (!rule.inline) {
    throw invalidInput(
      at,
      `${model.name} takes ${modality} as a URL only (http(s):// or oss://, at most ${formatBytes(rule.maxBytes)}); inline data: URIs are refused`,
    );
  }
  const media = await checkInlineMedia(ref.bytes, ref.declaredMime, modality, rule, model.name, at);
  if (rule.maxSeconds !== undefined && !opts.autoTruncation) {
    const seconds = await audioDurationSeconds(ref.bytes, media.mime, at);
    if (seconds !== undefined && seconds > rule.maxSeconds) {
      throw invalidInput(
        at,
        `the inline ${modality} is ${Math.round(seconds * 1000) / 1000} s long; ${model.name} accepts at most ${rule.maxSeconds} s unless ${opts.autoTruncationParam} is true`,
      );
    }
  }
  return false;
}
