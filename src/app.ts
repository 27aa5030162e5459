/**
 * buildApp(config) returns a ready-to-listen (or inject) Fastify instance. It only wires: each concern is a
 * plugin of its own, registered in the order its hooks must run. It never listens and never reads process.env
 * (src/server.ts does both).
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import pino, { type DestinationStream, type Logger } from 'pino';
import type { Config } from './config.js';
import { closeUnreadBodies, connectionOptions, frameworkErrorHandler } from './http/connections.js';
import { registerJsonBody } from './http/json-body.js';
import { loggerOptions } from './logger.js';
import { accessLogPlugin } from './plugins/access-log.js';
import { authPlugin } from './plugins/auth.js';
import { drain } from './plugins/drain.js';
import { errorHandlerPlugin } from './plugins/error-handler.js';
import { lifecyclePlugin } from './plugins/lifecycle.js';
import { metricsPlugin } from './plugins/metrics.js';
import { genRequestId } from './plugins/request-id.js';
import { servicesPlugin } from './plugins/services.js';
import { callerLimits } from './ratelimit/caller-limits.js';
import { upstreamBudgetHooks } from './ratelimit/plugin.js';
import { dashscopeMultimodalEmbeddingRoutes } from './routes/dashscope-multimodal-embedding.js';
import { dashscopeMultimodalGenerationRoutes } from './routes/dashscope-multimodal-generation.js';
import { dashscopeTaskRoutes } from './routes/dashscope-tasks.js';
import { dashscopeTextEmbeddingRoutes } from './routes/dashscope-text-embedding.js';
import { dashscopeUploadRoutes } from './routes/dashscope-uploads.js';
import { healthRoutes } from './routes/health.js';
import { openAIChatCompletionsRoutes } from './routes/openai-chat-completions.js';
import { openAIEmbeddingsRoutes } from './routes/openai-embeddings.js';

export { loggerOptions } from './logger.js';

export interface BuildOptions {
  /** Where log lines go (tests capture them); stdout when absent. */
  logStream?: DestinationStream;
  logger?: Logger;
}

export async function buildApp(config: Config, opts: BuildOptions = {}): Promise<FastifyInstance> {
  const logger = opts.logger ?? pino(loggerOptions(config.logLevel), opts.logStream ?? pino.destination(1));
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    genReqId: genRequestId,
    // Fastify's own request/response lines are replaced by the one access-log line (plugins/access-log.ts).
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.bodyLimit,
    // Request, header and idle timeouts (src/http/connections.ts); keep-alive longer than typical LB idle
    // timeouts so the LB closes first.
    ...connectionOptions(config.http),
    // A task id over maxParamLength, an undecodable URL: the caller's 400 in its dialect, not Fastify's shape.
    frameworkErrors: frameworkErrorHandler,
    return503OnClosing: true,
  });
  // Only JSON bodies: without this Fastify would parse text/plain and the caller would get a misleading 400.
  app.removeContentTypeParser('text/plain');
  // Every JSON body is checked for depth, overflowing numbers, UTF-8 and prototype keys as it is parsed.
  registerJsonBody(app, { maxDepth: config.http.jsonMaxDepth });
  // One hook per phase and one listener per request for every concern below (src/plugins/lifecycle.ts).
  await app.register(lifecyclePlugin);
  // A reply sent before the body was read closes the connection, so a dripping client cannot hold it.
  closeUnreadBodies(app);

  await app.register(servicesPlugin, { config });
  await app.register(accessLogPlugin);
  await app.register(errorHandlerPlugin);
  // Before auth: the drain counts (and tells to close) every request, refused ones too.
  await app.register(drain);
  await app.register(authPlugin);
  await app.register(metricsPlugin);
  await app.register(upstreamBudgetHooks, { budget: app.gw.budget, knownModels: app.gw.models.names() });
  await app.register(callerLimits, {
    limits: config.callerLimits,
    redis: app.gw.redis,
    keyPrefix: config.upstreamBudget.keyPrefix,
  });

  await app.register(healthRoutes);
  await app.register(openAIEmbeddingsRoutes);
  await app.register(dashscopeTextEmbeddingRoutes);
  await app.register(dashscopeMultimodalGenerationRoutes);
  await app.register(openAIChatCompletionsRoutes);
  await app.register(dashscopeMultimodalEmbeddingRoutes);
  await app.register(dashscopeTaskRoutes);
  await app.register(dashscopeUploadRoutes);
  return app;
}
