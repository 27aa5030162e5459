/**
 * What both multimodal-embedding front doors (native multimodal-embedding and OpenAI /v1/embeddings) share:
 * per-item checks before any upstream call (one modality per item, factor, text length, media URL policy and, for
 * inline data, size / real format / audio duration), the upstream call(s), and the strict check of each reply.
 * The caller-facing shapes are built by the translator modules in ../translate/.
 */
import { z } from 'zod';
import { GatewayError, invalidInput } from '../errors.js';
import { audioDurationSeconds, checkInlineMedia, formatBytes } from '../media/inspect.js';
import { classifyMedia } from '../media/url-policy.js';
import { MODALITIES, type Modality, type MultimodalEmbeddingModel } from '../models/multimodal-embedding.js';
import type { VectorRef } from '../translate/openai-render.js';
import { ScanError, type ScannedEmbeddingReply, scanEmbeddingReply } from '../upstream/embedding-scan.js';
import { upstreamFailure } from '../upstream/errors.js';
import { parseBody } from '../validation.js';
import type { CallContext } from './text-pipeline.js';

export const MULTIMODAL_EMBEDDING_PATH =
  '/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding';

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

export interface MultimodalEmbeddingResult {
  /** One vector (fused) or one per content item, in input order. */
  vectors: VectorRef[];
  /** Usage as a single number for OpenAI-shaped replies (tokens, or ONE-PEACE's weighted total). */
  tokens: number;
  /** DashScope request ids, one per upstream call. */
  upstreamRequestIds: string[];
  /** The raw upstream body when exactly one call served the request. */
  passthrough: Buffer | undefined;
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

function badReply(message: string, cause?: unknown): GatewayError {
  return new GatewayError('UPSTREAM_BAD_RESPONSE', `DashScope sent an unusable reply: ${message}`, { cause });
}

/** A usage number: text tokens where the model reports them, else ONE-PEACE's weighted total. */
function usageNumber(usage: Record<string, unknown> | undefined): number {
  for (const key of ['total_tokens', 'input_tokens', 'total_usage']) {
    const v = usage?.[key];
    if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return v;
  }
  return 0;
}

interface ChunkReply {
  vectors: VectorRef[];
  dims: number;
  tokens: number;
  requestId: string;
  buf: Buffer;
}

/** Strict check of one reply: the right shape, one vector per item (or one fused), consistent dimensions. */
function checkReply(buf: Buffer, count: number, job: MultimodalEmbeddingJob, fallbackId: string): ChunkReply {
  let scanned: ScannedEmbeddingReply;
  try {
    scanned = scanEmbeddingReply(buf, { decode: job.decode === true });
  } catch (err) {
    throw badReply(err instanceof ScanError ? err.message : 'not JSON', err);
  }
  const vectors: VectorRef[] = [];
  const dimsSeen: number[] = [];
  if (job.fused) {
    if (scanned.fused) {
      vectors.push({ buf, span: scanned.fused.embedding, values: scanned.fused.values });
      dimsSeen.push(scanned.fused.dims);
    } else if (job.model.output === 'per-item' && scanned.items.length === 1 && scanned.items[0]!.embedding) {
      // enable_fusion: the exact upstream shape is uncertain; one item in `embeddings` is accepted too.
      vectors.push({ buf, span: scanned.items[0]!.embedding, values: scanned.items[0]!.values });
      dimsSeen.push(scanned.items[0]!.dims);
    } else {
      throw badReply('expected one fused embedding');
    }
  } else {
    if (scanned.items.length !== count) {
      throw badReply(`${scanned.items.length} embeddings for ${count} contents`);
    }
    const ordered = new Array<VectorRef>(count);
    for (let k = 0; k < scanned.items.length; k++) {
      const item = scanned.items[k]!;
      if (item.index < 0 || item.index >= count || ordered[item.index]) {
        throw badReply(`item ${k} has a missing, out-of-range or repeated index`);
      }
      if (!item.embedding) throw badReply(`index ${item.index} has no embedding`);
      ordered[item.index] = { buf, span: item.embedding, values: item.values };
      dimsSeen.push(item.dims);
    }
    vectors.push(...ordered);
  }
  const dims = dimsSeen[0]!;
  for (const d of dimsSeen) {
    if (job.dimension !== undefined ? d !== job.dimension : !job.model.dimensions.includes(d) || d !== dims) {
      throw badReply(
        `an embedding has ${d} dimensions, expected ${job.dimension ?? `one of ${job.model.dimensions.join(', ')}`}`,
      );
    }
  }
  return {
    vectors,
    dims,
    tokens: usageNumber(scanned.usage),
    requestId: scanned.requestId ?? fallbackId,
    buf,
  };
}

/**
 * Calls DashScope and checks the replies. A fused job is one call; a per-item job is split into calls of at most
 * the model's row limit (the native route never needs to: it refuses more), run with bounded concurrency, all or
 * nothing. Throws GatewayError; never returns a partial result.
 */
export async function runMultimodalEmbedding(
  ctx: CallContext,
  job: MultimodalEmbeddingJob,
): Promise<MultimodalEmbeddingResult> {
  const size = job.fused ? job.contents.length : job.model.maxRows;
  const chunks: Record<string, unknown>[][] = [];
  for (let i = 0; i < job.contents.length; i += size) chunks.push(job.contents.slice(i, i + size));
  const headers = job.ossResolve ? { 'X-DashScope-OssResourceResolve': 'enable' } : undefined;

  const ac = new AbortController();
  const onAbort = (): void => ac.abort(ctx.signal.reason);
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  const replies = new Array<ChunkReply>(chunks.length);
  let next = 0;
  let failure: unknown;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < chunks.length) {
      const i = next++;
      const contents = chunks[i]!;
      try {
        const body = JSON.stringify({
          model: job.model.name,
          input: { contents },
          ...(job.parameters ? { parameters: job.parameters } : {}),
        });
        const res = await ctx.upstream.call({
          path: MULTIMODAL_EMBEDDING_PATH,
          body,
          headers,
          requestId: ctx.requestId,
          signal: ac.signal,
          trace: ctx.trace,
          idempotent: true,
          model: job.model.name,
        });
        if (res.status !== 200) throw upstreamFailure(res, ctx.secret);
        replies[i] = checkReply(res.body, contents.length, job, res.requestId ?? '');
      } catch (err) {
        if (failure === undefined) failure = err;
        ac.abort();
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(ctx.concurrency, chunks.length) }, worker));
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
  }
  if (failure !== undefined) throw failure;

  const first = replies[0]!;
  for (const r of replies) {
    if (r.dims !== first.dims) throw badReply(`calls answered with ${first.dims} and ${r.dims} dimensions`);
  }
  return {
    vectors: replies.flatMap((r) => r.vectors),
    tokens: replies.reduce((s, r) => s + r.tokens, 0),
    upstreamRequestIds: replies.map((r) => r.requestId),
    passthrough: replies.length === 1 ? first.buf : undefined,
  };
}
