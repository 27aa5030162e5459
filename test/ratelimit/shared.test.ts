/**
 * The shared upstream budget against a real Redis: three gateway instances in one budget, a DashScope 429 that
 * makes every replica hold off, and a Redis that dies and comes back (a redis-server of this test's own, so
 * killing it leaves the other test files' Redis alone).
 */
import { Redis } from 'ioredis';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { auth, KEYS, type Stack, startStack, upstreamCalls } from '../helpers.js';
import { freePort } from '../support/ports.js';
import { hasRedisServer, maxInWindow, OwnRedis, requireRedis, uniquePrefix } from './support.js';

const EMBED = '/v1/embeddings';
const NATIVE = '/api/v1/services/embeddings/text-embedding/text-embedding';
const redisUrl = inject('redisUrl');
const haveRedis = requireRedis(redisUrl, 'the shared upstream budget test');

const stacks: Stack[] = [];
afterEach(async () => {
  await Promise.all(stacks.splice(0).map((s) => s.close()));
});

/** `n` gateway instances sharing one Redis and one emulator (the first instance's). */
async function replicas(n: number, env: Record<string, string>): Promise<Stack[]> {
  const first = await startStack({ env });
  stacks.push(first);
  const out = [first];
  for (let i = 1; i < n; i++) {
    const s = await startStack({ env: { ...env, DASHSCOPE_BASE_URL: first.emu.url } });
    stacks.push(s);
    out.push(s);
  }
  return out;
}

const post = (s: Stack, requestId: string) =>
  s.app.inject({
    method: 'POST',
    url: EMBED,
    headers: { ...auth(KEYS.alice), 'x-request-id': requestId },
    payload: { model: 'text-embedding-v4', input: requestId, encoding_format: 'float' },
  });

describe.skipIf(!haveRedis)('shared upstream budget (Redis)', () => {
  it('three instances, budget 20 per 3 s, 300 concurrent requests: never more than 20 upstream in any 3 s', async () => {
    const gws = await replicas(3, {
      REDIS_URL: redisUrl,
      RATE_LIMIT_KEY_PREFIX: uniquePrefix('flood'),
      RATE_LIMIT_RPM: '20',
      RATE_LIMIT_WINDOW_MS: '3000',
      RATE_LIMIT_MAX_WAIT_MS: '6000',
      RATE_LIMIT_REPLICAS: '3',
    });
    const ids = Array.from({ length: 300 }, (_, i) => `flood-${i}`);
    const results = await Promise.all(ids.map((id, i) => post(gws[i % 3]!, id)));

    // Every request answered: 200 after (maybe) waiting, or 429 with a whole-second Retry-After ≤ 60.
    const ok = results.filter((r) => r.statusCode === 200);
    for (const r of results) {
      expect([200, 429]).toContain(r.statusCode);
      if (r.statusCode === 429) {
        expect(r.headers['retry-after']).toMatch(/^[1-9]\d*$/);
        expect(Number(r.headers['retry-after'])).toBeLessThanOrEqual(60);
      }
    }
    // The budget was used, not just refused: the first window at once, more after waiting.
    expect(ok.length).toBeGreaterThanOrEqual(40);

    // None lost or duplicated: each 200 is exactly one upstream call with its request id, each 429 none.
    const calls = upstreamCalls(gws[0]!.emu, NATIVE);
    const upstreamIds = calls.map((c) => String(c.headers['x-request-id']));
    expect(new Set(upstreamIds).size).toBe(upstreamIds.length);
    const okIds = results.map((r, i) => (r.statusCode === 200 ? ids[i] : undefined)).filter(Boolean);
    expect([...upstreamIds].sort()).toEqual([...okIds].sort());

    // The guarantee, on the upstream's own arrival clock.
    expect(
      maxInWindow(
        calls.map((c) => c.at),
        3000,
      ),
    ).toBeLessThanOrEqual(20);
    // All three instances served some of the admitted calls (the budget is shared, not split).
    const served = gws.map((_, g) => results.filter((r, i) => i % 3 === g && r.statusCode === 200).length);
    expect(served.every((n) => n > 0)).toBe(true);
  });

  it('an upstream 429 with a retry time makes every replica hold off', async () => {
    const [a, b, c] = await replicas(3, {
      REDIS_URL: redisUrl,
      RATE_LIMIT_KEY_PREFIX: uniquePrefix('hold'),
      RATE_LIMIT_RPM: '100',
      RATE_LIMIT_WINDOW_MS: '10000',
      RATE_LIMIT_MAX_WAIT_MS: '5000',
    });
    const emu = a!.emu;
    emu.addFault({ status: 429, headers: { 'retry-after': '2' }, times: 1 });
    const first = await post(a!, 'hold-a');
    expect(first.statusCode).toBe(429);
    const t429 = upstreamCalls(emu, NATIVE)[0]!.at;
    const [rb, rc] = await Promise.all([post(b!, 'hold-b'), post(c!, 'hold-c')]);
    expect([rb.statusCode, rc.statusCode]).toEqual([200, 200]);
    const later = upstreamCalls(emu, NATIVE).slice(1);
    expect(later).toHaveLength(2);
    // Neither B nor C called DashScope during the 2 s it asked for.
    for (const call of later) expect(call.at - t429).toBeGreaterThanOrEqual(1950);
  });
});

describe.skipIf(!haveRedis || !hasRedisServer())('Redis of this test’s own', () => {
  it('costs one Redis round trip per upstream call (the reply-time moves ride along)', async () => {
    const own = new OwnRedis(await freePort());
    await own.start();
    try {
      const [s] = await replicas(1, {
        REDIS_URL: own.url,
        RATE_LIMIT_KEY_PREFIX: uniquePrefix('trips'),
        RATE_LIMIT_RPM: '1000',
        RATE_LIMIT_WINDOW_MS: '4000', // moves wait at most 1 s for a ride
      });
      const probe = new Redis(own.url, { maxRetriesPerRequest: 1 });
      const scripts = async (): Promise<number> => {
        const info = await probe.info('commandstats');
        let n = 0;
        for (const m of info.matchAll(/^cmdstat_(evalsha|eval):calls=(\d+)/gm)) n += Number(m[2]);
        return n;
      };
      await probe.config('RESETSTAT');
      for (let i = 0; i < 20; i++) expect((await post(s!, `trip-${i}`)).statusCode).toBe(200);
      await new Promise((r) => setTimeout(r, 1200)); // the last move is flushed on its own
      const n = await scripts();
      await probe.quit();
      expect(upstreamCalls(s!.emu, NATIVE)).toHaveLength(20);
      // 20 decisions + 1 flush of the last call's move (+1 if ioredis had to resend a script with EVAL).
      expect(n).toBeGreaterThanOrEqual(21);
      expect(n).toBeLessThanOrEqual(22);
    } finally {
      await own.kill();
    }
  });

  it('keeps answering on the local share while Redis is down, says so in /readyz, and returns to the shared budget', async () => {
    const own = new OwnRedis(await freePort());
    await own.start();
    const prefix = uniquePrefix('outage');
    try {
      const [gw] = await replicas(1, {
        REDIS_URL: own.url,
        RATE_LIMIT_KEY_PREFIX: prefix,
        RATE_LIMIT_RPM: '6',
        RATE_LIMIT_WINDOW_MS: '2000',
        RATE_LIMIT_MARGIN_MS: '100',
        RATE_LIMIT_REPLICAS: '3', // local share: 6 / 3 = 2 per window
        RATE_LIMIT_MAX_WAIT_MS: '6000',
      });
      const s = gw!;
      const ready = async () => {
        const r = await s.app.inject({ method: 'GET', url: '/readyz' });
        return { status: r.statusCode, body: r.json() };
      };
      expect((await ready()).body).toMatchObject({ status: 'ready', upstream_budget: { mode: 'shared' } });
      const before = await post(s, 'before');
      expect(before.statusCode).toBe(200);
      expect(before.headers['x-ratelimit-limit-requests']).toBe('6');

      await own.kill();
      const tKill = Date.now();
      const during = await Promise.all([1, 2, 3].map((i) => post(s, `during-${i}`)));
      expect(during.map((r) => r.statusCode)).toEqual([200, 200, 200]);
      expect(during[0]!.headers['x-ratelimit-limit-requests']).toBe('2');
      const d = await ready();
      expect(d.status).toBe(200);
      expect(d.body).toMatchObject({
        status: 'degraded',
        upstream_budget: { mode: 'fallback', degraded: true },
      });
      // Under the fallback share: the calls after the kill (and the one just before) never exceed 2 per window.
      const calls = upstreamCalls(s.emu, NATIVE).map((c) => c.at);
      expect(maxInWindow(calls, 2000)).toBeLessThanOrEqual(2);
      expect(Date.now() - tKill).toBeGreaterThanOrEqual(1900); // the third waited for the local window

      await own.start();
      const until = Date.now() + 8_000;
      while ((await ready()).body.status !== 'ready' && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 100));
      }
      expect((await ready()).body).toMatchObject({ status: 'ready', upstream_budget: { mode: 'shared' } });

      // The calls made on the local share were written into the shared log, so the window stays exact.
      const probe = new Redis(own.url, { maxRetriesPerRequest: 1 });
      const logged = await probe.zcard(`${prefix}budget:{text-embedding-v4}:log`);
      await probe.quit();
      expect(logged).toBeGreaterThanOrEqual(1);
      const back = await post(s, 'back');
      expect(back.statusCode).toBe(200);
      expect(back.headers['x-ratelimit-limit-requests']).toBe('6');
      expect(Number(back.headers['x-ratelimit-remaining-requests'])).toBe(6 - logged - 1);

      const msgs = s.logRecords().map((l) => String(l.msg));
      expect(msgs.filter((m) => m.startsWith('Redis unreachable'))).toHaveLength(1);
      expect(msgs.filter((m) => m.startsWith('Redis reachable again'))).toHaveLength(1);
    } finally {
      await own.kill();
    }
  });
});
