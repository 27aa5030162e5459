/**
 * The upstream governor on one gateway (in memory, no REDIS_URL), through the real HTTP stack and the emulator:
 * a request that can never fit is refused before any upstream call with the numbers, one that fits waits (paced)
 * and succeeds, one that fits only later gets 429 with a Retry-After in the caller's dialect, split requests are
 * admitted whole, grouped models share a budget, and a DashScope 429 holds the budget off.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { auth, type Stack, startStack, upstreamCalls } from '../helpers.js';
import { maxInWindow } from './support.js';

const EMBED = '/v1/embeddings';
const NATIVE = '/api/v1/services/embeddings/text-embedding/text-embedding';

function budgetEnv(
  limit: number,
  windowMs: number,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    RATE_LIMIT_RPM: String(limit),
    RATE_LIMIT_WINDOW_MS: String(windowMs),
    RATE_LIMIT_PACE_MS: '300',
    RATE_LIMIT_MARGIN_MS: '60',
    ...extra,
  };
}

let s: Stack | undefined;
afterEach(async () => {
  await s?.close();
  s = undefined;
});

const embed = (st: Stack, input: string | string[], model = 'text-embedding-v4') =>
  st.app.inject({
    method: 'POST',
    url: EMBED,
    headers: auth(),
    payload: { model, input, encoding_format: 'float' },
  });

describe('upstream governor, one replica in memory', () => {
  it('refuses a 2,048-text request that can never fit with 400 and the numbers, before any upstream call', async () => {
    // The defaults: 120 calls per minute (2 per second) and 30 s of waiting; text-embedding-v4 takes 10 texts a call.
    s = await startStack({ env: { RATE_LIMIT_RPM: '120' } });
    const input = Array.from({ length: 2048 }, (_, i) => `text ${i}`);
    const r = await embed(s, input);
    expect(r.statusCode).toBe(400);
    const e = r.json().error;
    expect(e.type).toBe('invalid_request_error');
    expect(e.message).toContain('needs 205 calls');
    expect(e.message).toContain('120 calls per 60 s and 2 per 1 s');
    expect(e.message).toContain('at most 56 calls');
    expect(e.message).toContain('at most 560 inputs at 10 per call');
    expect(r.body).not.toMatch(/quota/i);
    expect(upstreamCalls(s.emu, NATIVE)).toHaveLength(0);
    // Nothing was taken: a request that fits goes at once. (That the largest named request is admitted is
    // governor.test.ts's business; here it would take its 30 s of pacing.)
    expect((await embed(s, input.slice(0, 20))).statusCode).toBe(200);
    expect(upstreamCalls(s.emu, NATIVE)).toHaveLength(2);
  }, 30_000);

  it('a split request that fits waits for its paced calls and succeeds', async () => {
    // The emulator stamps arrival, not the gateway's grant: loopback latency under a loaded CI machine (the first
    // two calls also open connections) can move calls by more than the 60 ms margin the other tests use, which is
    // the very jitter RATE_LIMIT_MARGIN_MS exists for. A 200 ms margin keeps the arrival check about pacing.
    s = await startStack({ env: budgetEnv(20, 3000, { RATE_LIMIT_MARGIN_MS: '200' }) });
    const input = Array.from({ length: 45 }, (_, i) => `t${i}`); // 5 calls, 2 per 0.3 s
    const r = await embed(s, input);
    expect(r.statusCode).toBe(200);
    expect(r.json().data).toHaveLength(45);
    const calls = upstreamCalls(s.emu, NATIVE).map((c) => c.at);
    expect(calls).toHaveLength(5);
    expect(maxInWindow(calls, 300)).toBeLessThanOrEqual(2);
    expect(Math.max(...calls) - Math.min(...calls)).toBeGreaterThanOrEqual(600);
    expect(r.headers['x-ratelimit-limit-requests']).toBe('20');
    expect(r.headers['x-ratelimit-remaining-requests']).toBe('15');
  });

  it('a request that fits only later gets 429 at once, in the caller’s dialect, with a true Retry-After', async () => {
    s = await startStack({ env: budgetEnv(2, 3000, { RATE_LIMIT_MAX_WAIT_MS: '500' }) });
    expect((await embed(s, 'a')).statusCode).toBe(200);
    expect((await embed(s, 'b')).statusCode).toBe(200);
    const t0 = Date.now();
    const openai = await embed(s, 'c');
    expect(Date.now() - t0).toBeLessThan(300);
    expect(openai.statusCode).toBe(429);
    const oe = openai.json().error;
    expect(oe).toMatchObject({ type: 'rate_limit_error', code: 'rate_limit_exceeded', param: null });
    expect(oe.message).toMatch(/pacing its calls to DashScope.*2 calls per 3 s/);
    expect(openai.body).not.toMatch(/quota/i);
    const retryAfter = Number(openai.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(4);

    const native = await s.app.inject({
      method: 'POST',
      url: NATIVE,
      headers: auth(),
      payload: { model: 'text-embedding-v4', input: { texts: ['x'] } },
    });
    expect(native.statusCode).toBe(429);
    expect(native.json()).toMatchObject({ code: 'Throttling', request_id: native.headers['x-request-id'] });
    expect(native.body).not.toMatch(/quota/i);

    // After the Retry-After it is admitted.
    await new Promise((r) => setTimeout(r, retryAfter * 1000));
    expect((await embed(s, 'c')).statusCode).toBe(200);
    expect(upstreamCalls(s.emu, NATIVE)).toHaveLength(3);
  }, 20_000);

  it('a split request is admitted whole or not at all: a refusal leaves no call made', async () => {
    s = await startStack({ env: budgetEnv(3, 10_000, { RATE_LIMIT_MAX_WAIT_MS: '2000' }) });
    expect((await embed(s, 'x')).statusCode).toBe(200);
    // 3 calls would need a fourth unit within 10 s: refused whole (429), none of its calls made.
    const big = await embed(
      s,
      Array.from({ length: 25 }, (_, i) => `t${i}`),
    );
    expect(big.statusCode).toBe(429);
    expect(upstreamCalls(s.emu, NATIVE)).toHaveLength(1);
    // Another model has its own budget.
    expect((await embed(s, 'x', 'text-embedding-v3')).statusCode).toBe(200);
  });

  it('tokens per minute: admitted from the token counts, refused 400 when one call can never fit, 429 when later', async () => {
    s = await startStack({
      env: budgetEnv(100, 3000, {
        RATE_LIMIT_MODELS: 'text-embedding-v4=100/200',
        RATE_LIMIT_MAX_WAIT_MS: '1000',
      }),
    });
    const words = (n: number) => Array.from({ length: n }, (_, i) => `word${i}`).join(' ');
    expect((await embed(s, words(40))).statusCode).toBe(200);
    const huge = await embed(s, words(400));
    expect(huge.statusCode).toBe(400);
    expect(huge.json().error.message).toContain('200 tokens per 3 s');
    // The gateway's estimate for 40 such words is about 70 tokens, the emulator bills about 150: corrected from the
    // billed usage, a second such text no longer fits the 200 tokens while the first is in the window.
    const later = await embed(s, words(40));
    expect(later.statusCode).toBe(429);
    expect(later.json().error.message).toMatch(/pacing/);
    expect(upstreamCalls(s.emu, NATIVE)).toHaveLength(1);
  });

  it('models grouped in RATE_LIMIT_MODELS share one budget', async () => {
    s = await startStack({
      env: budgetEnv(100, 10_000, {
        RATE_LIMIT_MAX_WAIT_MS: '2000',
        RATE_LIMIT_MODELS: 'text-embedding-v3+text-embedding-v4=2',
      }),
    });
    expect((await embed(s, 'x', 'text-embedding-v3')).statusCode).toBe(200);
    const v4 = await embed(s, 'x', 'text-embedding-v4');
    expect(v4.statusCode).toBe(200);
    expect(v4.headers['x-ratelimit-limit-requests']).toBe('2');
    expect((await embed(s, 'x', 'text-embedding-v3')).statusCode).toBe(429);
  });

  it('a DashScope 429 holds off the following calls for its Retry-After instead of hammering it', async () => {
    s = await startStack({ env: budgetEnv(100, 10_000) });
    s.emu.addFault({ status: 429, headers: { 'retry-after': '1' }, times: 1 });
    const first = await embed(s, 'x');
    expect(first.statusCode).toBe(429);
    expect(first.headers['retry-after']).toBe('1');
    const second = await embed(s, 'y');
    expect(second.statusCode).toBe(200);
    const calls = upstreamCalls(s.emu, NATIVE).map((c) => c.at);
    expect(calls[1]! - calls[0]!).toBeGreaterThanOrEqual(950);
  });
});
