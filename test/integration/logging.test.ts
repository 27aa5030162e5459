/**
 * One access-log line per request with the fields operators need, and no secret in any line: neither the
 * upstream DashScope key nor any gateway key, whatever path the request takes (success, bad key, upstream
 * 401, transport failure, validation error).
 */
import { describe, expect, it } from 'vitest';
import { auth, KEYS, UPSTREAM_KEY, useStack } from '../helpers.js';

describe('access log', () => {
  const s = useStack({ env: { UPSTREAM_RETRIES: '0', LOG_LEVEL: 'trace' } });

  it('writes one line per request with request id, route, model, caller, inputs, upstream ids and timings', async () => {
    const before = s.logs.length;
    const res = await s.app.inject({
      method: 'POST',
      url: '/v1/embeddings',
      headers: { ...auth(), 'x-request-id': 'lb-log-1' },
      payload: {
        model: 'text-embedding-v4',
        input: Array.from({ length: 12 }, (_, i) => `t${i}`),
        dimensions: 64,
      },
    });
    expect(res.statusCode).toBe(200);
    const lines = s
      .logRecords()
      .slice(before)
      .filter((r) => r.msg === 'request');
    expect(lines).toHaveLength(1);
    const line = lines[0]!;
    expect(line).toMatchObject({
      reqId: 'lb-log-1',
      method: 'POST',
      route: '/v1/embeddings',
      status: 200,
      caller: 'alice',
      model: 'text-embedding-v4',
      inputs: 12,
      upstream_calls: 2,
    });
    const upstream = line.upstream as { status: number; requestId: string; ms: number }[];
    const headerIds = String(res.headers['x-dashscope-request-id']).split(',');
    expect(upstream.map((u) => u.requestId).sort()).toEqual([...headerIds].sort());
    expect(upstream.every((u) => u.status === 200 && u.ms >= 0)).toBe(true);
    expect(typeof line.ms).toBe('number');
    expect(typeof line.upstream_ms).toBe('number');
  });

  it('never writes the upstream key or a gateway key, on any path', async () => {
    const send = (headers: Record<string, string>, payload: object, url = '/v1/embeddings') =>
      s.app.inject({ method: 'POST', url, headers, payload });
    await send(auth(KEYS.bob), { model: 'text-embedding-v4', input: 'ok', dimensions: 64 });
    await send({ authorization: `Bearer ${KEYS.alice}x` }, { model: 'text-embedding-v4', input: 'x' });
    await send({ 'x-api-key': UPSTREAM_KEY }, { model: 'text-embedding-v4', input: 'x' });
    s.emu.addFault({ status: 401 });
    await send(auth(), { model: 'text-embedding-v4', input: 'x' });
    s.emu.addFault({ reset: true });
    await send(auth(), { model: 'text-embedding-v4', input: 'x' });
    s.emu.addFault({ malformed: true });
    await send(
      auth(),
      { model: 'text-embedding-v4', input: { texts: ['x'] } },
      '/api/v1/services/embeddings/text-embedding/text-embedding',
    );
    await send(auth(), { model: 'text-embedding-v4', input: '' });

    const all = s.logs.join('\n');
    expect(s.logs.length).toBeGreaterThan(7);
    expect(all).not.toContain(UPSTREAM_KEY);
    expect(all).not.toContain(KEYS.alice);
    expect(all).not.toContain(KEYS.bob);
    // The upstream-credential failure is logged at error level, for the operator.
    expect(
      s.logRecords().some((r) => r.level === 50 && String(r.msg).includes("gateway's own credentials")),
    ).toBe(true);
  });

  it('a caller that disconnects mid-request is logged once at info, not as a gateway error', async () => {
    const base = await s.listen();
    s.emu.addFault({ delayMs: 700 });
    const before = s.logs.length;
    const ac = new AbortController();
    const pending = fetch(`${base}/v1/embeddings`, {
      method: 'POST',
      headers: { ...auth(), 'content-type': 'application/json', 'x-request-id': 'lb-gone-1' },
      body: JSON.stringify({ model: 'text-embedding-v4', input: 'slow', dimensions: 64 }),
      signal: ac.signal,
    });
    setTimeout(() => ac.abort(), 150);
    await expect(pending).rejects.toThrow();
    // Bounded wait for the gateway to notice and log.
    const deadline = Date.now() + 3000;
    const mine = () =>
      s
        .logRecords()
        .slice(before)
        .filter((r) => r.reqId === 'lb-gone-1');
    while (Date.now() < deadline && !mine().some((r) => r.msg === 'request')) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const lines = mine();
    expect(lines.filter((r) => r.msg === 'request')).toHaveLength(1);
    expect(lines.some((r) => (r.level as number) >= 50)).toBe(false);
  });
});
