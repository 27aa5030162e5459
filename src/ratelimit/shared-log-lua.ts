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

// ARGV: knownGen, candidateGen, graceMs, latest (offset), L, span, P, paceSpan, T, Tp, keep, k, replicas,
// then k × (id, tokens)
// Returns {1, gen, now, tailOffset, calls in the log, start offsets…} | {0, gen, now, lastOffset or -1} | {2, gen} restore first | {3, gen, waitMs}
export const RESERVE = `${COMMON}
local gen = redis.call('HGET', KEYS[3], 'gen')
if not gen then
  redis.call('HSET', KEYS[3], 'gen', ARGV[2], 'since', now, 'total', 0, 'base', 0)
  return {2, ARGV[2]}
end
if gen ~= ARGV[1] then return {2, gen} end
local graceEnd = tonumber(redis.call('HGET', KEYS[3], 'since')) + tonumber(ARGV[3])
-- The grace ends early once as many replicas as RATE_LIMIT_REPLICAS have written back (a fresh budget, a quick
-- restart): then every replica's calls are in the log.
if now < graceEnd and (tonumber(redis.call('HGET', KEYS[3], 'restored')) or 0) < tonumber(ARGV[13]) then
  return {3, gen, graceEnd - now}
end
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
  local id, x = ARGV[12 + 2 * i], tonumber(ARGV[13 + 2 * i])
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
local out = {1, gen, now, last - now, n}
for i = 1, #starts do out[#out + 1] = starts[i] end
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
prune(tonumber(ARGV[3]))
local total = tonumber(redis.call('HGET', KEYS[3], 'total')) or 0
local base = tonumber(redis.call('HGET', KEYS[3], 'base')) or 0
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
