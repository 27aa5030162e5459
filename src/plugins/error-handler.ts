/**
 * The one error handler and the 404 handler: every error becomes a GatewayError (ours pass through, Fastify's get
 * a catalogue row, anything else is masked as INTERNAL and logged) and is rendered in the caller's dialect by
 * renderError. DashScope's own request ids go along on errors: support asks for them.
 */
import type { FastifyError, FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { dialectFor, GatewayError, renderError } from '../errors.js';
import { emptyRequestContext } from '../gateway.js';

/** Map any error to a GatewayError. */
export function toGatewayError(
  err: FastifyError | Error,
  bodyLimit: number,
  callerGone: boolean,
): GatewayError {
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

async function errorHandler(app: FastifyInstance): Promise<void> {
  const { bodyLimit } = app.gw.config;
  app.setErrorHandler((err: FastifyError | Error, request, reply) => {
    const gwErr = toGatewayError(err, bodyLimit, request.raw.destroyed || reply.raw.destroyed);
    const rendered = renderError(gwErr, dialectFor(request.url), request.id);
    request.ctx ??= emptyRequestContext();
    request.ctx.error = gwErr.message;
    if (gwErr.statusCode >= 500)
      request.log.error({ err: gwErr.cause ?? gwErr, kind: gwErr.kind }, gwErr.message);
    if (reply.sent || reply.raw.headersSent) return;
    const upstreamIds = request.ctx.upstream.flatMap((u) => (u.requestId ? [u.requestId] : []));
    if (upstreamIds.length > 0) reply.header('x-dashscope-request-id', upstreamIds.join(','));
    reply.code(rendered.status).headers(rendered.headers).type('application/json').send(rendered.body);
  });

  app.setNotFoundHandler(async (request) => {
    throw new GatewayError('NOT_FOUND', `no route for ${request.method} ${request.url.split('?')[0]}`);
  });
}

export const errorHandlerPlugin = fp(errorHandler, {
  name: 'error-handler',
  fastify: '5.x',
  dependencies: ['services'],
});
