/**
 * The shared sliding-window log in Redis. One EVALSHA per upstream call decides atomically, on Redis's own clock
 * (TIME), for every replica at once:
 *   1. a hold set after DashScope answered 429 (a key with a PX TTL) refuses everything until it expires;
 *   2. entries older than the window are dropped (ZREMRANGEBYSCORE), the rest counted (ZCARD);
 *   3. under the limit: the call is logged (ZADD) and admitted; at the limit: the reply says how long until the
 *      oldest entry leaves the window, which is the earliest moment any replica can be admitted.
 * Redis runs a script alone, so two replicas can never both take the last unit.
 *
 * The same call carries this replica's bookkeeping, so it costs no extra round trip: entries moved to the time
 * their call's reply arrived (see window.ts), and, after a Redis outage, the calls made on the local share.
 */
import type { RedisClient as Redis } from '../redis.js';
import type { TakeResult } from './window.js';

/** A log entry this replica knows about: its member and its time on this process's clock (Date.now()). */
export interface LogEntry {
  member: string;
  t: number;
}

// KEYS[1] the log (ZSET: member per call, score = time in ms on Redis's clock), KEYS[2] the 429 hold.
// ARGV[1] limit (0: bookkeeping only), ARGV[2] span in ms, ARGV[3] member, ARGV[4] n, then n pairs
// (member, age in ms): entries to (re)log at now - age, applied first so the decision counts them.
// Returns {1, resetMs, remaining} when admitted, {0, waitMs, held} when not.
const TAKE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local span = tonumber(ARGV[2])
local n = tonumber(ARGV[4])
for i = 0, n - 1 do
  redis.call('ZADD', KEYS[1], now - tonumber(ARGV[6 + 2 * i]), ARGV[5 + 2 * i])
end
local hold = redis.call('PTTL', KEYS[2])
if hold > 0 then
  if n > 0 then redis.call('PEXPIRE', KEYS[1], span + 1000) end
  return {0, hold, 1}
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - span))
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], span + 1000)
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {1, tonumber(oldest[2]) + span + 1 - now, limit - count - 1}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = span
if oldest[2] then wait = tonumber(oldest[2]) + span + 1 - now end
if wait < 1 then wait = 1 end
return {0, wait, 0}
`;

// KEYS[1] the hold; ARGV[1] ms. Only ever lengthens a hold: two 429s must not shorten each other.
const HOLD = `
local cur = redis.call('PTTL', KEYS[1])
if cur < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], '1', 'PX', ARGV[1]) end
return 1
`;

// KEYS[1] the log; ARGV[1] member. A unit taken for a caller that left before using it goes back.
const RELEASE = `return redis.call('ZREM', KEYS[1], ARGV[1])`;

interface BudgetCommands {
  dsgwBudgetTake(log: string, hold: string, ...args: (string | number)[]): Promise<[number, number, number]>;
  dsgwBudgetHold(hold: string, ms: number): Promise<number>;
  dsgwBudgetRelease(log: string, member: string): Promise<number>;
}

export class RedisWindow {
  private readonly cmd: BudgetCommands;

  constructor(
    redis: Redis,
    private readonly prefix: string,
  ) {
    // defineCommand sends EVALSHA and falls back to EVAL when Redis lost its script cache (restart, SCRIPT FLUSH).
    if (!('dsgwBudgetTake' in redis)) {
      redis.defineCommand('dsgwBudgetTake', { numberOfKeys: 2, lua: TAKE });
      redis.defineCommand('dsgwBudgetHold', { numberOfKeys: 1, lua: HOLD });
      redis.defineCommand('dsgwBudgetRelease', { numberOfKeys: 1, lua: RELEASE });
    }
    this.cmd = redis as unknown as BudgetCommands;
  }

  // The braces make both keys of a budget hash to one Redis Cluster slot, as a multi-key script needs.
  private logKey(budget: string): string {
    return `${this.prefix}budget:{${budget}}:log`;
  }
  private holdKey(budget: string): string {
    return `${this.prefix}budget:{${budget}}:hold`;
  }

  /** Decide one call (`member`), after (re)logging `entries` (member, time on this process's clock). */
  async take(
    budget: string,
    limit: number,
    spanMs: number,
    member: string,
    entries: readonly LogEntry[] = [],
  ): Promise<TakeResult> {
    // Ages, not timestamps: Redis places them on its own clock, so replica clocks need not agree.
    const now = Date.now();
    const pairs: (string | number)[] = [];
    for (const e of entries) pairs.push(e.member, Math.max(0, now - e.t));
    const [ok, ms, third] = await this.cmd.dsgwBudgetTake(
      this.logKey(budget),
      this.holdKey(budget),
      limit,
      spanMs,
      member,
      entries.length,
      ...pairs,
    );
    return ok === 1
      ? { ok: true, resetMs: ms, remaining: third }
      : { ok: false, waitMs: ms, held: third === 1 };
  }

  async hold(budget: string, ms: number): Promise<void> {
    await this.cmd.dsgwBudgetHold(this.holdKey(budget), Math.ceil(ms));
  }

  async release(budget: string, member: string): Promise<void> {
    await this.cmd.dsgwBudgetRelease(this.logKey(budget), member);
  }
}
