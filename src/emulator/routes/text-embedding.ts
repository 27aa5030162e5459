/**
 * Text embedding, native (`/api/v1/services/embeddings/text-embedding/text-embedding`) and compatible mode
 * (`/compatible-mode/v1/embeddings`), as the contract describes: batch-size and input-length errors worded as
 * DashScope words them, embeddings sorted by text_index, sparse output on request, float-only compat mode.
 */
import { z } from 'zod';
import type { EmuCatalog, EmuTextModel } from '../limits.js';
import { qwenTokensAtLeast, usageTokens } from '../qwen-length.js';
import { type EmulatorRoute, HttpError, parseJson } from '../route.js';
import { sparseFor, vectorFor } from '../vectors.js';
import { asyncRequested, createTextEmbeddingTask } from './tasks.js';

const NativeTextBody = z.object({
  model: z.string(),
  input: z.object({ texts: z.array(z.unknown()) }),
  parameters: z.record(z.string(), z.unknown()).optional(),
});
const CompatBody = z.object({
  model: z.string(),
  input: z.union([z.string(), z.array(z.unknown())]),
  dimensions: z.number().optional(),
});

const BAD_PARAMS = 'Required parameter(s) missing or invalid, please check the request parameters.';

/** The text-embedding model a call names, or DashScope's unknown-model 400. */
function textModel(catalog: EmuCatalog, name: string): EmuTextModel {
  const model = catalog.get(name);
  if (model?.api !== 'text-embedding') throw new HttpError(400, 'InvalidParameter', 'Model not exist.');
  return model;
}

/**
 * The texts of a call, checked as DashScope checks them. Length uses a lower bound on Qwen3 tokens
 * (qwen-length.ts), so a text the gateway let through as within the limit is never refused here by mistake,
 * while a gateway that lets a grossly long text through is caught.
 */
function checkTexts(model: EmuTextModel, texts: unknown[]): string[] {
  if (texts.length > model.rows) {
    throw new HttpError(
      400,
      'InvalidParameter',
      `batch size is invalid, it should not be larger than ${model.rows}.: input.contents`,
    );
  }
  for (const t of texts) {
    if (typeof t !== 'string' || t.length === 0 || qwenTokensAtLeast(t) > model.tokensPerText) {
      throw new HttpError(
        400,
        'InvalidParameter',
        `Range of input length should be [1, ${model.tokensPerText}]`,
      );
    }
  }
  return texts as string[];
}

function dimensionFor(model: EmuTextModel, asked: unknown): number {
  if (asked === undefined) return model.defaultDimension;
  if (typeof asked !== 'number' || !model.dimensions.includes(asked)) {
    throw new HttpError(
      400,
      'InvalidParameter',
      `Value error, dimension should be one of ${model.dimensions.join(', ')}`,
    );
  }
  return asked;
}

export const nativeTextEmbedding: EmulatorRoute = {
  method: 'POST',
  path: '/api/v1/services/embeddings/text-embedding/text-embedding',
  dialect: 'native',
  cacheable: true,
  handle(ctx) {
    // Same path, async batch task when X-DashScope-Async: enable (docs/dashscope-contract.md §1.2): see tasks.ts.
    if (asyncRequested(ctx)) return createTextEmbeddingTask(ctx);
    const { body, catalog, requestId } = ctx;
    const parsed = NativeTextBody.safeParse(parseJson(body));
    if (!parsed.success) throw new HttpError(400, 'InvalidParameter', BAD_PARAMS);
    const { model, input, parameters = {} } = parsed.data;
    const entry = textModel(catalog, model);
    const texts = checkTexts(entry, input.texts);
    const dim = dimensionFor(entry, parameters.dimension);
    const outputType = parameters.output_type ?? 'dense';
    if (outputType !== 'dense' && outputType !== 'sparse' && outputType !== 'dense&sparse') {
      throw new HttpError(
        400,
        'InvalidParameter',
        'output_type should be one of dense, sparse, dense&sparse',
      );
    }
    const embeddings = texts.map((text, i) => {
      const item: Record<string, unknown> = {};
      if (outputType !== 'sparse') item.embedding = vectorFor(text, dim, model);
      if (outputType !== 'dense') item.sparse_embedding = sparseFor(text);
      item.text_index = i;
      return item;
    });
    const total = texts.reduce((s, t) => s + usageTokens(t), 0);
    return {
      status: 200,
      body: { output: { embeddings }, usage: { total_tokens: total }, request_id: requestId },
    };
  },
};

export const compatEmbeddings: EmulatorRoute = {
  method: 'POST',
  path: '/compatible-mode/v1/embeddings',
  dialect: 'compat',
  cacheable: true,
  handle({ body, catalog, requestId }) {
    const parsed = CompatBody.safeParse(parseJson(body));
    if (!parsed.success) throw new HttpError(400, 'InvalidParameter', BAD_PARAMS);
    const { model, input, dimensions } = parsed.data;
    const entry = textModel(catalog, model);
    const texts = checkTexts(entry, typeof input === 'string' ? [input] : input);
    const dim = dimensionFor(entry, dimensions);
    // Compatible mode is float-only (docs/dashscope-contract.md §2.5): `encoding_format` is ignored, as upstream documents.
    const data = texts.map((text, index) => ({
      embedding: vectorFor(text, dim, model),
      index,
      object: 'embedding',
    }));
    const total = texts.reduce((s, t) => s + usageTokens(t), 0);
    return {
      status: 200,
      body: {
        data,
        model,
        object: 'list',
        usage: { prompt_tokens: total, total_tokens: total },
        id: requestId,
      },
    };
  },
};
