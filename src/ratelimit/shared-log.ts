/**
 * The reservation log of a budget in Redis: local-log.ts's algorithm as Lua, so one EVALSHA admits or refuses a
 * whole request (all its calls, all its tokens) atomically for every replica, on Redis's own clock (TIME).
 *
 * Keys (one hash tag per budget, so the scripts run on one Cluster slot):
 *   {b}:t   ZSET  member = call id, score = start time (ms, Redis clock)
 *   {b}:c   ZSET  member = call id, score = running token total up to that call (cum)
 *   {b}:m   HASH  gen (generation id), since (when gen began), total (running token total), base (cum pruned)
 *   {b}:h   STRING with PX: the hold after DashScope answered 429
 * A Redis that restarted empty has no {b}:m: the first script to notice starts a new generation, every replica
 * writes back its own recent calls (restore), and nothing is admitted for the grace period, so admission resumes
 * only once the log again holds what was really sent. Times travel as offsets from "now", so replica clocks need
 * not agree with Redis's.
 */
import type { RedisClient } from '../redis.js';
import type { Limits } from './plan.js';

const COMMON = `
local tm = redis.call('TIME')
local now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)
local function cumAt(tau, base)
  local r = redis.call('ZREVRANGEBYSCORE', KEYS[1], tau, '-inf', 'LIMIT', 0, 1)
  if #r == 0 then return base end
  return tonumber(redis.call('ZSCORE', KEYS[2], r[1]))
end
local function prune(keep)
  local cut = now - keep
  local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cut)
  if #old == 0 then return end
  local base = tonumber(redis.call('ZSCORE', KEYS[2], old[#old])) or 0
  local cur = tonumber(redis.call('HGET', KEYS[3], 'base')) or 0
  if base > cur then redis.call('HSET', KEYS[3], 'base', base) end
  for i = 1, #old, 500 do
    redis.call('ZREM', KEYS[2], unpack(old, i, math.min(i + 499, #old)))
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', cut)
  if redis.call('ZCARD', KEYS[1]) == 0 then
    redis.call('HSET', KEYS[3], 'base', redis.call('HGET', KEYS[3], 'total'))
  end
end
`;

// ARGV: knownGen, candidateGen, graceMs, latest (offset), L, span, P, paceSpan, T, Tp, keep, k, then k × (id, tokens)
// Returns {1, gen, now, tailOffset, start offsets…} | {0, gen, now, lastOffset or -1} | {2, gen} restore first | {3, gen, waitMs}
const RESERVE = `${COMMON}
local gen = redis.call('HGET', KEYS[3], 'gen')
if not gen then
  redis.call('HSET', KEYS[3], 'gen', ARGV[2], 'since', now, 'total', 0, 'base', 0)
  return {2, ARGV[2]}
end
if gen ~= ARGV[1] then return {2, gen} end
local graceEnd = tonumber(redis.call('HGET', KEYS[3], 'since')) + tonumber(ARGV[3])
if now < graceEnd then return {3, gen, graceEnd - now} end
local L, span, P, pspan = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local T, Tp, k = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[12])
prune(tonumber(ARGV[11]))
local total = tonumber(redis.call('HGET', KEYS[3], 'total')) or 0
local base = tonumber(redis.call('HGET', KEYS[3], 'base')) or 0
local floor = now
local hold = redis.call('PTTL', KEYS[4])
if hold > 0 then floor = now + hold end
local function tokenFloor(allowed, s)
  local need = total - allowed
  if need <= base then return -1 / 0 end
  local r = redis.call('ZRANGEBYSCORE', KEYS[2], need, '+inf', 'LIMIT', 0, 1)
  if #r == 0 then
    local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
    if #last == 0 then return -1 / 0 end
    return tonumber(last[2]) + s
  end
  local ts = redis.call('ZSCORE', KEYS[1], r[1])
  if not ts then return -1 / 0 end
  return tonumber(ts) + s
end
-- n and tail are kept in step with the appends below instead of asked from Redis for every call.
local n = redis.call('ZCARD', KEYS[1])
local tail = -1 / 0
if n > 0 then tail = tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2]) end
local function earliest(x)
  local t = math.max(floor, tail)
  if L > 0 and n >= L then t = math.max(t, tonumber(redis.call('ZRANGE', KEYS[1], n - L, n - L, 'WITHSCORES')[2]) + span) end
  if P > 0 and n >= P then t = math.max(t, tonumber(redis.call('ZRANGE', KEYS[1], n - P, n - P, 'WITHSCORES')[2]) + pspan) end
  if T > 0 then t = math.max(t, tokenFloor(math.max(0, T - x), span)) end
  if Tp > 0 then t = math.max(t, tokenFloor(math.max(0, Tp - x), pspan)) end
  return t
end
local latest = now + tonumber(ARGV[4])
local totalBefore = total
local starts = {}
local added = {}
local fail = false
local last = 0
for i = 1, k do
  local id, x = ARGV[11 + 2 * i], tonumber(ARGV[12 + 2 * i])
  local t = earliest(x)
  if t == 1 / 0 then fail = true; last = t; break end
  if t > latest then fail = true end
  redis.call('ZADD', KEYS[1], t, id)
  n = n + 1
  tail = t
  total = total + x
  redis.call('ZADD', KEYS[2], total, id)
  added[#added + 1] = id
  starts[#starts + 1] = t - now
  last = t
end
if fail then
  for i = 1, #added, 500 do
    local part = {unpack(added, i, math.min(i + 499, #added))}
    redis.call('ZREM', KEYS[1], unpack(part))
    redis.call('ZREM', KEYS[2], unpack(part))
  end
  if last == 1 / 0 then return {0, gen, now, -1} end
  return {0, gen, now, last - now}
end
redis.call('HSET', KEYS[3], 'total', total)
local out = {1, gen, now, last - now}
for i = 1, #starts do out[#out + 1] = starts[i] end
return out
`;

// ARGV: knownGen, candidateGen, keep, n, then n × (id, offset, tokens): calls this replica made, written back.
// Returns {gen, graceLeftMs}.
const RESTORE = `${COMMON}
local gen = redis.call('HGET', KEYS[3], 'gen')
if not gen then
  gen = ARGV[2]
  redis.call('HSET', KEYS[3], 'gen', gen, 'since', now, 'total', 0, 'base', 0)
end
prune(tonumber(ARGV[3]))
local total = tonumber(redis.call('HGET', KEYS[3], 'total')) or 0
local base = tonumber(redis.call('HGET', KEYS[3], 'base')) or 0
for i = 0, tonumber(ARGV[4]) - 1 do
  local id, t, x = ARGV[5 + 3 * i], now + tonumber(ARGV[6 + 3 * i]), tonumber(ARGV[7 + 3 * i])
  if not redis.call('ZSCORE', KEYS[1], id) and t > now - tonumber(ARGV[3]) then
    -- At its own time for the call count; its tokens at the tail (cum of its predecessor), never under-counted.
    redis.call('ZADD', KEYS[2], cumAt(t, base), id)
    redis.call('ZADD', KEYS[1], t, id)
    total = total + x
  end
end
redis.call('HSET', KEYS[3], 'total', total)
local left = tonumber(redis.call('HGET', KEYS[3], 'since')) + 0 - now
return {gen, left}
`;

// ARGV: n, then n × (id, tokens). Unused reservations go back; their tokens too when nothing was placed after them.
const RELEASE = `
local n = tonumber(ARGV[1])
local card = redis.call('ZCARD', KEYS[1])
local found, sum, atTail = {}, 0, true
for i = 0, n - 1 do
  local id = ARGV[2 + 2 * i]
  local r = redis.call('ZRANK', KEYS[1], id)
  if r then found[#found + 1] = {r, id, tonumber(ARGV[3 + 2 * i])} end
end
for _, f in ipairs(found) do
  if f[1] < card - #found then atTail = false end
  sum = sum + f[3]
  redis.call('ZREM', KEYS[1], f[2])
  redis.call('ZREM', KEYS[2], f[2])
end
if atTail and sum > 0 then redis.call('HINCRBYFLOAT', KEYS[3], 'total', -sum) end
return #found
`;

// ARGV: tokens billed above the estimate (counted at the tail), hold ms (only ever lengthens a hold).
const NOTE = `
local x = tonumber(ARGV[1])
if x > 0 and redis.call('HEXISTS', KEYS[1], 'gen') == 1 then redis.call('HINCRBYFLOAT', KEYS[1], 'total', x) end
local ms = tonumber(ARGV[2])
if ms > 0 and redis.call('PTTL', KEYS[2]) < ms then redis.call('SET', KEYS[2], '1', 'PX', ms) end
return 1
`;

// KEYS[1] any key of the budget (so a Cluster routes it to the budget's node). Returns Redis's time in ms.
const CLOCK = `
local tm = redis.call('TIME')
return tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)
`;

type Reply = (string | number)[];

interface GovernorCommands {
  dsgwGovReserve(...args: (string | number)[]): Promise<Reply>;
  dsgwGovRestore(...args: (string | number)[]): Promise<Reply>;
  dsgwGovRelease(...args: (string | number)[]): Promise<number>;
  dsgwGovNote(...args: (string | number)[]): Promise<number>;
  dsgwGovClock(key: string): Promise<number>;
}

export type ReserveReply =
  | { kind: 'admitted'; gen: string; starts: number[]; tail: number }
  | { kind: 'refused'; gen: string; lastStart: number }
  | { kind: 'restore'; gen: string }
  | { kind: 'grace'; gen: string; waitMs: number };

export interface OwnCall {
  id: string;
  /** Start time on this process's clock. */
  t: number;
  tokens: number;
}

/** A clock mapping older than this is replaced by the next sample, however slow (clocks drift). */
const CLOCK_MAX_AGE_MS = 30_000;

/** The offset between this process's clock and one Redis node's, from the fastest recent round trip. */
interface Clock {
  /** local − Redis, at the middle of the round trip. */
  theta: number;
  rtt: number;
  at: number;
}

export class SharedLog {
  private readonly cmd: GovernorCommands;
  /** Per budget (in a Cluster each budget's node has its own clock). */
  private readonly clocks = new Map<string, Clock>();

  constructor(
    redis: RedisClient,
    private readonly prefix: string,
  ) {
    // defineCommand sends EVALSHA and falls back to EVAL when Redis lost its script cache (restart, failover).
    if (!('dsgwGovReserve' in redis)) {
      redis.defineCommand('dsgwGovReserve', { numberOfKeys: 4, lua: RESERVE });
      redis.defineCommand('dsgwGovRestore', { numberOfKeys: 4, lua: RESTORE });
      redis.defineCommand('dsgwGovRelease', { numberOfKeys: 3, lua: RELEASE });
      redis.defineCommand('dsgwGovNote', { numberOfKeys: 2, lua: NOTE });
      redis.defineCommand('dsgwGovClock', { numberOfKeys: 1, lua: CLOCK });
    }
    this.cmd = redis as unknown as GovernorCommands;
  }

  /**
   * Redis's time → this process's clock. Every replica must start a call at the same moment relative to the log,
   * whatever each reply's latency, so one mapping per budget (NTP-style: the midpoint of the fastest recent round
   * trip) is applied to every start. Mapping each reply by its own arrival time would shift its calls by that
   * reply's delay (event-loop lag, a NOSCRIPT resend), which broke the per-second window in tests.
   */
  private toLocal(budget: string, redisNow: number, sent: number, received: number): number {
    const rtt = received - sent;
    const c = this.clocks.get(budget);
    if (!c || rtt <= c.rtt || received - c.at > CLOCK_MAX_AGE_MS) {
      this.clocks.set(budget, { theta: (sent + received) / 2 - redisNow, rtt, at: received });
    }
    return redisNow + this.clocks.get(budget)!.theta;
  }

  /** Before a budget's first reservation: a few round trips to its node for a good clock mapping. */
  async sync(budget: string): Promise<void> {
    if (this.clocks.has(budget)) return;
    const k = this.keys(budget);
    for (let i = 0; i < 3; i++) {
      const sent = Date.now();
      const now = Number(await this.cmd.dsgwGovClock(k.m));
      this.toLocal(budget, now, sent, Date.now());
    }
  }

  /** The keys of a budget; the braces put them on one Cluster slot. */
  keys(budget: string): { t: string; c: string; m: string; h: string } {
    const k = `${this.prefix}gov:{${budget}}`;
    return { t: `${k}:t`, c: `${k}:c`, m: `${k}:m`, h: `${k}:h` };
  }

  async reserve(
    budget: string,
    gen: string,
    candidate: string,
    graceMs: number,
    latestMs: number,
    lim: Limits,
    keepMs: number,
    calls: { id: string; tokens: number }[],
  ): Promise<ReserveReply> {
    const k = this.keys(budget);
    const args: (string | number)[] = [k.t, k.c, k.m, k.h, gen, candidate, graceMs, Math.floor(latestMs)];
    args.push(
      lim.calls,
      lim.spanMs,
      lim.perPace,
      lim.paceSpanMs,
      lim.tokens,
      lim.tokensPerPace,
      keepMs,
      calls.length,
    );
    for (const c of calls) args.push(c.id, c.tokens);
    const sent = Date.now();
    const r = await this.cmd.dsgwGovReserve(...args);
    const received = Date.now();
    const code = Number(r[0]);
    const g = String(r[1]);
    if (code === 2) return { kind: 'restore', gen: g };
    if (code === 3) return { kind: 'grace', gen: g, waitMs: Number(r[2]) };
    const local = this.toLocal(budget, Number(r[2]), sent, received);
    if (code === 0) {
      const off = Number(r[3]);
      return { kind: 'refused', gen: g, lastStart: off < 0 ? Number.POSITIVE_INFINITY : local + off };
    }
    return {
      kind: 'admitted',
      gen: g,
      tail: local + Number(r[3]),
      starts: r.slice(4).map((v) => local + Number(v)),
    };
  }

  /** Writes back this replica's calls (a new generation is started when Redis has none); returns the generation. */
  async restore(
    budget: string,
    gen: string,
    candidate: string,
    keepMs: number,
    own: OwnCall[],
  ): Promise<string> {
    const k = this.keys(budget);
    const now = Date.now();
    const args: (string | number)[] = [k.t, k.c, k.m, k.h, gen, candidate, keepMs, own.length];
    for (const c of own) args.push(c.id, Math.round(c.t - now), c.tokens);
    const r = await this.cmd.dsgwGovRestore(...args);
    return String(r[0]);
  }

  async release(budget: string, items: { id: string; tokens: number }[]): Promise<void> {
    const k = this.keys(budget);
    const args: (string | number)[] = [k.t, k.c, k.m, items.length];
    for (const i of items) args.push(i.id, i.tokens);
    await this.cmd.dsgwGovRelease(...args);
  }

  /** Tokens billed above the estimate, and/or a DashScope 429 hold, in one round trip. */
  async note(budget: string, extraTokens: number, holdMs: number): Promise<void> {
    const k = this.keys(budget);
    await this.cmd.dsgwGovNote(k.m, k.h, Math.max(0, extraTokens), Math.ceil(Math.max(0, holdMs)));
  }
}
