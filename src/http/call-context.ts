/**
 * What an upstream pipeline needs from the request it serves: the DashScope client (bound to the caller's
 * workspace), the caller's key name, the request id it forwards, a
 * signal that aborts upstream work when the caller leaves, and where to record each attempt for the access log.
 * Below the routes: routes and domain modules import it; it imports only types and the services on `request.server`.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { EmbeddingCache } from '../cache/cache.js';
import type { Governor } from '../ratelimit/governor.js';
import type { UpstreamCalls, UpstreamTrace } from '../upstream/client.js';
import '../gateway.js';

export interface CallContext {
  /** The DashScope client as this caller sees it: its calls go to `workspace`. */
  upstream: UpstreamCalls;
  /** The gateway key's name ('anonymous' without one). */
  caller: string;
  /** The caller's own DashScope workspace; undefined → DASHSCOPE_WORKSPACE (decided in the client). */
  workspace: string | undefined;
  requestId: string;
  signal: AbortSignal;
  trace: UpstreamTrace[];
  /** Upstream calls one split request may have in flight at once. */
  concurrency: number;
  /**
   * Epoch ms by which all of this request's upstream work must be done: its arrival plus REQUEST_TIMEOUT_MS. Pass it
   * on every upstream call (UpstreamRequest.deadline); the client aborts and stops retrying at it (504).
   */
  deadline: number;
  /** Embeddings already paid for; undefined when EMBEDDING_CACHE=off (src/cache/lookup.ts). */
  cache?: EmbeddingCache | undefined;
  /** The upstream budget (undefined: not limited). Pipelines admit all their calls with it at once. */
  governor: Governor | undefined;
}

export function callContext(request: FastifyRequest, reply: FastifyReply): CallContext {
  const { config, upstream, cache, budget } = request.server.gw;
  const workspace = request.caller?.workspace;
  return {
    upstream: upstream.forCaller(workspace),
    caller: request.caller?.name ?? 'anonymous',
    workspace,
    requestId: request.id,
    // Aborted when the caller goes away before the reply is written: upstream work stops with it.
    signal: request.server.lifecycle.callerSignal(request),
    trace: request.ctx.upstream,
    concurrency: config.upstream.splitConcurrency,
    // elapsedTime counts from the request's arrival, so the time its body took is part of the budget.
    deadline: Date.now() - reply.elapsedTime + config.upstream.requestTimeoutMs,
    cache,
    governor: budget.active ? budget : undefined,
  };
}
