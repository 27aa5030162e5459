/**
 * The gateway's shared services and per-request state, as types: what the services plugin decorates the Fastify
 * instance with (`app.gw`) and what every request carries (`request.ctx`, `request.caller`). Types only, so any
 * layer may import it without importing the wiring.
 */

import type { FastifyReply, FastifyRequest } from 'fastify';
import type { EmbeddingCache } from './cache/cache.js';
import type { Config } from './config.js';
import type { GatewayMetrics } from './metrics/index.js';
import type { ModelTable } from './models/index.js';
import type { Governor } from './ratelimit/governor.js';
import type { RedisClient as Redis } from './redis.js';
import type { TaskHandles, TaskOwnerStore } from './tasks/index.js';
import type { TokenChecker } from './tokens/index.js';
import type { Upstream, UpstreamTrace } from './upstream/client.js';

/** What a handler records for the access log. */
export interface RequestContext {
  caller: string | undefined;
  model: string | undefined;
  inputs: number | undefined;
  upstream: UpstreamTrace[];
  error: string | undefined;
  /** Tokens DashScope billed for this request (its usage), once the handler knows them: per-caller accounting. */
  tokens: number | undefined;
}

/** A caller admitted by a gateway key; only the key's name (and its DashScope workspace, if any) is kept. */
export interface Caller {
  name: string;
  /** The DashScope workspace this caller's calls go to; DASHSCOPE_WORKSPACE when undefined. */
  workspace?: string;
}

export interface Gateway {
  config: Config;
  upstream: Upstream;
  models: ModelTable;
  /** Shared state across replicas; undefined when REDIS_URL is unset (state is then per process). */
  redis: Redis | undefined;
  /** The governor of calls to DashScope (src/ratelimit/governor.ts); its status() feeds /readyz. */
  budget: Governor;
  /** Which gateway key submitted each async task (Redis when configured, else this process's memory). */
  tasks: TaskOwnerStore;
  /** Embeddings already paid for (memory, plus Redis when configured); undefined when EMBEDDING_CACHE=off. */
  cache: EmbeddingCache | undefined;
  /** Signs and verifies the task handles callers get in place of DashScope's task ids. */
  taskHandles: TaskHandles;
  /** Token-limit checks; exact counts run in worker threads, started on first need and ended on app close. */
  tokens: TokenChecker;
  /** Prometheus metrics of this app instance (its own registry); served on METRICS_PORT when set. */
  metrics: GatewayMetrics;
}

/**
 * Per-request steps of every concern that needs a request's arrival, its reply going out, or its end; one hook
 * per phase runs them (src/plugins/lifecycle.ts, `app.lifecycle`).
 */
export type Step = (request: FastifyRequest, reply: FastifyReply) => void;
export type EndStep = (request: FastifyRequest, reply: FastifyReply, aborted: boolean) => void;

export interface Lifecycle {
  /** At arrival, before authentication, in registration order. */
  onRequest(step: Step): void;
  /** Just before the reply's head is written: headers added here go out with every reply, errors included. */
  onSend(step: Step): void;
  /**
   * Once per request: when its reply was written in full (`aborted` false), or when the connection closed before
   * that (`aborted` true: the caller left, or a timeout cut it).
   */
  onEnd(step: EndStep): void;
  /** Aborted when the caller goes away before the reply is complete, so upstream work stops with it. */
  callerSignal(request: FastifyRequest): AbortSignal;
}

export const emptyRequestContext = (): RequestContext => ({
  caller: undefined,
  model: undefined,
  inputs: undefined,
  upstream: [],
  error: undefined,
  tokens: undefined,
});

declare module 'fastify' {
  interface FastifyInstance {
    gw: Gateway;
    lifecycle: Lifecycle;
  }
  interface FastifyRequest {
    ctx: RequestContext;
    caller: Caller | undefined;
    /** Created on first use by lifecycle.callerSignal(). */
    callerAbort: AbortController | null;
    /** The end steps ran (each request ends once, by onResponse or by its connection's close). */
    ended: boolean;
  }
  interface FastifyContextConfig {
    /** Route needs no gateway key (health checks). */
    public?: boolean;
  }
}
