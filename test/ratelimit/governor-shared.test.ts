/**
 * The governor shared through Redis: three governors (three replicas) on one real redis-server under a bounded
 * burst of mixed requests, one Lua call per admission, tokens held across replicas, a Redis killed and restarted
 * empty in the middle of a burst, and the same budget on a real 3-node Redis Cluster.
 */
import { afterEach, describe, expect, inject, it } from 'vitest';
import { createGovernor, type Governor } from '../../src/ratelimit/governor.js';
import { createRedis, type RedisClient } from '../../src/redis.js';
import { freePort } from '../support/ports.js';
import { RedisCluster } from '../support/redis-cluster.js';
import { burst, type Call, maxTokensInWindow, request, settings } from './governor-support.js';
import { hasRedisServer, maxInWindow, OwnRedis, requireRedis, uniquePrefix } from './support.js';

const redisUrl = inject('redisUrl');
const haveRedis = requireRedis(redisUrl, 'the shared governor test');

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function client(url: string): Promise<RedisClient> {
  const r = await createRedis(url);
  r.on('error', () => {});
  if (r.status !== 'ready') await new Promise((ok) => r.once('ready', ok));
  cleanups.push(async () => {
    r.disconnect();
  });
  return r;
}

/** `n` governors, each with its own connection (as replicas have), sharing one budget. */
/** What the governors logged (message texts), across replicas. */
let logged: string[] = [];
const logger = {
  info: (_: object, msg: string) => logged.push(msg),
  warn: (_: object, msg: string) => logged.push(msg),
};

async function replicas(
  n: number,
  url: string,
  over: Parameters<typeof settings>[0] = {},
): Promise<Governor[]> {
  const s = settings({ keyPrefix: uniquePrefix('gov'), replicas: n, ...over });
  const out: Governor[] = [];
  logged = [];
  for (let i = 0; i < n; i++) {
    const g = createGovernor({ settings: s, redis: await client(url), log: logger });
    cleanups.push(() => g.close());
    out.push(g);
  }
  return out;
}

const times = (log: Call[]) => log.map((c) => c.at);

describe.skipIf(!haveRedis)('governor shared through Redis', () => {
  it('three replicas, 20 per 3 s and 2 per 0.3 s, a burst of mixed requests: never over in any window', async () => {
    const govs = await replicas(3, redisUrl);
    const log: Call[] = [];
    const results = await burst(govs, 30, 3000, [1, 4, 2, 7, 3], log);
    for (const r of results) expect([200, 429]).toContain(r.status);
    const ok = results.filter((r) => r.status === 200);
    expect(log.length).toBeGreaterThanOrEqual(ok.reduce((a, r) => a + (r.calls ?? 0), 0));
    expect(log.length).toBeGreaterThan(20);
    report('burst, 3 replicas on one Redis', log);
    expect(maxInWindow(times(log), 3000)).toBeLessThanOrEqual(20);
    expect(maxInWindow(times(log), 300)).toBeLessThanOrEqual(2);
    // All three replicas had requests admitted: the budget is shared, not split.
    const served = [0, 1, 2].map((g) => results.filter((r, i) => i % 3 === g && r.status === 200).length);
    expect(served.every((n) => n > 0)).toBe(true);
    for (const r of results) {
      if (r.status === 429) expect(r.retryAfterSec).toBeGreaterThanOrEqual(1);
    }
  }, 40_000);

  it('holds tokens per window across replicas and corrects from the billed usage', async () => {
    const [a, b] = await replicas(2, redisUrl, { defaultLimit: 100, defaultTokens: 1000 });
    const log: Call[] = [];
    expect((await request(a!, 1, log, { tokens: 100, billed: 400 })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 50)); // the correction is sent after the reply, not awaited
    expect((await request(b!, 6, log, { tokens: 100 })).status).toBe(200);
    expect((await request(a!, 1, log, { tokens: 100 })).status).toBe(200);
    expect(maxTokensInWindow(log, 3000)).toBeLessThanOrEqual(1000);
    expect(log.at(-1)!.at - log[0]!.at).toBeGreaterThanOrEqual(3000);
  }, 30_000);
});

/** The measured windows, printed for the record (the closing note of the governor work quotes them). */
function report(what: string, log: Call[]): void {
  process.stderr.write(
    `${what}: ${log.length} calls; most in any 3 s window ${maxInWindow(times(log), 3000)} (budget 20), in any 0.3 s window ${maxInWindow(times(log), 300)} (ceiling 2)\n`,
  );
}

describe.skipIf(!haveRedis || !hasRedisServer())('governor on a Redis of this test’s own', () => {
  it('costs one Lua call per admission, whatever its number of calls', async () => {
    const own = new OwnRedis(await freePort());
    await own.start();
    cleanups.push(() => own.kill());
    const [g] = await replicas(1, own.url, { defaultLimit: 1000, paceMs: 1000, windowMs: 3000 });
    await request(g!, 1, []); // first contact: generation check and write-back
    const probe = await client(own.url);
    await probe.config('RESETSTAT');
    for (let i = 0; i < 10; i++) expect((await request(g!, 5, [])).status).toBe(200);
    const info = String(await probe.info('commandstats'));
    let n = 0;
    let usec = 0;
    for (const m of info.matchAll(/^cmdstat_(evalsha|eval):calls=(\d+),usec=(\d+)/gm)) {
      n += Number(m[2]);
      usec += Number(m[3]);
    }
    expect(n).toBeGreaterThanOrEqual(10);
    expect(n).toBeLessThanOrEqual(11); // +1 when ioredis had to resend the script with EVAL
    process.stderr.write(`governor admission script: ${(usec / n).toFixed(1)} µs per call in Redis\n`);
  }, 20_000);

  it('Redis killed and restarted empty mid-burst: still no window over the budget', async () => {
    const own = new OwnRedis(await freePort());
    await own.start();
    cleanups.push(() => own.kill());
    const govs = await replicas(3, own.url, { maxWaitMs: 4000 });
    const log: Call[] = [];
    const running = burst(govs, 36, 6000, [1, 3, 2, 5], log);
    await new Promise((r) => setTimeout(r, 1500));
    await own.kill();
    await new Promise((r) => setTimeout(r, 300));
    await own.start(); // empty: no persistence
    const results = await running;
    for (const r of results) expect([200, 429]).toContain(r.status);
    report('burst with Redis killed and restarted empty', log);
    expect(maxInWindow(times(log), 3000)).toBeLessThanOrEqual(20);
    expect(maxInWindow(times(log), 300)).toBeLessThanOrEqual(2);
    expect(log.length).toBeGreaterThan(20);
    // Back on the shared budget.
    const until = Date.now() + 8000;
    while (govs.some((g) => g.status().mode !== 'shared') && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(govs.map((g) => g.status().mode)).toEqual(['shared', 'shared', 'shared']);
    // The outage was seen and left by every replica (the window held through it, not around it).
    // (A replica may flap once more while Redis comes back: each outage it logs is left again.)
    const down = logged.filter((m) => m.startsWith('Redis unreachable')).length;
    expect(down).toBeGreaterThanOrEqual(3);
    expect(logged.filter((m) => m.startsWith('Redis reachable again')).length).toBe(down);
  }, 60_000);
});

describe.skipIf(!hasRedisServer())('governor on a 3-node Redis Cluster', () => {
  it('three replicas, one budget on the cluster: never over in any window', async () => {
    const cluster = new RedisCluster();
    cleanups.push(() => cluster.stop());
    await cluster.start();
    const govs = await replicas(3, cluster.url);
    const log: Call[] = [];
    const results = await burst(govs, 24, 3000, [1, 4, 2, 6], log);
    for (const r of results) expect([200, 429]).toContain(r.status);
    expect(log.length).toBeGreaterThan(20);
    report('burst on a 3-node Redis Cluster', log);
    expect(maxInWindow(times(log), 3000)).toBeLessThanOrEqual(20);
    expect(maxInWindow(times(log), 300)).toBeLessThanOrEqual(2);
    expect(govs.map((g) => g.status().mode)).toEqual(['shared', 'shared', 'shared']);
  }, 60_000);
});
