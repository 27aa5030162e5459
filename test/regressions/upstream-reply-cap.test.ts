/**
 * A reply the gateway buffers (everything but SSE relays) is capped: an upstream that sends an endless or huge body
 * must get a 502, not hold the whole thing in the gateway's memory (the body timeout only bounds gaps between
 * chunks). Regression: Upstream.call read the body with arrayBuffer(), without a limit.
 */
import { createServer, type Server } from 'node:http';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';

const MB = 1024 * 1024;
/** Past the gateway's 64 MiB cap, yet quick to send over loopback. */
const TOTAL = 96 * MB;

describe('a huge upstream reply', () => {
  let upstream: Server;
  let app: FastifyInstance;
  let sentBytes = 0;
  let declareLength = false;

  beforeAll(async () => {
    upstream = createServer((req, res) => {
      req.resume();
      const total = TOTAL;
      res.writeHead(200, {
        'content-type': 'application/json',
        'x-request-id': 'up-huge',
        ...(declareLength ? { 'content-length': String(total) } : {}),
      });
      const chunk = Buffer.alloc(MB, 0x20);
      sentBytes = 0;
      const pump = (): void => {
        while (sentBytes < total) {
          sentBytes += chunk.length;
          if (!res.write(chunk)) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      res.on('error', () => {});
      pump();
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const { port } = upstream.address() as { port: number };
    const config = loadConfig({
      DASHSCOPE_API_KEY: 'sk-regression-upstream-key',
      DASHSCOPE_BASE_URL: `http://127.0.0.1:${port}`,
      GATEWAY_API_KEYS: 'alice:alice-regression-key',
      UPSTREAM_RETRIES: '0',
      LOG_LEVEL: 'silent',
    });
    app = await buildApp(config, { logStream: new Writable({ write: (_c, _e, cb) => cb() }) });
    await app.ready();
    await app.gw.tasks.record('task-1', 'alice');
  });
  afterAll(async () => {
    await app.close();
    upstream.closeAllConnections();
    await new Promise<void>((r) => upstream.close(() => r()));
  });

  for (const withLength of [false, true]) {
    it(`is refused with 502 once it passes the cap (${withLength ? 'content-length' : 'chunked'})`, async () => {
      declareLength = withLength;
      const res = await app.inject({
        method: 'GET',
        url: '/api/v1/tasks/task-1',
        headers: { authorization: 'Bearer alice-regression-key' },
      });
      expect(res.statusCode).toBe(502);
      expect(res.json().code).toBe('BadGateway');
      expect(res.json().message).toMatch(/larger than/);
      expect(res.rawPayload.length).toBeLessThan(4096);
    });
  }
});
