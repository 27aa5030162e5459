/**
 * The gateway's shared services and per-request state, as types: what the services plugin decorates the Fastify
 * instance with (`app.gw`) and what every request carries (`request.ctx`, `request.caller`). Types only, so any
 * layer may import it without importing the wiring.
 */

import type { Config } from './config.js';
import type { ModelTable } from './models/index.js';
import type { Governor } from './ratelimit/governor.js';
import type { RedisClient as Redis } from './redis.js';
import type { TaskOwnerStore } from './tasks/index.js';
import type { TokenChecker } from './tokens/index.js';
import type { Upstream, UpstreamTrace } from './upstream/client.js';

/** What a handler records for the access log. */
export interface RequestContext {
  caller: string | undefined;
  model: string | undefined;
  inputs: number | undefined;
  upstream: UpstreamTrace[];
  error: string | undefined;
}

/** A caller admitted by a gateway key; only the key's name is kept. */
export interface Caller {
  name: string;
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
  /** Token-limit checks; exact counts run in worker threads, started on first need and ended on app close. */
  tokens: TokenChecker;
}

export const emptyRequestContext = (): RequestContext => ({
  caller: undefined,
  model: undefined,
  inputs: undefined,
  upstream: [],
  error: undefined,
});

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
