/**
 * Wires the upstream budget into the request lifecycle: each request runs inside its budget scope (so the gate
 * knows the caller key and can leave the budget state), responses carry x-ratelimit-*-requests for the model
 * used, waiting calls are still served while the server drains, and start-up waits briefly for Redis.
 * Register it after the authentication hook and before the routes.
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { type BudgetScope, budgetScope, durationText } from './context.js';
import type { Governor } from './governor.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The upstream budget scope of this request (caller key, x-ratelimit-*-requests values). */
    budgetScope: BudgetScope | undefined;
  }
}

export interface BudgetPluginOptions {
  budget: Governor;
  /** The model table's names: a RATE_LIMIT_MODELS entry naming none of them is most likely a typo. */
  knownModels: string[];
}

async function budgetPlugin(app: FastifyInstance, opts: BudgetPluginOptions): Promise<void> {
  const { budget } = opts;
  const unknown = budget.ruleModels().filter((m) => !opts.knownModels.includes(m));
  if (unknown.length > 0) {
    app.log.warn({ models: unknown }, 'RATE_LIMIT_MODELS names models this gateway does not serve');
  }
  app.decorateRequest('budgetScope', undefined);

  // Callback style on purpose: calling done() inside run() makes the rest of the lifecycle (the handler and its
  // upstream calls) run in this request's scope.
  app.addHook('onRequest', (request, _reply, done) => {
    const scope: BudgetScope = { caller: request.caller?.name ?? 'anonymous', headers: undefined };
    request.budgetScope = scope;
    budgetScope.run(scope, done);
  });

  app.lifecycle.onSend((request, reply) => {
    const h = request.budgetScope?.headers;
    if (h) {
      reply.header('x-ratelimit-limit-requests', String(h.limit));
      if (h.remaining !== undefined) reply.header('x-ratelimit-remaining-requests', String(h.remaining));
      reply.header('x-ratelimit-reset-requests', durationText(h.resetMs));
    }
  });

  app.addHook('onReady', async () => budget.waitForRedis(2_000));
  // Only once the server has stopped and every request was answered: a graceful stop (src/server.ts) lets calls
  // queued for the budget go out and answer, within SHUTDOWN_TIMEOUT_MS, instead of refusing them with a 503.
  app.addHook('onClose', async () => budget.close());
}

export const upstreamBudgetHooks = fp(budgetPlugin, {
  name: 'upstream-budget',
  fastify: '5.x',
  dependencies: ['lifecycle'],
});
