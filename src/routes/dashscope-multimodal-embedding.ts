/** Native DashScope multimodal-embedding, as the DashScope SDKs call it under /api/v1. */
import type { FastifyInstance } from 'fastify';
import { cacheRequest, multimodalToNative, serveMultimodalEmbedding } from '../cache/serve.js';
import { callContext } from '../http/call-context.js';
import {
  NativeMultimodalEmbeddingBody,
  nativeToMultimodalJob,
} from '../translate/native-multimodal-embedding.js';
import { MULTIMODAL_EMBEDDING_PATH } from '../upstream/paths.js';
import { parseBody } from '../validation.js';

export async function dashscopeMultimodalEmbeddingRoutes(app: FastifyInstance): Promise<void> {
  const { config, models } = app.gw;
  app.post(MULTIMODAL_EMBEDDING_PATH, async (request, reply) => {
    const req = parseBody(NativeMultimodalEmbeddingBody, request.body);
    request.ctx.model = req.model;
    const model = models.require(req.model, 'multimodal-embedding');
    request.ctx.inputs = req.input.contents.length;
    const job = await nativeToMultimodalJob(req, model, config.maxInputsPerRequest);
    const served = await serveMultimodalEmbedding(
      callContext(request, reply),
      job,
      cacheRequest(request, true),
    );
    reply.headers(served.headers);
    reply.header('x-dashscope-request-id', served.result.upstreamRequestIds.join(','));
    // DashScope's own body when one call served everything (more items than one call takes are refused above);
    // a body built from the merged vectors when the cache served some.
    return reply.type('application/json').send(multimodalToNative(served, job, request.id));
  });
}
