/** Native DashScope multimodal-embedding, as the DashScope SDKs call it under /api/v1. */
import type { FastifyInstance } from 'fastify';
import { callContext } from '../app.js';
import { MULTIMODAL_EMBEDDING_PATH, runMultimodalEmbedding } from '../embeddings/multimodal-pipeline.js';
import { GatewayError } from '../errors.js';
import {
  NativeMultimodalEmbeddingBody,
  nativeToMultimodalJob,
} from '../translate/native-multimodal-embedding.js';
import { parseBody } from '../validation.js';

export async function dashscopeMultimodalEmbeddingRoutes(app: FastifyInstance): Promise<void> {
  const { config, models } = app.gw;
  app.post(MULTIMODAL_EMBEDDING_PATH, async (request, reply) => {
    const req = parseBody(NativeMultimodalEmbeddingBody, request.body);
    request.ctx.model = req.model;
    const model = models.get(req.model);
    if (model?.kind !== 'multimodal-embedding') {
      const known = models
        .names()
        .filter((n) => models.get(n)?.kind === 'multimodal-embedding')
        .join(', ');
      throw new GatewayError(
        'UNKNOWN_MODEL',
        `model "${req.model}" is not a multimodal-embedding model served here; known: ${known}`,
        { param: 'model' },
      );
    }
    request.ctx.inputs = req.input.contents.length;
    const job = await nativeToMultimodalJob(req, model, config.maxInputsPerRequest);
    const result = await runMultimodalEmbedding(callContext(request, reply), job);
    reply.header('x-dashscope-request-id', result.upstreamRequestIds.join(','));
    // One call always serves a native request (more items than one call takes are refused above).
    return reply.type('application/json').send(result.passthrough!);
  });
}
