/**
 * `npm run bench:admission`: what the governor's admission costs with a local Redis (REDIS_URL, default
 * redis://127.0.0.1:6379): sequential admissions of 1 and of 10 calls against a budget large enough never to wait,
 * p50/p99/max in ms. Bounded: 3,000 admissions per size. The first 200 warm the script cache and are not counted.
 */
import { randomBytes } from 'node:crypto';
import { createGovernor } from '../src/ratelimit/governor.js';
import { createRedis } from '../src/redis.js';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const redis = await createRedis(url);
redis.on('error', () => {});
const governor = createGovernor({
  settings: {
    defaultLimit: 10_000_000,
    windowMs: 60_000,
    marginMs: 100,
    rules: [],
    maxWaitMs: 30_000,
    queueSize: 1000,
    replicas: 1,
    keyPrefix: `bench:${randomBytes(4).toString('hex')}:`,
    defaultTokens: 0,
    paceMs: 1000,
    burst: 10_000_000,
    restoreGraceMs: 0,
  },
  redis,
});
await governor.waitForRedis(2_000);

const pct = (xs: number[], p: number): number =>
  xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
for (const calls of [1, 10]) {
  const times: number[] = [];
  for (let i = 0; i < 3_200; i++) {
    const t0 = performance.now();
    const adm = await governor.admit({
      model: 'text-embedding-v4',
      calls,
      tokens: Array.from({ length: calls }, () => 100),
      caller: 'bench',
      deadline: Date.now() + 60_000,
    });
    const ms = performance.now() - t0;
    adm.release();
    if (i >= 200) times.push(ms);
  }
  times.sort((a, b) => a - b);
  process.stdout.write(
    `admission of ${calls} call(s): p50 ${pct(times, 50).toFixed(3)} ms, p99 ${pct(times, 99).toFixed(3)} ms, max ${times.at(-1)!.toFixed(3)} ms (${times.length} admissions)\n`,
  );
}
await governor.close();
redis.disconnect();
