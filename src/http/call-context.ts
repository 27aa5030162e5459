/**
 * What an upstream pipeline needs from the request it serves: the DashScope client, the request id it forwards, a
 * signal that aborts upstream work when the caller leaves, and where to record each attempt for the access log.
 * Below the routes: routes and domain modules import it; it imports only types and the services on `request.server`.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Governor } from '../ratelimit/governor.js';
import type { Upstream, UpstreamTrace } from '../upstream/client.js';
import '../gateway.js';

export interface CallContext {
  upstream: Upstream;
  requestId: string;
  signal: AbortSignal;
  trace: UpstreamTrace[];
  /** Upstream calls one split request may have in flight at once. */
  concurrency: number;
  /** Gateway key name: the unit of fairness when requests wait for the upstream budget. */
  caller: string;
  /** The upstream budget (undefined: not limited). Pipelines admit all their calls with it at once. */
  governor: Governor | undefined;
  /** Epoch ms by which every upstream call of this request must have started. */
  deadline: number;
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
  const { config, upstream, budget } = request.server.gw;
  return {
    upstream,
    requestId: request.id,
    signal: callerSignal(request, reply),
    trace: request.ctx.upstream,
    concurrency: config.upstream.splitConcurrency,
    caller: request.caller?.name ?? 'anonymous',
    governor: budget,
    // Until REQUEST_TIMEOUT_MS exists: the longest a request may wait for the budget, plus a minute of work.
    deadline: Date.now() + config.upstreamBudget.maxWaitMs + 60_000,
  };
}
