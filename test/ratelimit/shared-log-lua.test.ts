/**
 * The Lua reservation log (what every replica runs in Redis) against the in-memory log it must equal: the same
 * random sequence of reservations (several requests per script call, as a waiting room's turn sends them),
 * refusals, give-backs and billed-usage corrections, with the same limits, places every call at exactly the same
 * time in both. The script is run raw on a real Redis, so its `now` (Redis's TIME)
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
      const first = await lua.luaReserve(...keys, '', 'g', 0, 1, 1, 0, 0, 0, 0, keep, 1, 1, 0, 1, 'c0', 0);
      expect(first).toEqual([2, 'g']);
      let id = 0;
      let admitted = 0;
      let refused = 0;
      for (let turn = 0; turn < 60; turn++) {
        // One script call decides 1–4 requests in order, as a waiting room's turn does.
        const jobs = Array.from({ length: 1 + Math.floor(rand() * 4) }, () => {
          const k = 1 + Math.floor(rand() * 5);
          const tokens = Array.from({ length: k }, () => Math.floor(rand() * 400));
          return { tokens, ids: tokens.map(() => `c${++id}`), latestOffset: Math.floor(rand() * 240_000) };
        });
        const args: (string | number)[] = [...keys, 'g', 'g', 0];
        args.push(lim.calls, lim.spanMs, lim.perPace, lim.paceSpanMs, lim.tokens, lim.tokensPerPace);
        args.push(keep, 1, jobs.length);
        for (const j of jobs) {
          args.push(j.latestOffset, j.ids.length);
          for (let i = 0; i < j.ids.length; i++) args.push(j.ids[i]!, j.tokens[i]!);
        }
        const r = await lua.luaReserve(...args);
        expect(Number(r[0])).toBe(1);
        const now = Number(r[2]);
        mem.prune(now);
        let at = 4;
        for (const [n, j] of jobs.entries()) {
          const what = `turn ${turn}, request ${n} (seed ${seed})`;
          const m = mem.reserve(j.ids, j.tokens, now, now + j.latestOffset, lim);
          const ok = Number(r[at]) === 1;
          const off = Number(r[at + 1]);
          const count = Number(r[at + 2]);
          const starts = r.slice(at + 3, at + 3 + count).map((v) => now + Number(v));
          at += 3 + count;
          expect(ok, what).toBe(m.ok);
          if (m.ok) {
            admitted++;
            expect(starts, what).toEqual(m.starts);
            expect(now + off, what).toBe(m.starts.at(-1));
          } else {
            refused++;
            expect(count, what).toBe(0);
            expect(off < 0 ? Number.POSITIVE_INFINITY : now + off, what).toBe(m.lastStart);
          }
        }
        expect(at, 'the reply holds nothing more').toBe(r.length);
        expect(Number(r[3])).toBe(mem.size);
        // Between turns: a request that ended early gives its last call back; another is billed more than estimated.
        const done = jobs.filter((j) => mem.has(j.ids.at(-1)!));
        const fate = rand();
        if (fate < 0.25 && done.length > 0) {
          const j = done[Math.floor(rand() * done.length)]!;
          const back = { id: j.ids.at(-1)!, tokens: j.tokens.at(-1)! };
          await lua.luaRelease(keys[0]!, keys[1]!, keys[2]!, 1, back.id, back.tokens);
          mem.remove([back]);
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
