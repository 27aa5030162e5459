/**
 * The gateway's services, built once per app and shared by every route through `app.gw`: the model table, Redis
 * (when configured), the upstream budget, the DashScope client and the task-owner store. Closed in reverse order
 * when the app closes.
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import type { Gateway } from '../gateway.js';
import { buildModelTable } from '../models/index.js';
import { createGovernor } from '../ratelimit/governor.js';
import { createRedis } from '../redis.js';
import { createTaskOwnerStore } from '../tasks/index.js';
import { createTokenChecker } from '../tokens/index.js';
import { Upstream } from '../upstream/client.js';

async function services(app: FastifyInstance, opts: { config: Config }): Promise<void> {
  const { config } = opts;
  const redis = config.redisUrl ? await createRedis(config.redisUrl) : undefined;
  // A Redis outage must not crash the process: features fall back and log (ioredis emits 'error' on every failed reconnect).
  redis?.on('error', () => {});
  const budget = createGovernor({ settings: config.upstreamBudget, redis, log: app.log });
  const upstream = new Upstream(config.upstream, budget);
  const tokens = createTokenChecker(config.tokenizer);
  const gw: Gateway = {
    config,
    upstream,
    models: buildModelTable(config.rowLimits),
    redis,
    budget,
    tasks: createTaskOwnerStore(redis),
    tokens,
  };
  app.decorate('gw', gw);
  app.addHook('onClose', async () => {
    await Promise.all([upstream.close(), tokens.close()]);
    redis?.disconnect();
  });
}

export const servicesPlugin = fp(services, { name: 'services', fastify: '5.x' });
