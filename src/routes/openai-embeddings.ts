/**
 * POST /v1/embeddings (and /compatible-mode/v1/embeddings, so DashScope-doc configs work by changing the host).
 * The model table decides which translator serves the model; the handler only wires them together.
 */
import type { FastifyInstance } from 'fastify';
import { callContext } from '../app.js';
import { runTextEmbedding } from '../embeddings/text-pipeline.js';
import { GatewayError, invalidInput } from '../errors.js';
import { OpenAIEmbeddingsBody } from '../translate/openai-embeddings-schema.js';
import { openAIToTextJob, textResultToOpenAI } from '../translate/openai-text-embedding.js';
import { parseBody } from '../validation.js';

export async function openAIEmbeddingsRoutes(app: FastifyInstance): Promise<void> {
  const { config, models } = app.gw;
  for (const url of ['/v1/embeddings', '/compatible-mode/v1/embeddings']) {
    app.post(url, async (request, reply) => {
      const req = parseBody(OpenAIEmbeddingsBody, request.body);
      request.ctx.model = req.model;
      const model = models.get(req.model);
      if (!model) {
        throw new GatewayError(
          'UNKNOWN_MODEL',
          `model "${req.model}" is not served here; known: ${models.names().join(', ')}`,
          {
            param: 'model',
          },
        );
      }
      const count = typeof req.input === 'string' ? 1 : req.input.length;
      request.ctx.inputs = count;
      if (count === 0) throw invalidInput('input', 'must contain at least one item');
      if (count > config.maxInputsPerRequest) {
        throw invalidInput(
          'input',
          `has ${count} items; the gateway accepts at most ${config.maxInputsPerRequest} per request`,
        );
      }
      const job = openAIToTextJob(req, model);
      const result = await runTextEmbedding(callContext(request, reply), job);
      reply.header('x-dashscope-request-id', result.upstreamRequestIds.join(','));
      return reply.type('application/json').send(textResultToOpenAI(req, result));
    });
  }
}
