-- Apply a batch of LeadEvents, in order, each to its lead's facts atomically
-- with its idempotency record. One call per batch: the generation check, the
-- event counter and the smallest stream id are done once, not per event.
-- KEYS: 1 generation pointer, 2 cohort index (zset: lead id -> capture ms),
--       3 generation meta (hash), then per event: lead facts (hash),
--       lead journey (hash: event id -> encoded event)
-- ARGV: 1 generation, 2 check ("1": refuse unless KEYS[1] == ARGV[1]),
--       3 ordered ("1": every event has a stream entry id, each larger than
--       the one before, so the first event applied has the smallest), then
--       per event: event id, encoded event, lead id, stream entry id ("" when
--       not from the stream), number of op arguments, the op arguments:
--       "incr", field, delta
--       "min"|"max", group, key, n, name1, value1, ... namen, valuen
-- Returns -1 for a stale generation, else one reply per event: 0 for a
-- duplicate event, {1, groups set for the first time...} when applied,
-- {-2, message} when a command failed. A failed event's idempotency record
-- is removed so that a redelivery tries it again (and the consumer
-- dead-letters it after its deliveries); ops before the failing one stay
-- applied (a script does not roll back). The other events are unaffected.
if ARGV[2] == '1' and redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end

-- The smaller of two stream entry ids "ms-seq" (nil when neither is one).
local function minsid(a, b)
  local ams, asq
  if a then ams, asq = string.match(a, '^(%d+)-(%d+)$') end
  local bms, bsq = string.match(b or '', '^(%d+)-(%d+)$')
  if not bms then return ams and a end
  if not ams then return b end
  ams, asq, bms, bsq = tonumber(ams), tonumber(asq), tonumber(bms), tonumber(bsq)
  if bms < ams or (bms == ams and bsq < asq) then return b end
  return a
end

local function apply(facts, journey, id, raw, lead, i, last)
  if redis.call('HSETNX', journey, id, raw) == 0 then
    return 0
  end
  local out = {1}
  while i <= last do
    local kind = ARGV[i]
    if kind == 'incr' then
      redis.call('HINCRBY', facts, ARGV[i + 1], ARGV[i + 2])
      i = i + 3
    else
      local g, k, n = ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
      local old = redis.call('HGET', facts, g)
      if (not old) or (kind == 'min' and k < old) or (kind == 'max' and k > old) then
        local args = {g, k}
        for j = 1, n do
          args[#args + 1] = g .. '.' .. ARGV[i + 2 + 2 * j]
          args[#args + 1] = ARGV[i + 3 + 2 * j]
        end
        redis.call('HSET', facts, unpack(args))
        if not old then
          out[#out + 1] = g
        end
        if g == 'cap' then
          redis.call('ZADD', KEYS[2], tonumber(string.sub(k, 1, 15)), lead)
        end
      end
      i = i + 4 + 2 * n
    end
  end
  return out
end

local res, applied, low = {}, 0, nil
local ordered = ARGV[3] == '1'
local a, k = 4, 4
while a <= #ARGV do
  local nops = tonumber(ARGV[a + 4])
  local ok, r = pcall(apply, KEYS[k], KEYS[k + 1], ARGV[a], ARGV[a + 1], ARGV[a + 2], a + 5, a + 4 + nops)
  if not ok then
    redis.call('HDEL', KEYS[k + 1], ARGV[a])
    r = {-2, type(r) == 'table' and (r.err or 'error') or tostring(r)}
  elseif r ~= 0 then
    applied = applied + 1
    if ordered then
      -- Parsing each id (string.match, tonumber) was a tenth of the script.
      low = low or ARGV[a + 3]
    else
      low = minsid(low, ARGV[a + 3])
    end
  end
  res[#res + 1] = r
  a, k = a + 5 + nops, k + 2
end
if applied > 0 then
  redis.call('HINCRBY', KEYS[3], 'events', applied)
end
if low then
  local cur = redis.call('HGET', KEYS[3], 'min_sid')
  if not cur or minsid(cur, low) ~= cur then
    redis.call('HSET', KEYS[3], 'min_sid', low)
  end
end
return res
