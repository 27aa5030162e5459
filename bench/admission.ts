/**
 * `npm run bench:admission`: what the governor's admission costs with a local Redis (REDIS_URL, default
 * redis://127.0.0.1:6379), against a budget large enough never to wait.
 *
 * - Sequential: one admission at a time, of 1 and of 10 calls. Each admitted call is then used (slot + done), as a
 *   route does, so the log in Redis holds every call of the window, as in production (released calls would keep it
 *   tiny and the script cheaper than it really is). Interleaved with each admission, the same connection makes a
 *   bare round trip (EVALSHA of a one-command script): the machine's own floor, measured in the same moments.
 * - Concurrent: 16 admissions in flight at once (a loaded replica), with the number of script calls per admission.
 *
 * Bounded: 5 rounds × (600 + 600 sequential, 1,200 concurrent) admissions; the first round also warms the JIT and
 * the script cache and is not counted. Keys are deleted at the end.
 */
import { randomBytes } from 'node:crypto';
import type { Governor } from '../src/ratelimit/governor.js';
import { createGovernor } from '../src/ratelimit/governor.js';
import { createRedis } from '../src/redis.js';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const ROUNDS = 5;
const SEQUENTIAL = 600;
const CONCURRENT = 1_200;
const IN_FLIGHT = 16;

const redis = await createRedis(url);
redis.on('error', () => {});
const prefix = `bench:${randomBytes(4).toString('hex')}:`;
const governor = createGovernor({
  settings: {
    defaultLimit: 10_000_000,
    windowMs: 60_000,
    marginMs: 100,
    rules: [],
    maxWaitMs: 30_000,
    queueSize: 1000,
    replicas: 1,
    keyPrefix: prefix,
    defaultTokens: 0,
    paceMs: 1000,
    burst: 10_000_000,
    restoreGraceMs: 0,
  },
  redis,
});
await governor.waitForRedis(2_000);
redis.defineCommand('benchBare', { numberOfKeys: 1, lua: "return redis.call('EXISTS', KEYS[1])" });
const bare = (): Promise<number> =>
  (redis as unknown as { benchBare(k: string): Promise<number> }).benchBare(`${prefix}bare`);

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const median = (xs: number[]): number => pct(xs, 50);

/** One admission of `calls` calls, then its calls used; returns the admission's latency in ms. */
async function admitAndUse(g: Governor, calls: number, caller: string): Promise<number> {
  const t0 = performance.now();
  const adm = await g.admit({
    model: 'text-embedding-v4',
    calls,
    tokens: new Array<number>(calls).fill(100),
    caller,
    deadline: Date.now() + 60_000,
  });
  const ms = performance.now() - t0;
  for (let i = 0; i < calls; i++) (await adm.slot(i)).done({ status: 200, headers: {} });
  adm.release();
  return ms;
}

async function scriptCalls(): Promise<number> {
  const info = await redis.info('commandstats');
  let n = 0;
  for (const m of info.matchAll(/^cmdstat_(evalsha|eval):calls=(\d+)/gm)) n += Number(m[2]);
  return n;
}

interface Row {
  p50: number[];
  p99: number[];
}
const rows = new Map<string, Row>();
const add = (name: string, xs: number[]): void => {
  const r = rows.get(name) ?? { p50: [], p99: [] };
  r.p50.push(pct(xs, 50));
  r.p99.push(pct(xs, 99));
  rows.set(name, r);
};
let perAdmission: number[] = [];

for (let round = 0; round <= ROUNDS; round++) {
  for (const calls of [1, 10]) {
    const adm: number[] = [];
    const floor: number[] = [];
    for (let i = 0; i < SEQUENTIAL; i++) {
      adm.push(await admitAndUse(governor, calls, 'bench'));
      const t0 = performance.now();
      await bare();
      floor.push(performance.now() - t0);
    }
    if (round === 0) continue;
    add(`admission of ${calls} call${calls > 1 ? 's' : ''}, sequential`, adm);
    add(`bare round trip (interleaved with the ${calls}-call case)`, floor);
  }
  const before = await scriptCalls();
  const lat: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async (_, w) => {
      while (next < CONCURRENT) {
        next++;
        lat.push(await admitAndUse(governor, 1, `caller-${w % 4}`));
      }
    }),
  );
  // commandstats counts its own INFO too, not EVALSHA: the difference is the admissions' script calls.
  const used = (await scriptCalls()) - before;
  if (round === 0) continue;
  add(`admission of 1 call, ${IN_FLIGHT} in flight`, lat);
  perAdmission.push(used / CONCURRENT);
}

process.stdout.write(
  `Admission latency with a local Redis (${url}), ${ROUNDS} rounds; per round p50 / p99 in ms, then the median over rounds\n`,
);
for (const [name, r] of rows) {
  const each = r.p99.map((p, i) => `${r.p50[i]!.toFixed(3)}/${p.toFixed(3)}`).join('  ');
  process.stdout.write(
    `${name.padEnd(52)} ${each}   median p50 ${median(r.p50).toFixed(3)} p99 ${median(r.p99).toFixed(3)}\n`,
  );
}
perAdmission = perAdmission.map((x) => Math.round(x * 1000) / 1000);
process.stdout.write(`script calls per admission, ${IN_FLIGHT} in flight: ${perAdmission.join(', ')}\n`);

await governor.close();
const keys = await redis.keys(`${prefix}*`);
if (keys.length > 0) await redis.del(...keys);
redis.disconnect();
