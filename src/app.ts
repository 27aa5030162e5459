/**
 * buildApp(config) returns a ready-to-listen (or inject) Fastify instance. It never listens and never reads
 * process.env: src/server.ts does that. Cross-cutting behaviour lives here, once: request ids, caller
 * authentication, the single error handler, the access log.
 */
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from 'fastify';
import pino, { type DestinationStream, type Logger } from 'pino';
import type { Config } from './config.js';
import type { CallContext } from './embeddings/text-pipeline.js';
import { type Dialect, dialectFor, GatewayError, renderError } from './errors.js';
import { buildModelTable, type ModelTable } from './models/index.js';
import { type Caller, KeyRing } from './plugins/auth.js';
import { callerLimits } from './plugins/caller-limits.js';
import { genRequestId } from './plugins/request-id.js';
import { UpstreamBudget } from './ratelimit/budget.js';
import { upstreamBudgetHooks } from './ratelimit/plugin.js';
import type { RedisClient as Redis } from './redis.js';
import { createRedis } from './redis.js';
import { dashscopeMultimodalEmbeddingRoutes } from './routes/dashscope-multimodal-embedding.js';
import { dashscopeMultimodalGenerationRoutes } from './routes/dashscope-multimodal-generation.js';
import { dashscopeTaskRoutes } from './routes/dashscope-tasks.js';
import { dashscopeTextEmbeddingRoutes } from './routes/dashscope-text-embedding.js';
import { dashscopeUploadRoutes } from './routes/dashscope-uploads.js';
import { healthRoutes } from './routes/health.js';
import { openAIChatCompletionsRoutes } from './routes/openai-chat-completions.js';
import { openAIEmbeddingsRoutes } from './routes/openai-embeddings.js';
import { createTaskOwnerStore, type TaskOwnerStore } from './tasks/index.js';
import { Upstream, type UpstreamTrace } from './upstream/client.js';

/** What a handler records for the access log. */
export interface RequestContext {
  caller: string | undefined;
  model: string | undefined;
  inputs: number | undefined;
  upstream: UpstreamTrace[];
  error: string | undefined;
}

export interface Gateway {
  config: Config;
  upstream: Upstream;
  models: ModelTable;
  /** Shared state across replicas; undefined when REDIS_URL is unset (state is then per process). */
  redis: Redis | undefined;
  /** The budget of calls to DashScope (the upstream gate); its status() feeds /readyz. */
  budget: UpstreamBudget;
  /** Which gateway key submitted each async task (Redis when configured, else this process's memory). */
  tasks: TaskOwnerStore;
}

declare module 'fastify' {
  interface FastifyInstance {
    gw: Gateway;
  }
  interface FastifyRequest {
    ctx: RequestContext;
    caller: Caller | undefined;
  }
  interface FastifyContextConfig {
    /** Route needs no gateway key (health checks). */
    public?: boolean;
  }
}

export interface BuildOptions {
  /** Where log lines go (tests capture them); stdout when absent. */
  logStream?: DestinationStream;
  logger?: Logger;
}

/** Logger options shared by the server and the tests: secrets are redacted by configuration, not discipline. */
export function loggerOptions(level: string): pino.LoggerOptions {
  return {
    level,
    base: { service: 'dashscope-gateway' },
    redact: {
      paths: [
        'req.headers.authorization',
        'req.headers["x-api-key"]',
        'headers.authorization',
        'headers["x-api-key"]',
        '*.apiKey',
        'apiKey',
      ],
      censor: '[redacted]',
    },
  };
}

/** The per-request handles an upstream pipeline needs. */
export function callContext(request: FastifyRequest, reply: FastifyReply): CallContext {
  const { config, upstream } = request.server.gw;
  return {
    upstream,
    requestId: request.id,
    signal: callerSignal(request, reply),
    trace: request.ctx.upstream,
    secret: config.upstream.apiKey,
    concurrency: config.upstream.splitConcurrency,
  };
}

/** The abort reason when the caller leaves; undici and timers rethrow it, and the error handler recognises the name. */
function callerGone(): Error {
  return new DOMException('caller disconnected', 'AbortError');
}

/** Aborted when the caller goes away before the reply is written: upstream work stops with it. */
export function callerSignal(request: FastifyRequest, reply: FastifyReply): AbortSignal {
  const ac = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) ac.abort(callerGone());
  });
  request.raw.once('aborted', () => ac.abort(callerGone()));
  return ac.signal;
}

/** Map any error to a GatewayError: ours pass through, Fastify's get a catalogue row, the rest are masked. */
function toGatewayError(err: FastifyError | Error, bodyLimit: number, callerGone: boolean): GatewayError {
  if (err instanceof GatewayError) return err;
  // An abort we caused because the caller disconnected is not a gateway fault.
  if (callerGone && (err.name === 'AbortError' || (err as FastifyError).code === 'UND_ERR_ABORTED')) {
    return new GatewayError('CALLER_CLOSED', 'the caller closed the connection before the reply was ready');
  }
  const code = (err as FastifyError).code;
  const status = (err as FastifyError).statusCode;
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return new GatewayError(
      'BODY_TOO_LARGE',
      `the request body is larger than ${bodyLimit} bytes (BODY_LIMIT_BYTES); split the request`,
    );
  }
  if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    return new GatewayError('UNSUPPORTED_MEDIA_TYPE', 'send the body as application/json', {
      param: 'content-type',
    });
  }
  if (code === 'FST_ERR_CTP_EMPTY_JSON_BODY') {
    return new GatewayError('INVALID_JSON', 'the request body is empty; send a JSON object', {
      param: 'body',
    });
  }
  if (err instanceof SyntaxError || code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
    return new GatewayError('INVALID_JSON', 'the request body is not valid JSON', { param: 'body' });
  }
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return new GatewayError('INVALID_INPUT', err.message, { status });
  }
  return new GatewayError(
    'INTERNAL',
    'internal error; the gateway logged the details under this request id',
    {
      cause: err,
    },
  );
}

export async function buildApp(config: Config, opts: BuildOptions = {}): Promise<FastifyInstance> {
  const logger = opts.logger ?? pino(loggerOptions(config.logLevel), opts.logStream ?? pino.destination(1));
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    genReqId: genRequestId,
    // Fastify's own request/response lines are replaced by our one access-log line (onResponse below).
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.bodyLimit,
    // Behind a load balancer: keep-alive longer than typical LB idle timeouts so the LB closes first.
    keepAliveTimeout: 65_000,
    return503OnClosing: true,
  });

  const redis = config.redisUrl ? await createRedis(config.redisUrl) : undefined;
  // A Redis outage must not crash the process: features fall back and log (ioredis emits 'error' on every failed reconnect).
  redis?.on('error', () => {});
  const budget = new UpstreamBudget(config.upstreamBudget, redis, logger);
  const upstream = new Upstream(config.upstream, budget);
  const keys = new KeyRing(config.gatewayKeys, config.allowAnonymous);
  app.decorate('gw', {
    config,
    upstream,
    models: buildModelTable(config.rowLimits),
    redis,
    budget,
    tasks: createTaskOwnerStore(redis),
  });
  // Only JSON bodies: without this Fastify would parse text/plain and the caller would get a misleading 400.
  app.removeContentTypeParser('text/plain');
  app.decorateRequest('ctx', null as unknown as RequestContext);
  app.decorateRequest('caller', undefined);
  app.addHook('onClose', async () => {
    await upstream.close();
    redis?.disconnect();
  });

  // One access-log line per request; fields are chosen, never whole headers, so no key can slip in.
  // `aborted`: the caller went away before the reply was complete.
  const logged = new WeakSet<FastifyRequest>();
  const accessLogOn = logger.isLevelEnabled('info');
  const accessLog = (request: FastifyRequest, reply: FastifyReply, aborted: boolean): void => {
    // Below info nothing is written, so nothing is built either (this runs on every request).
    if (logged.has(request) || !accessLogOn) return;
    logged.add(request);
    const ctx = request.ctx;
    const upstreamMs = ctx?.upstream.reduce((s, u) => s + u.ms, 0) ?? 0;
    request.log.info(
      {
        method: request.method,
        url: request.url.split('?')[0],
        route: request.routeOptions.url,
        status: reply.statusCode,
        caller: ctx?.caller,
        model: ctx?.model,
        inputs: ctx?.inputs,
        upstream_calls: ctx?.upstream.length ?? 0,
        upstream: ctx?.upstream,
        upstream_ms: Math.round(upstreamMs * 10) / 10,
        ms: Math.round(reply.elapsedTime * 10) / 10,
        error: ctx?.error,
        aborted: aborted || undefined,
      },
      'request',
    );
  };

  app.addHook('onRequest', async (request, reply) => {
    request.ctx = { caller: undefined, model: undefined, inputs: undefined, upstream: [], error: undefined };
    reply.header('x-request-id', request.id);
    // A caller that hangs up mid-reply (a stream, typically) gets no onResponse: log it here instead.
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) accessLog(request, reply, true);
    });
    if (request.routeOptions.config?.public) return;
    const caller = keys.authenticate(request.headers);
    if (!caller) {
      const presented = KeyRing.presented(request.headers) !== undefined;
      throw new GatewayError(
        'UNAUTHORIZED',
        presented
          ? 'the gateway key is not valid'
          : 'a gateway key is required: send Authorization: Bearer <key> or x-api-key',
      );
    }
    request.caller = caller;
    request.ctx.caller = caller.name;
  });

  app.setErrorHandler((err: FastifyError | Error, request, reply) => {
    const gwErr = toGatewayError(err, config.bodyLimit, request.raw.destroyed || reply.raw.destroyed);
    const dialect: Dialect = dialectFor(request.url);
    const rendered = renderError(gwErr, dialect, request.id);
    request.ctx ??= {
      caller: undefined,
      model: undefined,
      inputs: undefined,
      upstream: [],
      error: undefined,
    };
    request.ctx.error = gwErr.message;
    if (gwErr.statusCode >= 500)
      request.log.error({ err: gwErr.cause ?? gwErr, kind: gwErr.kind }, gwErr.message);
    if (reply.sent || reply.raw.headersSent) return;
    // DashScope's own ids matter most when something failed: support asks for them.
    const upstreamIds = request.ctx.upstream.flatMap((u) => (u.requestId ? [u.requestId] : []));
    if (upstreamIds.length > 0) reply.header('x-dashscope-request-id', upstreamIds.join(','));
    reply.code(rendered.status).headers(rendered.headers).type('application/json').send(rendered.body);
  });

  app.setNotFoundHandler(async (request) => {
    throw new GatewayError('NOT_FOUND', `no route for ${request.method} ${request.url.split('?')[0]}`);
  });

  app.addHook('onResponse', async (request, reply) => accessLog(request, reply, false));

  await app.register(upstreamBudgetHooks, { budget, knownModels: app.gw.models.names() });
  await app.register(callerLimits, {
    limits: config.callerLimits,
    redis,
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
