/**
 * The OpenAI embeddings request body, as the `openai` SDK, LangChain and the AI SDK send it.
 * Items of `input` are checked per model family (text models want strings), so they are `unknown` here.
 * Unknown top-level fields are ignored, as OpenAI-compatible servers commonly do.
 */
import { z } from 'zod';

export const OpenAIEmbeddingsBody = z.object({
  model: z.string().min(1, 'must name a model'),
  input: z.union([z.string(), z.array(z.unknown())], { error: 'must be a string or an array' }),
  dimensions: z.number().int().positive().optional(),
  encoding_format: z.enum(['float', 'base64']).optional(),
  user: z.string().optional(),
  /** Extension: DashScope's `text_type` (query | document) for asymmetric retrieval. */
  text_type: z.enum(['query', 'document']).optional(),
});

export type OpenAIEmbeddingsRequest = z.infer<typeof OpenAIEmbeddingsBody>;
