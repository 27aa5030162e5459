/**
 * Per-caller limits on incoming requests (CALLER_RATE_LIMITS), with @fastify/rate-limit keyed by gateway key
 * name. Counters live in Redis when REDIS_URL is set, so a key's limit holds across replicas; while Redis is
 * unreachable each replica counts locally rather than letting everything through or refusing everything.
 * A refused request gets 429 in the caller's dialect with Retry-After (whole seconds, at most 60).
 *
 * These limits protect the gateway's fairness between callers at the door; the upstream budget (src/ratelimit/)
 * is what keeps DashScope under its own limits.
 */
import type { FastifyRateLimitStore } from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { GatewayError } from '../errors.js';
import type { RedisClient as Redis } from '../redis.js';
import type { CallerLimit } from './settings.js';

export interface CallerLimitsOptions {
  /** Key name (or `*` for every key without its own entry) → limit. Empty: the plugin does nothing. */
  limits: Map<string, CallerLimit>;
  redis: Redis | undefined;
  keyPrefix: string;
}

// Fixed window per key, as @fastify/rate-limit's own Redis store counts: INCR, expiry set by the first hit.
const INCR = `
local current = redis.call('INCR', KEYS[1])
if current == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {current, ttl}
`;

interface IncrCommand {
  dsgwCallerIncr(key: string, windowMs: number): Promise<[number, number]>;
}

type IncrCallback = (error: Error | null, result?: { current: number; ttl: number }) => void;

/** Redis counters when Redis answers, this process's counters when it does not. */
function storeFor(redis: Redis | undefined, prefix: string): new () => FastifyRateLimitStore {
  if (redis && !('dsgwCallerIncr' in redis))
    redis.defineCommand('dsgwCallerIncr', { numberOfKeys: 1, lua: INCR });
  const shared = redis as (Redis & IncrCommand) | undefined;
  const local = new Map<string, { current: number; resetAt: number }>();

  const localIncr = (key: string, windowMs: number): { current: number; ttl: number } => {
    const now = Date.now();
    let e = local.get(key);
    if (!e || e.resetAt <= now) {
      e = { current: 0, resetAt: now + windowMs };
      local.set(key, e);
    }
    e.current++;
    return { current: e.current, ttl: e.resetAt - now };
  };

  return class CallerStore implements FastifyRateLimitStore {
    incr(key: string, cb: IncrCallback, timeWindow: number): void {
      if (shared?.status !== 'ready') {
        cb(null, localIncr(key, timeWindow));
        return;
      }
      shared.dsgwCallerIncr(`${prefix}${key}`, timeWindow).then(
        ([current, ttl]) => cb(null, { current, ttl }),
        () => cb(null, localIncr(key, timeWindow)),
      );
    }

    child(): FastifyRateLimitStore {
      // One counter per key across every route: the limit is on the caller, not on an endpoint.
      return this;
    }
  };
}

function windowText(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  if (ms % 1000 === 0) return `${ms / 1000} s`;
  return `${ms} ms`;
}

async function callerLimitsPlugin(app: FastifyInstance, opts: CallerLimitsOptions): Promise<void> {
  const { limits } = opts;
  if (limits.size === 0) return;
  const limitFor = (name: string | undefined): CallerLimit | undefined =>
    name === undefined ? undefined : (limits.get(name) ?? limits.get('*'));
  const keyOf = (req: FastifyRequest): string => req.caller?.name ?? '';
  // Loaded only when some key has a limit: most deployments never pay for it.
  const { default: rateLimit } = await import('@fastify/rate-limit');

  await app.register(rateLimit, {
    global: true,
    // After authentication (a global onRequest hook), so the key name is known; route-level hooks run after it.
    hook: 'onRequest',
    store: storeFor(opts.redis, `${opts.keyPrefix}caller:`),
    keyGenerator: keyOf,
    // Health checks and keys without a limit skip the counter entirely.
    allowList: (req) => req.routeOptions.config?.public === true || limitFor(req.caller?.name) === undefined,
    max: (_req, key) => limitFor(key)?.max ?? Number.MAX_SAFE_INTEGER,
    timeWindow: (_req, key) => limitFor(key)?.windowMs ?? 60_000,
    errorResponseBuilder: (req, ctx) => {
      const limit = limitFor(keyOf(req));
      const sec = Math.min(60, Math.max(1, Math.ceil(ctx.ttl / 1000)));
      return new GatewayError(
        'RATE_LIMITED',
        `gateway key "${keyOf(req)}" may send ${ctx.max} requests per ${windowText(limit?.windowMs ?? ctx.ttl)} to this gateway (CALLER_RATE_LIMITS); retry after ${sec} s`,
        { retryAfterSec: sec },
      );
    },
  });
}

export const callerLimits = fp(callerLimitsPlugin, { name: 'caller-limits', fastify: '5.x' });
