/** Liveness and readiness for the load balancer and the container HEALTHCHECK; no gateway key needed. */
import type { FastifyInstance } from 'fastify';

export async function healthRoutes(app: FastifyInstance): Promise<void> {
  app.get('/healthz', { config: { public: true } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { config: { public: true } }, async (_request, reply) => {
    if (app.gw.upstream.closed) return reply.code(503).send({ status: 'closing' });
    // A replica on its local budget share (Redis unreachable) still serves: it stays in the pool (200) and says so.
    const budget = app.gw.budget.status();
    return {
      status: budget.degraded ? 'degraded' : 'ready',
      upstream: app.gw.config.upstream.baseUrl,
      upstream_budget: budget,
    };
  });
}
