/**
 * One access-log line per request, and the per-request context (`request.ctx`) handlers fill for it. Fields are
 * chosen, never whole headers, so no key can slip in. Registered first: every later hook may use `request.ctx`.
 * `aborted`: the caller went away before the reply was complete.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { emptyRequestContext, type RequestContext } from '../gateway.js';
import { wasTimedOut } from '../http/connections.js';

async function accessLog(app: FastifyInstance): Promise<void> {
  app.decorateRequest('ctx', null as unknown as RequestContext);
  // Decided once: FastifyBaseLogger has no isLevelEnabled, and below info nothing is written, so nothing is built.
  const on = ['info', 'debug', 'trace'].includes(app.log.level);
  const write = (request: FastifyRequest, reply: FastifyReply, aborted: boolean): void => {
    if (!on) return;
    const ctx = request.ctx;
    const upstreamMs = ctx?.upstream.reduce((s, u) => s + u.ms, 0) ?? 0;
    request.log.info(
      {
        method: request.method,
        url: request.url.split('?')[0],
        route: request.routeOptions.url,
        // A request the caller abandoned is 499 (nginx's code), one Node cut for its timeout 408, whatever
        // status the unfinished reply had been given.
        status: aborted ? (wasTimedOut(request.raw.socket) ? 408 : 499) : reply.statusCode,
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

  app.lifecycle.onRequest((request, reply) => {
    request.ctx = emptyRequestContext();
    reply.header('x-request-id', request.id);
  });
  // At the end, written in full or not: a caller that hangs up mid-reply (a stream, typically) is logged too.
  app.lifecycle.onEnd(write);
}

export const accessLogPlugin = fp(accessLog, {
  name: 'access-log',
  fastify: '5.x',
  dependencies: ['lifecycle'],
});
