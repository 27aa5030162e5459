/**
 * POST /v1/embeddings (and /compatible-mode/v1/embeddings, so DashScope-doc configs work by changing the host).
 * The model table decides which translator serves the model; the handler only wires them together.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { xCacheHeaders } from '../cache/lookup.js';
import { runMultimodalEmbedding } from '../embeddings/multimodal-pipeline.js';
import { runTextEmbedding } from '../embeddings/text-pipeline.js';
import { invalidInput } from '../errors.js';
import { callContext } from '../http/call-context.js';
import { type Parts, sendJsonParts } from '../http/parts-body.js';
import type { Model } from '../models/index.js';
import { OpenAIEmbeddingsBody, type OpenAIEmbeddingsRequest } from '../translate/openai-embeddings-schema.js';
import { multimodalResultToOpenAI, openAIToMultimodalJob } from '../translate/openai-multimodal-embedding.js';
import { openAIToTextJob, textResultToOpenAI } from '../translate/openai-text-embedding.js';
import { TEXT_EMBEDDING_PATH } from '../upstream/paths.js';
import { parseBody } from '../validation.js';

type EmbeddingKind = 'text-embedding' | 'multimodal-embedding';

/** Serves one request for a model family and returns the OpenAI-shaped body. */
type FamilyHandler<M extends Model> = (
  request: FastifyRequest,
  reply: FastifyReply,
  req: OpenAIEmbeddingsRequest,
  model: M,
) => Promise<Parts>;

/** The families /v1/embeddings serves and the translator for each: a new embedding family adds one entry. */
const FAMILIES: { [K in EmbeddingKind]: FamilyHandler<Extract<Model, { kind: K }>> } = {
  'text-embedding': async (request, reply, req, model) => {
    const job = await openAIToTextJob(req, model, request.server.gw.tokens);
    const result = await runTextEmbedding(callContext(request, reply), job);
    reply.headers(xCacheHeaders(result.cache));
    request.ctx.tokens = result.totalTokens;
    reply.header('x-dashscope-request-id', result.upstreamRequestIds.join(','));
    return textResultToOpenAI(req, result);
  },
  'multimodal-embedding': async (request, reply, req, model) => {
    // The raw body too: DashScope parameters ride as top-level extension fields the OpenAI schema does not keep.
    const job = await openAIToMultimodalJob(req, request.body, model);
    const result = await runMultimodalEmbedding(callContext(request, reply), job);
    reply.headers(xCacheHeaders(result.cache));
    request.ctx.tokens = result.tokens;
    reply.header('x-dashscope-request-id', result.upstreamRequestIds.join(','));
    return multimodalResultToOpenAI(req, result);
  },
};

export async function openAIEmbeddingsRoutes(app: FastifyInstance): Promise<void> {
  const { config, models } = app.gw;
  for (const url of ['/v1/embeddings', '/compatible-mode/v1/embeddings']) {
    app.post(url, async (request, reply) => {
      const req = parseBody(OpenAIEmbeddingsBody, request.body);
      request.ctx.model = req.model;
      if (models.get(req.model)?.kind === 'async-text-embedding') {
        // Not an unknown model but the wrong door: point at the one that serves it.
        throw invalidInput(
          'model',
          `"${req.model}" is an async batch model: submit a file URL on POST ${TEXT_EMBEDDING_PATH} with X-DashScope-Async: enable`,
        );
      }
      const model = models.require(req.model, 'text-embedding', 'multimodal-embedding');
      const count = typeof req.input === 'string' ? 1 : req.input.length;
      request.ctx.inputs = count;
      if (count === 0) throw invalidInput('input', 'must contain at least one item');
      if (count > config.maxInputsPerRequest) {
        throw invalidInput(
          'input',
          `has ${count} items; the gateway accepts at most ${config.maxInputsPerRequest} per request`,
        );
      }
      // The lookup is keyed by kind, so the entry found takes this model's type; TypeScript cannot correlate the two.
      const serve = FAMILIES[model.kind] as FamilyHandler<Model>;
      return sendJsonParts(reply, await serve(request, reply, req, model));
    });
  }
}
