/**
 * Caller authentication with gateway keys (`Authorization: Bearer <key>` or `x-api-key`).
 * Keys are compared as SHA-256 digests with timingSafeEqual, against every configured key without an early
 * exit, so the time taken says nothing about how close a guess was. Only the key's *name* (and the DashScope
 * workspace configured with it) leaves this module.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { GatewayKey } from '../config.js';
import { GatewayError } from '../errors.js';
import type { Caller } from '../gateway.js';

export type { Caller } from '../gateway.js';

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

export class KeyRing {
  private readonly entries: { caller: Caller; digest: Buffer }[];

  constructor(
    keys: GatewayKey[],
    readonly anonymous: boolean,
  ) {
    this.entries = keys.map((k) => ({
      caller: k.workspace === undefined ? { name: k.name } : { name: k.name, workspace: k.workspace },
      digest: digest(k.key),
    }));
  }

  /** The presented key from the headers, if any. */
  static presented(headers: IncomingHttpHeaders): string | undefined {
    const auth = headers.authorization;
    if (typeof auth === 'string') {
      const m = /^Bearer\s+(.+)$/i.exec(auth.trim());
      if (m) return m[1]!.trim();
    }
    const x = headers['x-api-key'];
    return typeof x === 'string' && x !== '' ? x.trim() : undefined;
  }

  /** The caller for these headers, or undefined when the request must be refused. */
  authenticate(headers: IncomingHttpHeaders): Caller | undefined {
    const key = KeyRing.presented(headers);
    if (key === undefined) {
      // Anonymous means no credential header at all: one the gateway cannot read (Basic, an empty Bearer, an
      // empty or blank Authorization or x-api-key) is a wrong key, not an absent one.
      const credential = headers.authorization !== undefined || headers['x-api-key'] !== undefined;
      return this.anonymous && !credential ? { name: 'anonymous' } : undefined;
    }
    const d = digest(key);
    let found: Caller | undefined;
    for (const e of this.entries) {
      if (timingSafeEqual(d, e.digest) && found === undefined) found = e.caller;
    }
    if (found !== undefined) return found;
    // With anonymous access on, a wrong key is still refused: a typo should not silently become anonymous.
    return undefined;
  }
}

/** Every route except those marked `config: { public: true }` needs a gateway key; the caller's name is kept. */
async function auth(app: FastifyInstance): Promise<void> {
  const { config } = app.gw;
  const keys = new KeyRing(config.gatewayKeys, config.allowAnonymous);
  app.decorateRequest('caller', undefined);
  // A callback hook, not an async one: no promise and no microtask turn on every request.
  app.addHook('onRequest', (request, _reply, done) => {
    if (request.routeOptions.config?.public) return done();
    const caller = keys.authenticate(request.headers);
    if (!caller) {
      const presented = KeyRing.presented(request.headers) !== undefined;
      return done(
        new GatewayError(
          'UNAUTHORIZED',
          presented
            ? 'the gateway key is not valid'
            : 'a gateway key is required: send Authorization: Bearer <key> or x-api-key',
        ),
      );
    }
    request.caller = caller;
    request.ctx.caller = caller.name;
    done();
  });
}

export const authPlugin = fp(auth, {
  name: 'auth',
  fastify: '5.x',
  dependencies: ['services', 'access-log'],
});
