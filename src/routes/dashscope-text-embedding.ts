/** Native DashScope text-embedding, as the DashScope SDKs and @ai-sdk/alibaba call it under /api/v1. */
import type { FastifyInstance } from 'fastify';
import { callContext } from '../app.js';
import { runTextEmbedding, TEXT_EMBEDDING_PATH } from '../embeddings/text-pipeline.js';
import { GatewayError } from '../errors.js';
import {
  NativeTextEmbeddingBody,
  nativeToTextJob,
  textResultToNative,
} from '../translate/native-text-embedding.js';
import { parseBody } from '../validation.js';
import { isAsyncSubmission, submitTextEmbeddingTask } from './dashscope-tasks.js';

export async function dashscopeTextEmbeddingRoutes(app: FastifyInstance): Promise<void> {
  const { config, models } = app.gw;
  app.post(TEXT_EMBEDDING_PATH, async (request, reply) => {
    // Same path, async batch task (X-DashScope-Async: enable, or an async model): see dashscope-tasks.ts.
    if (isAsyncSubmission(request)) return submitTextEmbeddingTask(request, reply);
    const req = parseBody(NativeTextEmbeddingBody, request.body);
    request.ctx.model = req.model;
    const model = models.get(req.model);
    if (model?.kind !== 'text-embedding') {
      throw new GatewayError(
        'UNKNOWN_MODEL',
        `model "${req.model}" is not a text-embedding model served here; known: ${models.names().join(', ')}`,
        {
          param: 'model',
        },
      );
    }
    const job = await nativeToTextJob(req, model, config.maxInputsPerRequest, app.gw.tokens);
    request.ctx.inputs = job.texts.length;
    const result = await runTextEmbedding(callContext(request, reply), job);
    reply.header('x-dashscope-request-id', result.upstreamRequestIds.join(','));
    return reply.type('application/json').send(textResultToNative(result, request.id));
  });
}
