/**
 * Draining for a graceful stop behind a load balancer. Tracks every request in flight by id (for the one log line
 * that names what a hard stop cut) and holds the draining state: once begun, /readyz answers 503 and every reply
 * carries `connection: close`, so kept-alive clients (the load balancer above all) open their next request
 * elsewhere instead of finding the socket closed under them. src/server.ts decides when to begin, when to stop
 * accepting and when to give up; this plugin only knows what is in flight and whether we are draining.
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

export interface Drain {
  /** True from begin() on: /readyz says "closing" and replies ask the client to close the connection. */
  readonly draining: boolean;
  /** Enter the draining state (idempotent). */
  begin(): void;
  /** Ids of the requests not yet answered, oldest first. */
  inFlight(): string[];
}

declare module 'fastify' {
  interface FastifyInstance {
    drain: Drain;
  }
}

async function drainPlugin(app: FastifyInstance): Promise<void> {
  // Insertion order is arrival order; a Map keyed by the request object, since a caller may reuse an X-Request-Id.
  const open = new Map<object, string>();
  let draining = false;
  const state: Drain = {
    get draining() {
      return draining;
    },
    begin() {
      draining = true;
    },
    inFlight: () => [...open.values()],
  };
  app.decorate('drain', state);

  app.lifecycle.onRequest((request, reply) => void open.set(reply.raw, request.id));
  // The end comes both when the reply was sent and when the caller went away: either way it is no longer ours.
  app.lifecycle.onEnd((_request, reply) => void open.delete(reply.raw));

  // Replies that began before the signal get the header too: it is added when the reply goes out.
  app.lifecycle.onSend((_request, reply) => {
    if (draining) reply.header('connection', 'close');
  });
}

export const drain = fp(drainPlugin, { name: 'drain', fastify: '5.x', dependencies: ['lifecycle'] });
