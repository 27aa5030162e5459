/**
 * Native DashScope multimodal-embedding (`/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding`)
 * → the same upstream endpoint, validated first. The body is forwarded as the caller sent it (contents in order,
 * `parameters` including unknown keys, which SDKs put there for any extra kwarg), and the upstream reply is passed
 * through once it has been checked.
 * @see https://help.aliyun.com/zh/model-studio/developer-reference/multimodal-embedding-api-reference
 */
import { z } from 'zod';
import {
  checkContents,
  checkParameters,
  type MultimodalEmbeddingJob,
} from '../embeddings/multimodal-pipeline.js';
import { invalidInput } from '../errors.js';
import type { MultimodalEmbeddingModel } from '../models/multimodal-embedding.js';

export const NativeMultimodalEmbeddingBody = z.object({
  model: z.string().min(1, 'must name a model'),
  input: z.object({
    contents: z.array(
      z.record(z.string(), z.unknown(), {
        error: 'must be an object with one of text, image, audio, video (and optionally factor)',
      }),
      { error: 'must be an array of content objects' },
    ),
  }),
  parameters: z.record(z.string(), z.unknown(), { error: 'must be an object' }).optional(),
});
export type NativeMultimodalEmbeddingRequest = z.infer<typeof NativeMultimodalEmbeddingBody>;

export async function nativeToMultimodalJob(
  req: NativeMultimodalEmbeddingRequest,
  model: MultimodalEmbeddingModel,
  maxInputs: number,
): Promise<MultimodalEmbeddingJob> {
  const contents = req.input.contents;
  if (contents.length === 0) throw invalidInput('input.contents', 'must contain at least one item');
  const limit = Math.min(model.maxRows, maxInputs);
  if (contents.length > limit) {
    throw invalidInput(
      'input.contents',
      `has ${contents.length} items; ${model.name} takes at most ${limit} per call through this gateway`,
    );
  }
  const params = checkParameters(req.parameters ?? {}, model, ['parameters']);
  const { ossResolve } = await checkContents(
    contents,
    model,
    { autoTruncation: params.autoTruncation, autoTruncationParam: 'parameters.auto_truncation' },
    (i, field) => `input.contents[${i}]${field ? `.${field}` : ''}`,
  );
  return {
    model,
    contents,
    parameters: req.parameters,
    dimension: params.dimension,
    fused: params.fused,
    ossResolve,
  };
}
