/**
 * The Lua reservation log (what every replica runs in Redis) against the in-memory log it must equal: the same
 * random sequence of reservations, refusals, give-backs and billed-usage corrections, with the same limits, places
 * every call at exactly the same time in both. The script is run raw on a real Redis, so its `now` (Redis's TIME)
 * is known from its reply and handed to the in-memory log as the floor.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type Limits, LocalLog } from '../../src/ratelimit/local-log.js';
import { NOTE, RELEASE, RESERVE } from '../../src/ratelimit/shared-log-lua.js';
import { requireRedis, uniquePrefix } from './support.js';

const redisUrl = inject('redisUrl');
const haveRedis = requireRedis(redisUrl, 'the Lua reservation log test');

type Reply = (string | number)[];
interface Scripts {
  luaReserve(...args: (string | number)[]): Promise<Reply>;
  luaRelease(...args: (string | number)[]): Promise<number>;
  luaNote(...args: (string | number)[]): Promise<number>;
}

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1103515245 + 12345) >>> 0;
    return s / 2 ** 32;
  };
}

describe.skipIf(!haveRedis)('the Lua reservation log', () => {
  let redis: Redis;
  let lua: Scripts;
  beforeAll(() => {
    redis = new Redis(redisUrl, { lazyConnect: false });
    redis.defineCommand('luaReserve', { numberOfKeys: 4, lua: RESERVE });
    redis.defineCommand('luaRelease', { numberOfKeys: 3, lua: RELEASE });
    redis.defineCommand('luaNote', { numberOfKeys: 2, lua: NOTE });
    lua = redis as unknown as Scripts;
  });
  afterAll(async () => {
    await redis.quit();
  });

  it('places every call where the in-memory log does, with refusals, give-backs and corrections', async () => {
    // Spans long enough that nothing is pruned mid-run (prune timing is the one thing the two do not share), limits
    // small enough that every rule (calls and tokens, per window and per pace window) binds many times.
    const lim: Limits = {
      calls: 30,
      spanMs: 60_000,
      perPace: 3,
      paceSpanMs: 2_000,
      tokens: 12_000,
      tokensPerPace: 900,
    };
    const keep = 120_000;
    for (const seed of [7, 8, 9]) {
      const rand = lcg(seed);
      const p = uniquePrefix('lua');
      const keys = [`${p}t`, `${p}c`, `${p}m`, `${p}h`];
      const mem = new LocalLog(keep);
      // The first call starts the generation (and asks for a restore of nothing); grace 0 admits at once after.
      const first = await lua.luaReserve(...keys, '', 'g', 0, 0, 1, 1, 0, 0, 0, 0, keep, 0, 1);
      expect(first).toEqual([2, 'g']);
      let id = 0;
      let admitted = 0;
      let refused = 0;
      for (let i = 0; i < 120; i++) {
        const k = 1 + Math.floor(rand() * 5);
        const tokens = Array.from({ length: k }, () => Math.floor(rand() * 400));
        const ids = tokens.map(() => `c${++id}`);
        const latestOffset = Math.floor(rand() * 240_000);
        const args: (string | number)[] = [...keys, 'g', 'g', 0, latestOffset];
        args.push(lim.calls, lim.spanMs, lim.perPace, lim.paceSpanMs, lim.tokens, lim.tokensPerPace);
        args.push(keep, k, 1);
        for (let j = 0; j < k; j++) args.push(ids[j]!, tokens[j]!);
        const r = await lua.luaReserve(...args);
        const now = Number(r[2]);
        mem.prune(now);
        const m = mem.reserve(ids, tokens, now, now + latestOffset, lim);
        if (Number(r[0]) === 1) {
          admitted++;
          expect(m.ok, `request ${i} (seed ${seed})`).toBe(true);
          const starts = r.slice(5).map((v) => now + Number(v));
          expect(starts, `request ${i} (seed ${seed})`).toEqual(m.ok ? m.starts : []);
          expect(Number(r[4])).toBe(mem.size);
        } else {
          refused++;
          expect(Number(r[0])).toBe(0);
          expect(m.ok, `request ${i} (seed ${seed})`).toBe(false);
          const last = Number(r[3]) < 0 ? Number.POSITIVE_INFINITY : now + Number(r[3]);
          expect(last).toBe(m.ok ? -1 : m.lastStart);
          continue;
        }
        const fate = rand();
        if (fate < 0.25) {
          // The request ended early: its last call never went.
          const back = [{ id: ids.at(-1)!, tokens: tokens.at(-1)! }];
          await lua.luaRelease(keys[0]!, keys[1]!, keys[2]!, 1, back[0]!.id, back[0]!.tokens);
          mem.remove(back);
        } else if (fate < 0.45) {
          const extra = Math.floor(rand() * 150);
          await lua.luaNote(keys[2]!, keys[3]!, extra, 0);
          mem.addTokens(extra);
        }
      }
      // Both outcomes happened often enough for the comparison to mean something.
      expect(admitted).toBeGreaterThan(15);
      expect(refused).toBeGreaterThan(15);
      await redis.del(...keys);
    }
  });
});
