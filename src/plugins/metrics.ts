/**
 * Per-request metrics (requests by route pattern and status, duration, billed tokens per caller, cache lookups),
 * and the /metrics listener's life: started once the app is ready, when METRICS_PORT is set, and closed with it.
 * The metric objects live in src/metrics/ (built in the services plugin, `app.gw.metrics`).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { type MetricsListener, startMetricsListener } from '../metrics/listener.js';

/** A header the cache sets (x-cache-hits / x-cache-misses) as a count; 0 when absent or not a count. */
function countHeader(reply: FastifyReply, name: string): number {
  const v = reply.getHeader(name);
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : Number.NaN;
  return Number.isSafeInteger(n) && n >= 0 ? n : 0;
}

async function metrics(app: FastifyInstance): Promise<void> {
  const { metrics: m, config } = app.gw;

  const record = (request: FastifyRequest, reply: FastifyReply): void => {
    // The route pattern, never the URL: task ids and typos must not become label values.
    const route = request.routeOptions.url ?? 'unmatched';
    m.recordRequest(request.method, route, reply.statusCode, reply.elapsedTime / 1000);
    const ctx = request.ctx;
    if (ctx?.tokens !== undefined && ctx.model !== undefined) {
      m.recordTokens(ctx.model, ctx.caller ?? 'anonymous', ctx.tokens);
    }
    m.recordCache(countHeader(reply, 'x-cache-hits'), countHeader(reply, 'x-cache-misses'));
  };

  // At the end, written in full or not: a caller that hangs up mid-reply (a stream, typically) is counted too.
  app.lifecycle.onEnd(record);

  let listener: MetricsListener | undefined;
  const { port, host } = config.metrics;
  if (port !== undefined) {
    app.addHook('onReady', async () => {
      listener = await startMetricsListener(m.registry, host, port);
      m.url = listener.url;
      app.log.info({ url: listener.url }, 'metrics listener started');
    });
    app.addHook('onClose', async () => {
      await listener?.close();
      m.url = undefined;
    });
  }
}

export const metricsPlugin = fp(metrics, {
  name: 'metrics',
  fastify: '5.x',
  dependencies: ['services', 'access-log', 'lifecycle'],
});
