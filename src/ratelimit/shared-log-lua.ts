/**
 * The Lua side of shared-log.ts: local-log.ts's algorithm, run by Redis alone so every decision is atomic across
 * replicas. Keys: KEYS[1] {b}:t, KEYS[2] {b}:c, KEYS[3] {b}:m, KEYS[4] {b}:h (see shared-log.ts).
 */
const COMMON = `
local tm = redis.call('TIME')
local now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)
local function cumAt(tau, base)
  local r = redis.call('ZREVRANGEBYSCORE', KEYS[1], tau, '-inf', 'LIMIT', 0, 1)
  if #r == 0 then return base end
  return tonumber(redis.call('ZSCORE', KEYS[2], r[1]))
end
-- Drops calls older than keep; returns the new base (cum of the last call dropped; the total once none is left).
local function prune(keep, base, total)
  local cut = now - keep
  local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cut)
  if #old == 0 then return base end
  local nb = math.max(base, tonumber(redis.call('ZSCORE', KEYS[2], old[#old])) or 0)
  for i = 1, #old, 500 do
    redis.call('ZREM', KEYS[2], unpack(old, i, math.min(i + 499, #old)))
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', cut)
  if redis.call('ZCARD', KEYS[1]) == 0 then nb = total end
  if nb ~= base then redis.call('HSET', KEYS[3], 'base', nb) end
  return nb
end
`;

// ARGV: knownGen, candidateGen, graceMs, L, span, P, paceSpan, T, Tp, keep, replicas, J,
// then J requests, each: latest (offset), k, k × (id, tokens)
// Returns {2, gen} restore first | {3, gen, waitMs} | {1, gen, now, calls in the log, then per request:
//   1, tailOffset, k, k start offsets (admitted) | 0, lastOffset or -1 (never), 0 (refused)}
// Several requests (a replica's waiting room at one turn) share one call: each is still all or nothing and goes
// after the ones before it, exactly as if each had its own call. Cost matters here (every admission runs it): one
// HMGET for the metadata; calls are placed in Lua tables and written with one ZADD per key at the end, so a refusal
// writes nothing. Lookups that reach into calls placed by this call (the entry L back, the token floor) read the
// tables instead of Redis.
export const RESERVE = `${COMMON}
local meta = redis.call('HMGET', KEYS[3], 'gen', 'since', 'restored', 'total', 'base')
local gen = meta[1]
if not gen then
  redis.call('HSET', KEYS[3], 'gen', ARGV[2], 'since', now, 'total', 0, 'base', 0)
  return {2, ARGV[2]}
end
if gen ~= ARGV[1] then return {2, gen} end
local graceEnd = tonumber(meta[2]) + tonumber(ARGV[3])
-- The grace ends early once as many replicas as RATE_LIMIT_REPLICAS have written back (a fresh budget, a quick
-- restart): then every replica's calls are in the log.
if now < graceEnd and (tonumber(meta[3]) or 0) < tonumber(ARGV[11]) then
  return {3, gen, graceEnd - now}
end
local L, span, P, pspan = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local T, Tp = tonumber(ARGV[8]), tonumber(ARGV[9])
local total = tonumber(meta[4]) or 0
local base = prune(tonumber(ARGV[10]), tonumber(meta[5]) or 0, total)
local floor = now
local hold = redis.call('PTTL', KEYS[4])
if hold > 0 then floor = now + hold end
-- The log as stored (n0 calls) followed by the calls placed by this call (times ts, running totals cums, ids).
local n0 = redis.call('ZCARD', KEYS[1])
local ts, cums, ids = {}, {}, {}
local tail = -1 / 0
if n0 > 0 then tail = tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2]) end
local function timeAt(rank)
  if rank >= n0 then return ts[rank - n0 + 1] end
  return tonumber(redis.call('ZRANGE', KEYS[1], rank, rank, 'WITHSCORES')[2])
end
local function tokenFloor(allowed, s)
  local need = total - allowed
  if need <= base then return -1 / 0 end
  -- Stored running totals are all ≤ those placed here, so the first call reaching need is stored if any stored one does.
  if n0 > 0 then
    local r = redis.call('ZRANGEBYSCORE', KEYS[2], need, '+inf', 'LIMIT', 0, 1)
    if #r > 0 then
      local t = redis.call('ZSCORE', KEYS[1], r[1])
      if not t then return -1 / 0 end
      return tonumber(t) + s
    end
  end
  local lo, hi = 1, #cums + 1
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cums[mid] >= need then hi = mid else lo = mid + 1 end
  end
  if lo <= #cums then return ts[lo] + s end
  -- Corrections counted at the tail beyond every call's running total: the last call stands for them.
  if tail == -1 / 0 then return -1 / 0 end
  return tail + s
end
local function earliest(x, n)
  local t = math.max(floor, tail)
  if L > 0 and n >= L then t = math.max(t, timeAt(n - L) + span) end
  if P > 0 and n >= P then t = math.max(t, timeAt(n - P) + pspan) end
  if T > 0 then t = math.max(t, tokenFloor(math.max(0, T - x), span)) end
  if Tp > 0 then t = math.max(t, tokenFloor(math.max(0, Tp - x), pspan)) end
  return t
end
local out = {1, gen, now, 0}
local kept = 0
local pos = 13
for _ = 1, tonumber(ARGV[12]) do
  local latest, k = now + tonumber(ARGV[pos]), tonumber(ARGV[pos + 1])
  local first = pos + 2
  pos = first + 2 * k
  local totalBefore, tailBefore = total, tail
  local fail, never, last = false, false, 0
  for i = 1, k do
    local x = tonumber(ARGV[first + 2 * i - 1])
    local t = earliest(x, n0 + kept + i - 1)
    if t == 1 / 0 then never = true; break end
    if t > latest then fail = true end
    ts[kept + i] = t
    cums[kept + i] = total + x
    ids[kept + i] = ARGV[first + 2 * i - 2]
    tail = t
    total = total + x
    last = t
  end
  if never or fail then
    -- All or nothing: this request's calls leave the tables (from the end, so # stays right).
    for i = #ts, kept + 1, -1 do ts[i] = nil; cums[i] = nil; ids[i] = nil end
    total, tail = totalBefore, tailBefore
    out[#out + 1] = 0
    if never then out[#out + 1] = -1 else out[#out + 1] = last - now end
    out[#out + 1] = 0
  else
    out[#out + 1] = 1
    out[#out + 1] = last - now
    out[#out + 1] = k
    for i = kept + 1, kept + k do out[#out + 1] = ts[i] - now end
    kept = kept + k
  end
end
out[4] = n0 + kept
for i = 1, kept, 250 do
  local byTime, byCum = {}, {}
  for j = i, math.min(i + 249, kept) do
    byTime[#byTime + 1] = ts[j]
    byTime[#byTime + 1] = ids[j]
    byCum[#byCum + 1] = cums[j]
    byCum[#byCum + 1] = ids[j]
  end
  redis.call('ZADD', KEYS[1], unpack(byTime))
  redis.call('ZADD', KEYS[2], unpack(byCum))
end
if kept > 0 then redis.call('HSET', KEYS[3], 'total', total) end
return out
`;

// ARGV: knownGen, candidateGen, keep, replicaId, n, then n × (id, offset, tokens): this replica's calls, written back.
// Returns {gen, graceLeftMs}.
export const RESTORE = `${COMMON}
local gen = redis.call('HGET', KEYS[3], 'gen')
if not gen then
  gen = ARGV[2]
  redis.call('HSET', KEYS[3], 'gen', gen, 'since', now, 'total', 0, 'base', 0)
end
local meta = redis.call('HMGET', KEYS[3], 'total', 'base')
local total = tonumber(meta[1]) or 0
local base = prune(tonumber(ARGV[3]), tonumber(meta[2]) or 0, total)
if redis.call('HSETNX', KEYS[3], 'r:' .. ARGV[4], 1) == 1 then redis.call('HINCRBY', KEYS[3], 'restored', 1) end
for i = 0, tonumber(ARGV[5]) - 1 do
  local id, t, x = ARGV[6 + 3 * i], now + tonumber(ARGV[7 + 3 * i]), tonumber(ARGV[8 + 3 * i])
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
export const RELEASE = `
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
export const NOTE = `
local x = tonumber(ARGV[1])
if x > 0 and redis.call('HEXISTS', KEYS[1], 'gen') == 1 then redis.call('HINCRBYFLOAT', KEYS[1], 'total', x) end
local ms = tonumber(ARGV[2])
if ms > 0 and redis.call('PTTL', KEYS[2]) < ms then redis.call('SET', KEYS[2], '1', 'PX', ms) end
return 1
`;

// KEYS[1] any key of the budget (so a Cluster routes it to the budget's node). Returns Redis's time in ms.
export const CLOCK = `
local tm = redis.call('TIME')
return tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)
`;
