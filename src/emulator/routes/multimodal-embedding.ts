/**
 * Multimodal embedding (`/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding`), as the contract
 * describes it:
 * - ONE-PEACE answers one fused vector `output.embedding` with weighted usage
 *   `{text|image|audio: {measure, weight}, total_usage}`;
 * - the other models answer `output.embeddings[{index, embedding, type}]` with usage
 *   `{input_tokens, image_count, duration}`; qwen3-vl-embedding with `enable_fusion` answers one item (type
 *   `fusion`; the real shape is uncertain).
 * Errors as DashScope words them: the batch-size message, InvalidParameter for a modality the model does not take,
 * over-long ONE-PEACE text without auto_truncation, `oss://` without X-DashScope-OssResourceResolve.
 * Vectors are deterministic: tests compute them with `itemVector` / `fusedVector` below.
 */
import { z } from 'zod';
import { EMU_MODALITIES, type EmuModality, type EmuMultimodalModel } from '../limits.js';
import { qwenTokensAtLeast, usageTokens } from '../qwen-length.js';
import { type EmulatorRoute, HttpError, parseJson } from '../route.js';
import { vectorFor } from '../vectors.js';

const Body = z.object({
  model: z.string(),
  input: z.object({ contents: z.array(z.record(z.string(), z.unknown())) }),
  parameters: z.record(z.string(), z.unknown()).optional(),
});

const BAD_PARAMS = 'Required parameter(s) missing or invalid, please check the request parameters.';

export interface EmulatedItem {
  modality: EmuModality;
  /** The item's text or media value, exactly as sent. */
  value: string;
  factor?: number;
}

/** The vector the emulator gives one content item. */
export function itemVector(model: string, modality: EmuModality, value: string, dim: number): number[] {
  return vectorFor(`${modality}:${value}`, dim, model);
}

/**
 * The fused vector (ONE-PEACE, or enable_fusion): the factor-weighted sum of the item vectors, normalised to unit
 * length and rounded to float32 (factor defaults to 1, as upstream documents).
 */
export function fusedVector(model: string, items: readonly EmulatedItem[], dim: number): number[] {
  const sum = new Array<number>(dim).fill(0);
  for (const it of items) {
    const v = itemVector(model, it.modality, it.value, dim);
    const f = it.factor ?? 1;
    for (let i = 0; i < dim; i++) sum[i]! += f * v[i]!;
  }
  let norm = 0;
  for (const x of sum) norm += x * x;
  const scale = 1 / Math.sqrt(norm || 1);
  return sum.map((x) => Math.fround(x * scale));
}

function readItems(model: EmuMultimodalModel, contents: Record<string, unknown>[], headerOss: boolean) {
  return contents.map((c): EmulatedItem => {
    const present = EMU_MODALITIES.filter((m) => c[m] !== undefined);
    if (present.length !== 1) throw new HttpError(400, 'InvalidParameter', BAD_PARAMS);
    const modality = present[0]!;
    if (!model.modalities.includes(modality)) {
      throw new HttpError(
        400,
        'InvalidParameter',
        `The input modality [${modality}] is not supported by model ${model.name}.`,
      );
    }
    const value = c[modality];
    if (typeof value !== 'string' || value === '') throw new HttpError(400, 'InvalidParameter', BAD_PARAMS);
    if (value.startsWith('oss://') && !headerOss) {
      throw new HttpError(400, 'InvalidURL', 'Invalid URL provided in your request.');
    }
    const factor = c.factor;
    if (factor !== undefined && (typeof factor !== 'number' || !(factor > 0))) {
      throw new HttpError(400, 'InvalidParameter', 'factor must be a positive float.');
    }
    return factor === undefined ? { modality, value } : { modality, value, factor };
  });
}

export const multimodalEmbedding: EmulatorRoute = {
  method: 'POST',
  path: '/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding',
  dialect: 'native',
  cacheable: true,
  handle({ body, catalog, requestId, req }) {
    const parsed = Body.safeParse(parseJson(body));
    if (!parsed.success) throw new HttpError(400, 'InvalidParameter', BAD_PARAMS);
    const { input, parameters = {} } = parsed.data;
    const model = catalog.get(parsed.data.model);
    if (model?.api !== 'multimodal-embedding')
      throw new HttpError(400, 'InvalidParameter', 'Model not exist.');
    if (input.contents.length === 0) {
      throw new HttpError(400, 'BadRequest.EmptyInput', 'Required input parameter missing from request.');
    }
    if (input.contents.length > model.rows) {
      throw new HttpError(
        400,
        'InvalidParameter',
        `batch size is invalid, it should not be larger than ${model.rows}.: input.contents`,
      );
    }
    const headerOss = String(req.headers['x-dashscope-ossresourceresolve'] ?? '').toLowerCase() === 'enable';
    const items = readItems(model, input.contents, headerOss);
    const asked = parameters.dimension;
    if (asked !== undefined && (typeof asked !== 'number' || !model.dimensions.includes(asked))) {
      throw new HttpError(
        400,
        'InvalidParameter',
        `Value error, dimension should be one of ${model.dimensions.join(', ')}`,
      );
    }
    const dim = (asked as number | undefined) ?? model.defaultDimension;
    const text = model.text;
    if (text.whenLonger === 'reject' && parameters.auto_truncation !== true) {
      for (const it of items) {
        const length = text.unit === 'characters' ? [...it.value].length : qwenTokensAtLeast(it.value);
        if (it.modality === 'text' && length > text.max) {
          throw new HttpError(400, 'InvalidParameter', `Range of input length should be [1, ${text.max}]`);
        }
      }
    }

    if (model.output === 'fused') {
      const usage: Record<string, unknown> = {};
      let total = 0;
      for (const m of EMU_MODALITIES) {
        const measure = items.filter((it) => it.modality === m).length;
        if (measure === 0) continue;
        usage[m] = { measure, weight: 1 };
        total += measure;
      }
      usage.total_usage = total;
      return {
        status: 200,
        body: { output: { embedding: fusedVector(model.name, items, dim) }, usage, request_id: requestId },
      };
    }

    const usage = {
      input_tokens: items.reduce((s, it) => s + (it.modality === 'text' ? usageTokens(it.value) : 0), 0),
      image_count: items.filter((it) => it.modality === 'image').length,
      duration: 0,
    };
    const embeddings =
      model.enableFusion && parameters.enable_fusion === true
        ? [{ index: 0, embedding: fusedVector(model.name, items, dim), type: 'fusion' }]
        : items.map((it, index) => ({
            index,
            embedding: itemVector(model.name, it.modality, it.value, dim),
            type: it.modality,
          }));
    return { status: 200, body: { output: { embeddings }, usage, request_id: requestId } };
  },
};
