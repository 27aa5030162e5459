/**
 * Native DashScope text-embedding (`/api/v1/services/embeddings/text-embedding/text-embedding`) → the same
 * upstream endpoint, validated first and split when a call carries more texts than the model's row limit.
 * Unknown `parameters` keys are passed on untouched (SDKs put any extra kwarg there).
 * @see https://www.alibabacloud.com/help/en/model-studio/text-embedding-synchronous-api
 */
import { z } from 'zod';
import { checkTexts, type TextEmbeddingJob, type TextEmbeddingResult } from '../embeddings/text-pipeline.js';
import { invalidInput } from '../errors.js';
import type { Parts } from '../http/parts-body.js';
import type { TextEmbeddingModel } from '../models/index.js';
import type { TokenChecker } from '../tokens/index.js';
import { parseBody } from '../validation.js';

export const NativeTextEmbeddingBody = z.object({
  model: z.string().min(1, 'must name a model'),
  input: z.object({
    // The SDKs always send an array; a bare string is accepted (lenient on input).
    texts: z.union([z.string(), z.array(z.unknown())], { error: 'must be a string or an array of strings' }),
  }),
  parameters: z.record(z.string(), z.unknown()).optional(),
});
export type NativeTextEmbeddingRequest = z.infer<typeof NativeTextEmbeddingBody>;

const KnownParameters = z.object({
  text_type: z.enum(['query', 'document']).optional(),
  dimension: z.number().int().positive().optional(),
  output_type: z.enum(['dense', 'sparse', 'dense&sparse']).optional(),
  instruct: z.string().optional(),
});

export async function nativeToTextJob(
  req: NativeTextEmbeddingRequest,
  model: TextEmbeddingModel,
  maxInputs: number,
  tokens: TokenChecker,
): Promise<TextEmbeddingJob> {
  const inputs: unknown[] = typeof req.input.texts === 'string' ? [req.input.texts] : req.input.texts;
  if (inputs.length === 0) throw invalidInput('input.texts', 'must contain at least one text');
  if (inputs.length > maxInputs) {
    throw invalidInput(
      'input.texts',
      `has ${inputs.length} texts; the gateway accepts at most ${maxInputs} per request`,
    );
  }
  const { texts, counts } = await checkTexts(inputs, model, (i) => `input.texts[${i}]`, tokens);
  const params = req.parameters ?? {};
  const known = parseBody(KnownParameters, params, ['parameters']);
  const dimension = known.dimension ?? model.defaultDimension;
  if (!model.dimensions.includes(dimension)) {
    throw invalidInput(
      'parameters.dimension',
      `${model.name} supports ${model.dimensions.join(', ')}; got ${dimension}`,
    );
  }
  const outputType = known.output_type ?? 'dense';
  if (outputType !== 'dense' && !model.sparse) {
    throw invalidInput('parameters.output_type', `${model.name} only supports dense output`);
  }
  return { model, texts, tokens: counts.tokens, parameters: params, dimension, outputType };
}

/** Native reply: the upstream body itself when one in-order call served it, else a merged body. */
export function textResultToNative(result: TextEmbeddingResult, requestId: string): Parts {
  if (result.passthrough) return [result.passthrough];
  const parts: Buffer[] = [];
  let text = '{"output":{"embeddings":[';
  result.items.forEach(({ buf, item }, i) => {
    text += i === 0 ? '{' : ',{';
    if (item.embedding) {
      text += '"embedding":';
      parts.push(Buffer.from(text), buf.subarray(item.embedding.start, item.embedding.end));
      text = ',';
    }
    for (const [key, span] of item.extras) {
      text += `${JSON.stringify(key)}:`;
      parts.push(Buffer.from(text), buf.subarray(span.start, span.end));
      text = ',';
    }
    text += `"text_index":${i}}`;
  });
  text += `]},"usage":{"total_tokens":${result.totalTokens}},"request_id":${JSON.stringify(requestId)}}`;
  parts.push(Buffer.from(text));
  return parts;
}
