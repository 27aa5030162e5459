/**
 * One set of per-request hooks shared by every concern that needs a request's arrival, the moment its reply goes
 * out, or its end (access log, drain, metrics, upstream-budget headers, closing unread bodies, the caller's abort
 * signal). Each concern registers plain synchronous steps here instead of Fastify hooks and listeners of its own.
 *
 * Why: an async Fastify hook costs a promise and a microtask turn per request, and each `close` listener a closure
 * and an emitter entry. This replaces seven hooks and four listeners per request with one callback hook per phase
 * and one listener; the same-run before/after is in bench/README.md.
 *
 * The end is Fastify's onResponse for a reply written in full (it runs before inject() resolves, so tests see its
 * effects at once), or the response's `close` event when the connection went away first (`aborted`).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { EndStep, Lifecycle, Step } from '../gateway.js';

/** The abort reason when the caller leaves; undici and timers rethrow it, and the error handler recognises the name. */
function callerGone(): Error {
  return new DOMException('caller disconnected', 'AbortError');
}

async function lifecycle(app: FastifyInstance): Promise<void> {
  const starts: Step[] = [];
  const sends: Step[] = [];
  const ends: EndStep[] = [];
  app.decorateRequest('callerAbort', null);
  app.decorateRequest('ended', false);
  app.decorate('lifecycle', {
    onRequest: (step: Step) => void starts.push(step),
    onSend: (step: Step) => void sends.push(step),
    onEnd: (step: EndStep) => void ends.push(step),
    callerSignal(request: FastifyRequest): AbortSignal {
      request.callerAbort ??= new AbortController();
      return request.callerAbort.signal;
    },
  } satisfies Lifecycle);

  const end = (request: FastifyRequest, reply: FastifyReply, aborted: boolean): void => {
    if (request.ended) return;
    request.ended = true;
    if (aborted) request.callerAbort?.abort(callerGone());
    // In an event listener a throw would take the process down: each step's failure is logged and the rest run.
    for (const step of ends) {
      try {
        step(request, reply, aborted);
      } catch (err) {
        request.log.error({ err }, 'request end step failed');
      }
    }
  };

  app.addHook('onRequest', (request, reply, done) => {
    // Fastify's onResponse (below) ends a reply written in full, before this; `close` ends every other request
    // (the connection lost first, or a reply Fastify did not finish itself), once.
    reply.raw.on('close', () => end(request, reply, !reply.raw.writableFinished));
    try {
      for (const step of starts) step(request, reply);
    } catch (err) {
      done(err as Error);
      return;
    }
    done();
  });

  app.addHook('onResponse', (request, reply, done) => {
    end(request, reply, false);
    done();
  });

  app.addHook('onSend', (request, reply, payload, done) => {
    try {
      for (const step of sends) step(request, reply);
    } catch (err) {
      done(err as Error);
      return;
    }
    done(null, payload);
  });
}

export const lifecyclePlugin = fp(lifecycle, { name: 'lifecycle', fastify: '5.x' });
