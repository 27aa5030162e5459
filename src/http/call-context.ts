/**
 * What an upstream pipeline needs from the request it serves: the DashScope client, the request id it forwards, a
 * signal that aborts upstream work when the caller leaves, and where to record each attempt for the access log.
 * Below the routes: routes and domain modules import it; it imports only types and the services on `request.server`.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Upstream, UpstreamTrace } from '../upstream/client.js';
import '../gateway.js';

export interface CallContext {
  upstream: Upstream;
  requestId: string;
  signal: AbortSignal;
  trace: UpstreamTrace[];
  /** Upstream calls one split request may have in flight at once. */
  concurrency: number;
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

export function callContext(request: FastifyRequest, reply: FastifyReply): CallContext {
  const { config, upstream } = request.server.gw;
  return {
    upstream,
    requestId: request.id,
    signal: callerSignal(request, reply),
    trace: request.ctx.upstream,
    concurrency: config.upstream.splitConcurrency,
  };
}
