/** Native DashScope text-embedding, as the DashScope SDKs and @ai-sdk/alibaba call it under /api/v1. */
import type { FastifyInstance } from 'fastify';
import { xCacheHeaders } from '../cache/lookup.js';
import { runTextEmbedding } from '../embeddings/text-pipeline.js';
import { callContext } from '../http/call-context.js';
import { sendJsonParts } from '../http/parts-body.js';
import { isAsyncSubmission, submitTextEmbeddingTask } from '../tasks/submit.js';
import {
  NativeTextEmbeddingBody,
  nativeToTextJob,
  textResultToNative,
} from '../translate/native-text-embedding.js';
import { TEXT_EMBEDDING_PATH } from '../upstream/paths.js';
import { parseBody } from '../validation.js';

export async function dashscopeTextEmbeddingRoutes(app: FastifyInstance): Promise<void> {
  const { config, models } = app.gw;
  app.post(TEXT_EMBEDDING_PATH, async (request, reply) => {
    // Same path, async batch task (X-DashScope-Async: enable, or an async model): see src/tasks/submit.ts.
    if (isAsyncSubmission(request)) return submitTextEmbeddingTask(request, reply);
    const req = parseBody(NativeTextEmbeddingBody, request.body);
    request.ctx.model = req.model;
    const model = models.require(req.model, 'text-embedding');
    const job = await nativeToTextJob(req, model, config.maxInputsPerRequest, app.gw.tokens);
    request.ctx.inputs = job.texts.length;
    const result = await runTextEmbedding(callContext(request, reply), job);
    reply.headers(xCacheHeaders(result.cache));
    request.ctx.tokens = result.totalTokens;
    reply.header('x-dashscope-request-id', result.upstreamRequestIds.join(','));
    return sendJsonParts(reply, textResultToNative(result, request.id));
  });
}
