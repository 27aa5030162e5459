/**
 * The gateway's services, built once per app and shared by every route through `app.gw`: the model table, Redis
 * (when configured), the metrics registry, the upstream budget, the DashScope client and the task-owner store.
 * Closed in reverse order when the app closes.
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { createEmbeddingCache } from '../cache/cache.js';
import type { Config } from '../config.js';
import type { Gateway } from '../gateway.js';
import type { RefusalReason } from '../metrics/index.js';
import { GatewayMetrics } from '../metrics/index.js';
import { buildModelTable } from '../models/index.js';
import { createGovernor, type Governor } from '../ratelimit/governor.js';
import { createRedis } from '../redis.js';
import { createTaskOwnerStore, TaskHandles } from '../tasks/index.js';
import { createTokenChecker } from '../tokens/index.js';
import { Upstream } from '../upstream/client.js';

/** The metrics' name for a governor refusal: 400 never fits, 503 closing, a full waiting room, else too late. */
function refusalReason(status: number, reason: string): RefusalReason {
  if (status === 400) return 'never_fits';
  if (status === 503) return 'shutdown';
  return reason === 'full' ? 'full' : 'late';
}

async function services(app: FastifyInstance, opts: { config: Config }): Promise<void> {
  const { config } = opts;
  const redis = config.redisUrl ? await createRedis(config.redisUrl) : undefined;
  // A Redis outage must not crash the process: features fall back and log (ioredis emits 'error' on every failed reconnect).
  redis?.on('error', () => {});
  // Built first so the budget and the client can report to it; the queue gauge reads the budget at scrape time.
  let budget: Governor | undefined;
  const metrics = new GatewayMetrics(() => {
    const st = budget?.status();
    return st ? st.queued + st.paced : 0;
  }, config.metrics.port !== undefined);
  budget = createGovernor({
    settings: config.upstreamBudget,
    redis,
    log: app.log,
    onEvent: (e) => {
      if (e.type === 'admit') metrics.recordBudget({ kind: 'admitted', waitMs: e.waitMs });
      else if (e.type === 'refuse')
        metrics.recordBudget({ kind: 'refused', reason: refusalReason(e.status, e.reason) });
    },
  });
  // Without a budget the client and the pipelines skip admission altogether (no object per call).
  const upstream = new Upstream(
    config.upstream,
    budget.active ? budget : undefined,
    metrics.upstreamObserver,
  );
  const tokens = createTokenChecker(config.tokenizer);
  const gw: Gateway = {
    config,
    upstream,
    models: buildModelTable(config.rowLimits),
    redis,
    budget,
    tasks: createTaskOwnerStore(redis),
    taskHandles: new TaskHandles(config.upstream.apiKey, config.taskHandleSecret),
    tokens,
    cache: createEmbeddingCache(config.embeddingCache, redis, {
      warn: (msg) => app.log.warn(msg),
      info: (msg) => app.log.info(msg),
    }),
    metrics,
  };
  app.decorate('gw', gw);
  app.addHook('onClose', async () => {
    await Promise.all([upstream.close(), tokens.close()]);
    // Let the cache's last writes land before the connection goes (bounded: Redis may be the thing that hangs).
    await gw.cache?.idle(2_000);
    redis?.disconnect();
  });
}

export const servicesPlugin = fp(services, { name: 'services', fastify: '5.x' });
