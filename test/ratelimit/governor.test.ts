/**
 * The governor on one replica (memory mode), driven directly: all-or-nothing admission (400 with the numbers for
 * a request that can never fit, 429 with a Retry-After that holds for one that fits later), per-second pacing
 * without refusals, tokens per minute held and corrected from the billed usage, and units given back.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { GatewayError } from '../../src/errors.js';
import { createGovernor, type Governor } from '../../src/ratelimit/governor.js';
import { budgetNumbers, largestRequest, limitsOf } from '../../src/ratelimit/plan.js';
import { burst, type Call, maxTokensInWindow, request, settings } from './governor-support.js';
import { maxInWindow } from './support.js';

const govs: Governor[] = [];
afterEach(async () => {
  await Promise.all(govs.splice(0).map((g) => g.close()));
});
function governor(over: Parameters<typeof settings>[0] = {}): Governor {
  const g = createGovernor({ settings: settings(over) });
  govs.push(g);
  return g;
}
const times = (log: Call[]) => log.map((c) => c.at);

describe('governor, one replica in memory', () => {
  it('refuses a request that can never fit with 400 and the numbers, taking no unit', async () => {
    const s = settings();
    const largest = largestRequest(
      limitsOf(budgetNumbers({ name: 'x', models: [], limit: 20 }, s), s.marginMs),
      6000,
    );
    expect(largest).toBeGreaterThan(20); // more than one window's worth fits within 6 s of waiting
    const g = governor();
    expect(g.largestRequest('text-embedding-v4')).toBe(largest);
    const log: Call[] = [];
    const r = await request(g, largest + 1, log);
    expect(r.status).toBe(400);
    expect(r.message).toContain(`needs ${largest + 1} calls`);
    expect(r.message).toContain('20 calls per 3 s and 2 per 0.3 s');
    expect(r.message).toContain(`at most ${largest} calls`);
    expect(r.message).not.toMatch(/quota/i);
    expect(log).toHaveLength(0);
    // Nothing was taken: a full window's worth now goes at once (two per pace window from the first moment).
    const t0 = Date.now();
    const adm = await g.admit({
      model: 'text-embedding-v4',
      calls: 2,
      tokens: [],
      caller: 'a',
      deadline: t0 + 10_000,
    });
    await adm.slot(0);
    await adm.slot(1);
    expect(Date.now() - t0).toBeLessThan(250);
    // …and the largest request is admitted on an idle budget of its own.
    const h = governor({ keyPrefix: 'other:' });
    expect((await request(h, largest, [])).status).toBe(200);
  }, 20_000);

  it('refuses a request that fits only later with 429 and a Retry-After after which it is admitted', async () => {
    const g = governor({ maxWaitMs: 1000, defaultLimit: 6, windowMs: 3000, paceMs: 300 });
    // perPace = ceil(6 × 300 / 3000) = 1: six calls take 1.8 s at one per 0.36 s, past the 1 s wait; four fit.
    const first = await g.admit({
      model: 'm',
      calls: 3,
      tokens: [],
      caller: 'a',
      deadline: Date.now() + 10_000,
    });
    const refused = await g
      .admit({ model: 'm', calls: 3, tokens: [], caller: 'b', deadline: Date.now() + 10_000 })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(refused).toBeInstanceOf(GatewayError);
    const err = refused as GatewayError;
    expect(err.statusCode).toBe(429);
    expect(err.message).toMatch(/pacing/);
    expect(err.message).not.toMatch(/quota/i);
    expect(err.retryAfterSec).toBeGreaterThanOrEqual(1);
    // The refusal took nothing: the first request's calls still start on their schedule.
    for (let i = 0; i < 3; i++) (await first.slot(i)).done({ status: 200, headers: {} });
    await new Promise((r) => setTimeout(r, err.retryAfterSec! * 1000));
    const again = await g.admit({
      model: 'm',
      calls: 3,
      tokens: [],
      caller: 'b',
      deadline: Date.now() + 10_000,
    });
    expect(again.calls).toBe(3);
    again.release();
  }, 20_000);

  it('paces a bounded burst of mixed requests: no 3 s window over 20, no 0.3 s window over 2', async () => {
    const g = governor();
    const log: Call[] = [];
    const results = await burst([g], 24, 3000, [1, 5, 2, 9, 3], log);
    for (const r of results) expect([200, 429]).toContain(r.status);
    const ok = results.filter((r) => r.status === 200);
    expect(ok.length).toBeGreaterThan(5);
    expect(log.length).toBeGreaterThanOrEqual(ok.reduce((a, r) => a + (r.calls ?? 0), 0));
    expect(maxInWindow(times(log), 3000)).toBeLessThanOrEqual(20);
    if (maxInWindow(times(log), 300) > 2)
      console.log(
        JSON.stringify(
          times(log)
            .sort()
            .map((t) => t - log[0]!.at),
        ),
      );
    expect(maxInWindow(times(log), 300)).toBeLessThanOrEqual(2);
    // Paced, not refused: a request that fit was never refused for the short window alone.
    expect(log.length).toBeGreaterThan(20);
  }, 30_000);

  it('holds the real per-second ceiling: 12 per 6 s gives 2 per 1 s', async () => {
    const g = governor({ defaultLimit: 12, windowMs: 6000, paceMs: 1000, marginMs: 60, maxWaitMs: 6000 });
    const log: Call[] = [];
    const r = await request(g, 8, log);
    expect(r.status).toBe(200);
    expect(maxInWindow(times(log), 1000)).toBeLessThanOrEqual(2);
    expect(Math.max(...times(log)) - Math.min(...times(log))).toBeGreaterThanOrEqual(3000);
  }, 20_000);

  it('holds tokens per window and per pace window, and corrects from the billed usage', async () => {
    // 1000 tokens per 3 s, 100 per 0.3 s; calls estimated at 100 tokens each.
    const g = governor({ defaultLimit: 100, defaultTokens: 1000 });
    const log: Call[] = [];
    // Billed 400 where 100 was estimated: the next calls wait for the window to make room for it.
    expect((await request(g, 1, log, { tokens: 100, billed: 400 })).status).toBe(200);
    const r = await request(g, 7, log, { tokens: 100 });
    expect(r.status).toBe(200);
    expect(maxTokensInWindow(log, 3000)).toBeLessThanOrEqual(1000);
    expect(maxTokensInWindow(log, 300)).toBeLessThanOrEqual(400); // the first call alone exceeds 100
    const later = log.slice(1).map((c) => c.at);
    // 400 + 6 × 100 = 1000: the seventh 100-token call must wait until the 400 leaves the window.
    expect(Math.max(...later) - log[0]!.at).toBeGreaterThanOrEqual(3000);
  }, 20_000);

  it('gives back the units of a request that ended early', async () => {
    // One call per 0.36 s, four per 3 s, a 2 s wait: four calls fit at once, a fifth does not.
    const g = governor({ defaultLimit: 4, windowMs: 3000, paceMs: 300, maxWaitMs: 2000 });
    const adm = await g.admit({ model: 'm', calls: 2, tokens: [], caller: 'a', deadline: Date.now() + 5000 });
    (await adm.slot(0)).done({ status: 200, headers: {} });
    adm.release(); // call 1 never went
    adm.release(); // idempotent
    // Three calls remain in the window (4 − 1 used); they fit only if call 1 came back.
    const next = await g.admit({
      model: 'm',
      calls: 3,
      tokens: [],
      caller: 'b',
      deadline: Date.now() + 5000,
    });
    expect(next.calls).toBe(3);
    await expect(
      g.admit({ model: 'm', calls: 1, tokens: [], caller: 'c', deadline: Date.now() + 5000 }),
    ).rejects.toMatchObject({ statusCode: 429 });
    next.release();
  });

  it('stops admitting on close, while admitted calls still go', async () => {
    const g = governor();
    const adm = await g.admit({ model: 'm', calls: 3, tokens: [], caller: 'a', deadline: Date.now() + 5000 });
    await g.close();
    await expect(
      g.admit({ model: 'm', calls: 1, tokens: [], caller: 'a', deadline: Date.now() + 5000 }),
    ).rejects.toMatchObject({ statusCode: 503 });
    for (let i = 0; i < 3; i++) (await adm.slot(i)).done({ status: 200, headers: {} });
  });
});
