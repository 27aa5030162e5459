/**
 * OpenAI `POST /v1/embeddings` → DashScope native text-embedding, and back.
 * Native rather than compatible mode upstream: it serves v1–v4, takes `text_type`, and gives one reply shape.
 * @see https://www.alibabacloud.com/help/en/model-studio/text-embedding-synchronous-api
 */

import { checkTexts, type TextEmbeddingJob, type TextEmbeddingResult } from '../embeddings/text-pipeline.js';
import { invalidInput } from '../errors.js';
import type { Parts } from '../http/parts-body.js';
import type { TextEmbeddingModel } from '../models/index.js';
import type { TokenChecker } from '../tokens/index.js';
import type { OpenAIEmbeddingsRequest } from './openai-embeddings-schema.js';
import { renderOpenAIEmbeddings } from './openai-render.js';

export async function openAIToTextJob(
  req: OpenAIEmbeddingsRequest,
  model: TextEmbeddingModel,
  tokens: TokenChecker,
): Promise<TextEmbeddingJob> {
  const inputs: unknown[] = typeof req.input === 'string' ? [req.input] : req.input;
  const { texts, counts } = await checkTexts(
    inputs,
    model,
    (i) => (typeof req.input === 'string' ? 'input' : `input[${i}]`),
    tokens,
  );
  const dimension = req.dimensions ?? model.defaultDimension;
  if (!model.dimensions.includes(dimension)) {
    throw invalidInput(
      'dimensions',
      `${model.name} supports ${model.dimensions.join(', ')}; got ${dimension}`,
    );
  }
  const parameters: Record<string, unknown> = { dimension };
  if (req.text_type) parameters.text_type = req.text_type;
  return {
    model,
    texts,
    tokens: counts.tokens,
    parameters,
    dimension,
    outputType: 'dense',
    decode: req.encoding_format === 'base64',
  };
}

export function textResultToOpenAI(req: OpenAIEmbeddingsRequest, result: TextEmbeddingResult): Parts {
  const vectors = result.items.map(({ buf, item }) => ({ buf, span: item.embedding!, values: item.values }));
  return renderOpenAIEmbeddings(req.model, vectors, result.totalTokens, req.encoding_format ?? 'float');
}
