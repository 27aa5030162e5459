/** Liveness and readiness for the load balancer and the container HEALTHCHECK; no gateway key needed. */
import type { FastifyInstance } from 'fastify';

export async function healthRoutes(app: FastifyInstance): Promise<void> {
  // Anyone may ask: credentials written into DASHSCOPE_BASE_URL (an egress proxy's user:password) stay out of it.
  const base = new URL(app.gw.config.upstream.baseUrl);
  base.username = '';
  base.password = '';
  const upstreamName = base.href.replace(/\/+$/, '');
  app.get('/healthz', { config: { public: true } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { config: { public: true } }, async (_request, reply) => {
    // From the signal on (src/server.ts): the load balancer takes this replica out while it still serves.
    if (app.drain.draining || app.gw.upstream.closed) return reply.code(503).send({ status: 'closing' });
    // A replica on its local budget share (Redis unreachable) still serves: it stays in the pool (200) and says so.
    const budget = app.gw.budget.status();
    return {
      status: budget.degraded ? 'degraded' : 'ready',
      upstream: upstreamName,
      upstream_budget: budget,
    };
  });
}
