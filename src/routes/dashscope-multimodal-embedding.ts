/** Native DashScope multimodal-embedding, as the DashScope SDKs call it under /api/v1. */
import type { FastifyInstance } from 'fastify';
import { xCacheHeaders } from '../cache/lookup.js';
import { multimodalToNative } from '../cache/render.js';
import { runMultimodalEmbedding } from '../embeddings/multimodal-pipeline.js';
import { callContext } from '../http/call-context.js';
import { sendJsonParts } from '../http/parts-body.js';
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
    const result = await runMultimodalEmbedding(callContext(request, reply), job);
    reply.headers(xCacheHeaders(result.cache));
    request.ctx.tokens = result.tokens;
    reply.header('x-dashscope-request-id', result.upstreamRequestIds.join(','));
    // DashScope's body when one call served everything (more items than one call takes are refused above), else
    // a body built from the vectors the cache and the upstream call gave.
    return sendJsonParts(reply, multimodalToNative(result, job, request.id));
  });
}
