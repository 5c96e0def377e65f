-- Apply one LeadEvent to a lead's facts, atomically with its idempotency record.
-- KEYS: 1 generation pointer, 2 lead facts (hash), 3 lead journey (hash: event id -> encoded event),
--       4 cohort index (zset: lead id -> capture ms), 5 generation meta (hash)
-- ARGV: 1 generation, 2 check ("1": refuse unless KEYS[1] == ARGV[1]), 3 event id, 4 encoded event,
--       5 lead id, 6 stream entry id ("" when not from the stream), 7.. ops:
--       "incr", field, delta
--       "min"|"max", group, key, n, name1, value1, ... namen, valuen
-- Returns {-1} stale generation, {0} duplicate event, {1, groups set for the first time...}.
if ARGV[2] == '1' and redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return {-1}
end
if redis.call('HSETNX', KEYS[3], ARGV[3], ARGV[4]) == 0 then
  return {0}
end
redis.call('HINCRBY', KEYS[5], 'events', 1)
local ms, sq = string.match(ARGV[6], '^(%d+)-(%d+)$')
if ms then
  local cur = redis.call('HGET', KEYS[5], 'min_sid')
  local cms, csq
  if cur then cms, csq = string.match(cur, '^(%d+)-(%d+)$') end
  if not cms or tonumber(ms) < tonumber(cms) or (tonumber(ms) == tonumber(cms) and tonumber(sq) < tonumber(csq)) then
    redis.call('HSET', KEYS[5], 'min_sid', ARGV[6])
  end
end
local out = {1}
local i = 7
while i <= #ARGV do
  local kind = ARGV[i]
  if kind == 'incr' then
    redis.call('HINCRBY', KEYS[2], ARGV[i + 1], ARGV[i + 2])
    i = i + 3
  else
    local g, k, n = ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
    local old = redis.call('HGET', KEYS[2], g)
    if (not old) or (kind == 'min' and k < old) or (kind == 'max' and k > old) then
      local args = {g, k}
      for j = 1, n do
        args[#args + 1] = g .. '.' .. ARGV[i + 2 + 2 * j]
        args[#args + 1] = ARGV[i + 3 + 2 * j]
      end
      redis.call('HSET', KEYS[2], unpack(args))
      if not old then
        out[#out + 1] = g
      end
      if g == 'cap' then
        redis.call('ZADD', KEYS[4], tonumber(string.sub(k, 1, 15)), ARGV[5])
      end
    end
    i = i + 4 + 2 * n
  end
end
return out
