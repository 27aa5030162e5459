/**
 * Slow clients against a real gateway process (REQUEST_BODY_TIMEOUT_MS=3000, REQUEST_HEADERS_TIMEOUT_MS=2000):
 * - a body dripped one byte a second is cut at the request timeout: 408, connection closed, nothing sent upstream;
 * - so are headers dripped slower than the headers timeout;
 * - 200 such connections at once do not stop good requests from being answered, each in bounded time;
 * - a dripping client refused with 401 (or 413) before its body was read is disconnected promptly, long before
 *   the request timeout, instead of being read until it stops;
 * - a well-behaved keep-alive client keeps its connection.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Emulator, startEmulator } from '../../src/emulator/server.js';
import {
  CALLER_KEY,
  type GatewayProcess,
  postHead,
  RawConnection,
  startGateway,
  UPSTREAM_KEY,
} from './support.js';

const REQUEST_TIMEOUT_MS = 3000;
const HEADERS_TIMEOUT_MS = 2000;
/** Node looks for expired requests every quarter of the shorter timeout (here 500 ms); the rest is scheduling. */
const CUT_SLACK_MS = 2500;
const EMBEDDINGS = '/v1/embeddings';
const BODY = JSON.stringify({ model: 'text-embedding-v4', input: 'a body sent one byte at a time' });
const auth = { authorization: `Bearer ${CALLER_KEY}` };

describe('slow clients', () => {
  let emu: Emulator;
  let gw: GatewayProcess;

  beforeAll(async () => {
    emu = await startEmulator({ apiKey: UPSTREAM_KEY });
    gw = await startGateway(emu.url, {
      REQUEST_BODY_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
      REQUEST_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
      BODY_LIMIT_BYTES: String(1024 * 1024),
    });
  }, 40_000);

  afterAll(async () => {
    await gw?.stop();
    await emu?.close();
  });

  it('a body dripped one byte a second is cut with 408 at REQUEST_BODY_TIMEOUT_MS, nothing sent upstream', async () => {
    emu.clearReceived();
    const conn = new RawConnection(gw.port);
    conn.write(postHead(EMBEDDINGS, Buffer.byteLength(BODY), { ...auth, 'x-request-id': 'drip-body' }));
    const dripping = conn.drip(BODY, 1000);
    await Promise.race([conn.closed, sleep(REQUEST_TIMEOUT_MS + CUT_SLACK_MS + 2000)]);
    conn.destroy();
    await dripping;
    const r = conn.reply();
    expect(r.status).toBe(408);
    expect(r.text).toMatch(/REQUEST_BODY_TIMEOUT_MS/);
    expect(r.closedAfterMs).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 100);
    expect(r.closedAfterMs).toBeLessThanOrEqual(REQUEST_TIMEOUT_MS + CUT_SLACK_MS);
    expect(emu.received).toHaveLength(0);
    // The access log says what happened: the gateway timed the request out (not the caller leaving: 499).
    let line: Record<string, unknown> | undefined;
    for (let i = 0; i < 50 && !line; i++) {
      line = gw.accessLog().find((l) => l.reqId === 'drip-body');
      if (!line) await sleep(20);
    }
    expect(line).toMatchObject({ status: 408, aborted: true });
  }, 15_000);

  it('headers dripped slower than REQUEST_HEADERS_TIMEOUT_MS are cut with 408', async () => {
    const conn = new RawConnection(gw.port);
    conn.write('POST /v1/embeddings HTTP/1.1\r\n');
    const dripping = conn.drip(`Authorization: Bearer ${CALLER_KEY}\r\nX-Slow: ${'x'.repeat(40)}\r\n`, 200);
    await Promise.race([conn.closed, sleep(HEADERS_TIMEOUT_MS + CUT_SLACK_MS + 2000)]);
    conn.destroy();
    await dripping;
    const r = conn.reply();
    expect(r.status).toBe(408);
    expect(r.closedAfterMs).toBeLessThanOrEqual(HEADERS_TIMEOUT_MS + CUT_SLACK_MS);
  }, 15_000);

  it('200 dripping connections do not stop good requests; every dripper is cut', async () => {
    emu.clearReceived();
    const drippers = Array.from({ length: 200 }, () => new RawConnection(gw.port));
    const drips = drippers.map(async (c) => {
      c.write(postHead(EMBEDDINGS, Buffer.byteLength(BODY), auth));
      await c.drip(BODY, 1000);
    });
    await sleep(300); // all 200 connected and sending
    const agent = new Agent({ connections: 4 });
    const good: { status: number; ms: number }[] = [];
    try {
      for (let i = 0; i < 20; i++) {
        const t0 = performance.now();
        const res = await request(`${gw.url}${EMBEDDINGS}`, {
          method: 'POST',
          dispatcher: agent,
          headers: { ...auth, 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'text-embedding-v4', input: `good request ${i}` }),
          headersTimeout: 5_000,
          bodyTimeout: 5_000,
        });
        await res.body.dump();
        good.push({ status: res.statusCode, ms: performance.now() - t0 });
        await sleep(50);
      }
    } finally {
      await agent.close();
    }
    expect(good.map((g) => g.status)).toEqual(Array(20).fill(200));
    for (const g of good) expect(g.ms).toBeLessThan(2_000);
    expect(emu.received).toHaveLength(20);

    await Promise.race([
      Promise.all(drippers.map((c) => c.closed)),
      sleep(REQUEST_TIMEOUT_MS + CUT_SLACK_MS + 3000),
    ]);
    const open = drippers.filter((c) => c.reply().closedAfterMs === undefined).length;
    for (const c of drippers) c.destroy();
    await Promise.all(drips);
    expect(open).toBe(0);
    expect(drippers.map((c) => c.reply().status)).toEqual(Array(200).fill(408));
    expect(emu.received).toHaveLength(20);
  }, 30_000);

  for (const [what, headers, status] of [
    ['a wrong key', { authorization: 'Bearer gw-not-a-key-0000' }, 401],
    ['no key', {}, 401],
  ] as const) {
    it(`a dripping client with ${what} gets ${status} and is disconnected promptly`, async () => {
      const conn = new RawConnection(gw.port);
      conn.write(postHead(EMBEDDINGS, Buffer.byteLength(BODY), headers));
      const dripping = conn.drip(BODY, 1000);
      await Promise.race([conn.closed, sleep(REQUEST_TIMEOUT_MS + CUT_SLACK_MS)]);
      conn.destroy();
      await dripping;
      const r = conn.reply();
      expect(r.status).toBe(status);
      expect(r.text).toMatch(/\r\nconnection: close\r\n/i);
      // Closed after the linger (500 ms), well before the 3 s request timeout would have cut it.
      expect(r.closedAfterMs).toBeLessThan(1_500);
    }, 15_000);
  }

  it('a body announced over BODY_LIMIT_BYTES gets 413 and the connection is closed promptly', async () => {
    const conn = new RawConnection(gw.port);
    conn.write(postHead(EMBEDDINGS, 2 * 1024 * 1024, auth));
    const dripping = conn.drip('{"model":"text-embedding-v4"', 1000);
    await Promise.race([conn.closed, sleep(REQUEST_TIMEOUT_MS + CUT_SLACK_MS)]);
    conn.destroy();
    await dripping;
    const r = conn.reply();
    expect(r.status).toBe(413);
    expect(r.closedAfterMs).toBeLessThan(1_500);
  }, 15_000);

  it('an idle keep-alive connection outlives both request timeouts and serves the next request', async () => {
    // Behind a load balancer connections idle between requests for up to the keep-alive timeout (65 s): the
    // header and body timeouts count from a request's first byte, never across the idle time between requests.
    const conn = new RawConnection(gw.port);
    const request = postHead(EMBEDDINGS, Buffer.byteLength(BODY), auth) + BODY;
    conn.write(request);
    for (let i = 0; i < 100 && !/\r\n\r\n\{/.test(conn.reply().text); i++) await sleep(20);
    expect(conn.reply().status).toBe(200);
    await sleep(REQUEST_TIMEOUT_MS + 1000); // idle longer than both timeouts (and a few checking intervals)
    expect(conn.reply().closedAfterMs).toBeUndefined();
    const before = conn.reply().text.length;
    conn.write(request);
    for (let i = 0; i < 100 && conn.reply().text.length === before; i++) await sleep(20);
    await sleep(50);
    expect(conn.reply().text.slice(before)).toMatch(/^HTTP\/1\.1 200 /);
    conn.destroy();
  }, 15_000);

  it('a well-behaved keep-alive client keeps its connection', async () => {
    const agent = new Agent({ connections: 1 });
    try {
      for (let i = 0; i < 2; i++) {
        const res = await request(`${gw.url}${EMBEDDINGS}`, {
          method: 'POST',
          dispatcher: agent,
          headers: { ...auth, 'content-type': 'application/json' },
          body: BODY,
        });
        await res.body.dump();
        expect(res.statusCode).toBe(200);
        expect(res.headers.connection).toBe('keep-alive');
      }
      // A refused request whose body was read in full keeps the connection too.
      const res = await request(`${gw.url}${EMBEDDINGS}`, {
        method: 'POST',
        dispatcher: agent,
        headers: { authorization: 'Bearer gw-not-a-key-0000', 'content-type': 'application/json' },
        body: BODY,
      });
      await res.body.dump();
      expect(res.statusCode).toBe(401);
    } finally {
      await agent.close();
    }
  });
});
