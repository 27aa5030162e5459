/**
 * OpenAI `POST /v1/embeddings` with a multimodal model → DashScope native multimodal-embedding, and back.
 *
 * The extension: `input` may be a string, an array of strings (each a text item) or an array mixing strings and
 * DashScope content objects (`{"image": "https://…"}`, `{"text": "…", "factor": 2}`). DashScope parameters that
 * OpenAI has no name for are read from top-level fields of the same name (`auto_truncation`, `enable_fusion`, `fps`,
 * `instruct`, `res_level`, `max_video_frames`); `dimensions` becomes `parameters.dimension`.
 *
 * Reply: a per-item model gives `data[i]` for `input[i]`; ONE-PEACE (and `enable_fusion`) give one fused vector as
 * `data[0]`. float or base64, as asked.
 */
import {
  checkContents,
  checkParameters,
  type MultimodalEmbeddingJob,
  type MultimodalEmbeddingResult,
} from '../embeddings/multimodal-pipeline.js';
import { invalidInput } from '../errors.js';
import type { Parts } from '../http/parts-body.js';
import type { MultimodalEmbeddingModel } from '../models/multimodal-embedding.js';
import type { OpenAIEmbeddingsRequest } from './openai-embeddings-schema.js';
import { renderOpenAIEmbeddings } from './openai-render.js';

/** Top-level body fields passed on as DashScope `parameters`. */
const EXTENSION_FIELDS = [
  'auto_truncation',
  'enable_fusion',
  'fps',
  'instruct',
  'res_level',
  'max_video_frames',
];

/** `raw` is the request body as received: the extension fields are not part of the OpenAI schema. */
export async function openAIToMultimodalJob(
  req: OpenAIEmbeddingsRequest,
  raw: unknown,
  model: MultimodalEmbeddingModel,
): Promise<MultimodalEmbeddingJob> {
  const single = typeof req.input === 'string';
  const inputs: unknown[] = typeof req.input === 'string' ? [req.input] : req.input;
  const item = (i: number): string => (single ? 'input' : `input[${i}]`);
  // A string input became a text item: the caller knows it as `input[i]`, not `input[i].text`.
  const param = (i: number, field?: string): string =>
    field && typeof inputs[i] !== 'string' ? `${item(i)}.${field}` : item(i);
  const contents = inputs.map((x, i) => {
    if (typeof x === 'string') return { text: x };
    if (x !== null && typeof x === 'object' && !Array.isArray(x)) return x as Record<string, unknown>;
    throw invalidInput(
      item(i),
      'must be a string or a content object with one of text, image, audio, video (and optionally factor)',
    );
  });

  const parameters: Record<string, unknown> = {};
  const body = raw as Record<string, unknown>;
  for (const key of EXTENSION_FIELDS) if (body[key] !== undefined) parameters[key] = body[key];
  if (req.dimensions !== undefined) {
    if (!model.dimensions.includes(req.dimensions)) {
      throw invalidInput(
        'dimensions',
        `${model.name} supports ${model.dimensions.join(', ')}; got ${req.dimensions}`,
      );
    }
    // A fixed-dimension model is not sent a dimension it has no choice about.
    if (model.dimensions.length > 1) parameters.dimension = req.dimensions;
  }
  const params = checkParameters(parameters, model, []);
  if (params.fused && contents.length > model.maxRows) {
    throw invalidInput(
      'input',
      `has ${contents.length} items; ${model.name} fuses at most ${model.maxRows} items into one vector per call`,
    );
  }
  const { ossResolve } = await checkContents(
    contents,
    model,
    { autoTruncation: params.autoTruncation, autoTruncationParam: 'auto_truncation' },
    param,
  );
  return {
    model,
    contents,
    parameters: Object.keys(parameters).length > 0 ? parameters : undefined,
    dimension: req.dimensions,
    fused: params.fused,
    ossResolve,
    decode: req.encoding_format === 'base64',
  };
}

export function multimodalResultToOpenAI(
  req: OpenAIEmbeddingsRequest,
  result: MultimodalEmbeddingResult,
): Parts {
  return renderOpenAIEmbeddings(req.model, result.vectors, result.tokens, req.encoding_format ?? 'float');
}
