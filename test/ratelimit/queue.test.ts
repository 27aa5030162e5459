/**
 * The upstream budget on one gateway (in memory, no REDIS_URL), through the real HTTP stack and the emulator:
 * waiting then succeeding, waiting past the limit, a full queue, a caller leaving the queue, round-robin between
 * keys, the x-ratelimit-*-requests headers, and the 429 in both dialects with a usable Retry-After.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { auth, KEYS, type Stack, startStack, upstreamCalls } from '../helpers.js';

const EMBED = '/v1/embeddings';
const NATIVE = '/api/v1/services/embeddings/text-embedding/text-embedding';
const body = (text = 'hello') => ({ model: 'text-embedding-v4', input: text, encoding_format: 'float' });

function budgetEnv(
  limit: number,
  windowMs: number,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    RATE_LIMIT_RPM: String(limit),
    RATE_LIMIT_WINDOW_MS: String(windowMs),
    // The margin absorbs the time between the gateway's decision and the emulator's arrival stamp.
    RATE_LIMIT_MARGIN_MS: '100',
    ...extra,
  };
}

let s: Stack | undefined;
afterEach(async () => {
  await s?.close();
  s = undefined;
});

const post = (st: Stack, key: string = KEYS.alice, text = 'hello', requestId?: string) =>
  st.app.inject({
    method: 'POST',
    url: EMBED,
    headers: { ...auth(key), ...(requestId ? { 'x-request-id': requestId } : {}) },
    payload: body(text),
  });

describe('upstream budget, one replica in memory', () => {
  it('a request that finds the budget spent waits for the next unit, then succeeds', async () => {
    s = await startStack({ env: budgetEnv(2, 1500) });
    const t0 = Date.now();
    const results = await Promise.all([post(s), post(s), post(s)]);
    const elapsed = results.map(() => Date.now() - t0);
    expect(results.map((r) => r.statusCode)).toEqual([200, 200, 200]);
    const calls = upstreamCalls(s.emu, NATIVE).map((c) => c.at);
    expect(calls).toHaveLength(3);
    // The third call went upstream only once the first left the 1.5 s window.
    expect(calls[2]! - calls[0]!).toBeGreaterThanOrEqual(1500);
    expect(Math.max(...elapsed)).toBeGreaterThanOrEqual(1450);
    expect(results[0]!.headers['x-ratelimit-limit-requests']).toBe('2');
    const remaining = results.map((r) => Number(r.headers['x-ratelimit-remaining-requests'])).sort();
    expect(remaining).toEqual([0, 0, 1]);
    expect(String(results[0]!.headers['x-ratelimit-reset-requests'])).toMatch(/^\d+(\.\d+)?(ms|s)$/);
  });

  it('a request that waits past RATE_LIMIT_MAX_WAIT_MS gets 429 with Retry-After after waiting', async () => {
    // One call per second; a request may wait 1.5 s. The second waits ~1 s and goes; the third would go at ~2 s,
    // which is past its limit, so it is answered 429 as soon as that is certain (when the second goes).
    s = await startStack({ env: budgetEnv(1, 1000, { RATE_LIMIT_MAX_WAIT_MS: '1500' }) });
    const t0 = Date.now();
    const timed = (p: ReturnType<typeof post>) => p.then((r) => ({ r, ms: Date.now() - t0 }));
    const [a, b, c] = await Promise.all([timed(post(s)), timed(post(s)), timed(post(s))]);
    expect([a.r.statusCode, b.r.statusCode, c.r.statusCode]).toEqual([200, 200, 429]);
    expect(b.ms).toBeGreaterThanOrEqual(950);
    expect(c.ms).toBeGreaterThanOrEqual(950); // it did wait…
    expect(c.ms).toBeLessThan(1500 + 300); // …but not beyond its limit
    expect(c.r.headers['retry-after']).toMatch(/^[1-9]\d*$/);
    expect(Number(c.r.headers['retry-after'])).toBeLessThanOrEqual(60);
    expect(upstreamCalls(s.emu, NATIVE)).toHaveLength(2);
  });

  it('when no unit can come back within the wait limit, the 429 is immediate', async () => {
    s = await startStack({ env: budgetEnv(1, 5000, { RATE_LIMIT_MAX_WAIT_MS: '1000' }) });
    expect((await post(s)).statusCode).toBe(200);
    const t0 = Date.now();
    const r = await post(s);
    expect(Date.now() - t0).toBeLessThan(300);
    expect(r.statusCode).toBe(429);
    expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(4);
    expect(Number(r.headers['retry-after'])).toBeLessThanOrEqual(6); // 5 s window + 100 ms margin
    expect(r.headers['x-ratelimit-remaining-requests']).toBe('0');
  });

  it('a full queue answers 429 at once; the queued requests are still served', async () => {
    s = await startStack({
      env: budgetEnv(1, 1000, { RATE_LIMIT_QUEUE_SIZE: '2', RATE_LIMIT_MAX_WAIT_MS: '5000' }),
    });
    const first = await post(s);
    expect(first.statusCode).toBe(200);
    const queued = [post(s), post(s)];
    await new Promise((r) => setTimeout(r, 50)); // both are in the queue now
    const t0 = Date.now();
    const overflow = await post(s);
    expect(Date.now() - t0).toBeLessThan(300);
    expect(overflow.statusCode).toBe(429);
    expect(overflow.json().error.message).toMatch(/2 calls are already waiting/);
    expect(Number(overflow.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect((await Promise.all(queued)).map((r) => r.statusCode)).toEqual([200, 200]);
    expect(upstreamCalls(s.emu, NATIVE)).toHaveLength(3);
  });

  it('a caller that disconnects while queued leaves the queue and takes no unit', async () => {
    s = await startStack({ env: budgetEnv(1, 1500, { RATE_LIMIT_MAX_WAIT_MS: '10000' }) });
    const base = await s.listen();
    const send = (signal?: AbortSignal) =>
      fetch(`${base}${EMBED}`, {
        method: 'POST',
        headers: { ...auth(), 'content-type': 'application/json' },
        body: JSON.stringify(body()),
        signal,
      });
    expect((await send()).status).toBe(200);
    const ac = new AbortController();
    const leaving = send(ac.signal).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 200));
    const ready = async () => (await s!.app.inject({ method: 'GET', url: '/readyz' })).json();
    expect((await ready()).upstream_budget.queued).toBe(1);
    ac.abort();
    expect(await leaving).toBeInstanceOf(Error);
    await new Promise((r) => setTimeout(r, 100));
    expect((await ready()).upstream_budget.queued).toBe(0);
    // Once the first call leaves the window, the whole budget (1) is free again: the leaver took nothing.
    await new Promise((r) => setTimeout(r, 1500));
    const after = await send();
    expect(after.status).toBe(200);
    expect(after.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    expect(upstreamCalls(s.emu, NATIVE)).toHaveLength(2);
  });

  it('two callers, one sending 10× the other’s requests: the quiet one still gets its share', async () => {
    // 4 calls per second. alice floods 40 requests, then bob sends 4. Strict arrival order would serve bob
    // after all of alice's (~10 s); round-robin per key serves him within the next two windows.
    s = await startStack({ env: budgetEnv(4, 1000, { RATE_LIMIT_MAX_WAIT_MS: '4000' }) });
    const alice = Array.from({ length: 40 }, (_, i) => post(s!, KEYS.alice, `a${i}`, `alice-${i}`));
    await new Promise((r) => setTimeout(r, 50));
    const bob = Array.from({ length: 4 }, (_, i) => post(s!, KEYS.bob, `b${i}`, `bob-${i}`));
    const bobRes = await Promise.all(bob);
    expect(bobRes.map((r) => r.statusCode)).toEqual([200, 200, 200, 200]);
    const order = upstreamCalls(s.emu, NATIVE).map((c) => String(c.headers['x-request-id']));
    const lastBob = Math.max(...order.map((id, i) => (id.startsWith('bob-') ? i : -1)));
    // 4 for alice at once, then alternating: bob's 4th call is at most the 12th upstream call.
    expect(lastBob).toBeLessThan(12);
    const aliceRes = await Promise.all(alice);
    const aliceOk = aliceRes.filter((r) => r.statusCode === 200).length;
    expect(aliceOk).toBeGreaterThanOrEqual(12);
    for (const r of aliceRes.filter((x) => x.statusCode !== 200)) {
      expect(r.statusCode).toBe(429);
      expect(r.headers['retry-after']).toMatch(/^[1-9]\d*$/);
    }
  });

  it('429s speak the caller’s dialect, say it is the gateway’s upstream budget, and never say quota', async () => {
    s = await startStack({ env: budgetEnv(1, 10_000, { RATE_LIMIT_MAX_WAIT_MS: '0' }) });
    expect((await post(s)).statusCode).toBe(200);
    const openai = await post(s);
    expect(openai.statusCode).toBe(429);
    const oe = openai.json().error;
    expect(oe).toMatchObject({ type: 'rate_limit_error', code: 'rate_limit_exceeded', param: null });
    expect(oe.message).toMatch(
      /gateway.*upstream budget.*1 calls per 10 s to DashScope for text-embedding-v4/,
    );
    expect(openai.body).not.toMatch(/quota/i);
    expect(Number(openai.headers['retry-after'])).toBeGreaterThanOrEqual(9);
    expect(Number(openai.headers['retry-after'])).toBeLessThanOrEqual(11);

    const native = await s.app.inject({
      method: 'POST',
      url: NATIVE,
      headers: auth(),
      payload: { model: 'text-embedding-v4', input: { texts: ['x'] } },
    });
    expect(native.statusCode).toBe(429);
    const nb = native.json();
    expect(nb).toMatchObject({ code: 'Throttling', request_id: native.headers['x-request-id'] });
    expect(nb.message).toMatch(/upstream budget/);
    expect(native.body).not.toMatch(/quota/i);
    expect(native.headers['retry-after']).toMatch(/^\d+$/);
    expect(native.headers['x-ratelimit-limit-requests']).toBe('1');
  });

  it('counts every upstream call: a 25-input request split into 3 calls takes 3 units', async () => {
    s = await startStack({ env: budgetEnv(3, 10_000, { RATE_LIMIT_MAX_WAIT_MS: '0' }) });
    const input = Array.from({ length: 25 }, (_, i) => `t${i}`);
    const big = await s.app.inject({
      method: 'POST',
      url: EMBED,
      headers: auth(),
      payload: { model: 'text-embedding-v4', input, encoding_format: 'float' },
    });
    expect(big.statusCode).toBe(200);
    expect(big.headers['x-ratelimit-remaining-requests']).toBe('0');
    expect((await post(s)).statusCode).toBe(429);
    // Another model has its own budget.
    const v3 = await s.app.inject({
      method: 'POST',
      url: EMBED,
      headers: auth(),
      payload: { model: 'text-embedding-v3', input: 'x', encoding_format: 'float' },
    });
    expect(v3.statusCode).toBe(200);
  });

  it('models grouped in RATE_LIMIT_MODELS share one budget', async () => {
    s = await startStack({
      env: budgetEnv(100, 10_000, {
        RATE_LIMIT_MAX_WAIT_MS: '0',
        RATE_LIMIT_MODELS: 'text-embedding-v3+text-embedding-v4=2',
      }),
    });
    const call = (model: string) =>
      s!.app.inject({
        method: 'POST',
        url: EMBED,
        headers: auth(),
        payload: { model, input: 'x', encoding_format: 'float' },
      });
    expect((await call('text-embedding-v3')).statusCode).toBe(200);
    const v4 = await call('text-embedding-v4');
    expect(v4.statusCode).toBe(200);
    expect(v4.headers['x-ratelimit-limit-requests']).toBe('2');
    expect((await call('text-embedding-v3')).statusCode).toBe(429);
  });

  it('a DashScope 429 holds off the following calls for its Retry-After instead of hammering it', async () => {
    s = await startStack({ env: budgetEnv(100, 10_000) });
    s.emu.addFault({ status: 429, headers: { 'retry-after': '1' }, times: 1 });
    const first = await post(s);
    expect(first.statusCode).toBe(429);
    expect(first.headers['retry-after']).toBe('1');
    const t0 = Date.now();
    const second = await post(s);
    expect(second.statusCode).toBe(200);
    const calls = upstreamCalls(s.emu, NATIVE).map((c) => c.at);
    expect(calls[1]! - calls[0]!).toBeGreaterThanOrEqual(950);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(800);
  });
});
