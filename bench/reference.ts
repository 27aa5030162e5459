/**
 * The benchmark's yardstick: the least a Node proxy in front of DashScope has to do. Fastify receives the body
 * as raw bytes (no JSON parse), undici forwards it over a keep-alive Pool with the upstream key swapped in, and
 * the reply bytes are streamed back untouched. The gateway does strictly more (auth, validation, token
 * pre-check, reply scan and re-wrap, access log), so its throughput as a fraction of this one is the cost of
 * those features.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { Pool } from 'undici';

export interface ReferenceOptions {
  /** Upstream origin, e.g. the emulator's URL. */
  upstream: string;
  /** Sent upstream as `Authorization: Bearer <apiKey>`, replacing whatever the caller sent. */
  apiKey: string;
  /** Upstream keep-alive connections (the gateway's UPSTREAM_CONNECTIONS default). */
  connections?: number;
}

export async function buildReference(opts: ReferenceOptions): Promise<FastifyInstance> {
  const pool = new Pool(opts.upstream, { connections: opts.connections ?? 64, keepAliveTimeout: 30_000 });
  const app = Fastify({ logger: false, bodyLimit: 32 * 1024 * 1024, keepAliveTimeout: 65_000 });
  // Keep the body as the bytes that arrived: no JSON.parse on the way in.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  app.addHook('onClose', async () => pool.close());

  // Any POST path is forwarded as is, so the same client request shape can hit the emulator or this proxy.
  app.post('/*', async (request, reply) => {
    const res = await pool.request({
      method: 'POST',
      path: request.url,
      headers: { authorization: `Bearer ${opts.apiKey}`, 'content-type': 'application/json' },
      body: request.body as Buffer,
    });
    const len = res.headers['content-length'];
    reply.code(res.statusCode).header('content-type', 'application/json');
    if (typeof len === 'string') reply.header('content-length', len);
    return reply.send(res.body);
  });
  return app;
}
