-- Routing's team script: every change of a team's routing state is one call
-- of this script, so choosing a rep, charging its capacity, taking a lead off
-- the queue, writing the lead's record and the rep's inbox item happen at
-- once, also with many routing replicas.
--
-- KEYS[1] = lf:routing:{team:<id>}:cfgver   (every other key shares the tag)
-- ARGV[1] = JSON request {op, lead, now, ver, cands = [{id, w, cap}], dec, decs, ...}
-- ARGV[2], ARGV[3] = encoded LeadProfile and Score (op "route" only)
-- Op "routes" routes several leads in order, as that many "route" calls
-- would, paying the call's set-up (request, loads, round-robin state) once:
-- ARGV[1] = {op, ver, cands, items = [route request without cands]},
-- ARGV[2i], ARGV[2i+1] = item i's LeadProfile and Score. It answers
-- {st = "OK", loads = loads before the first item, items = [route answers
-- without loads]}, or STALE for all of them.
-- Returns a JSON object; "st" is the status.
local P = string.sub(KEYS[1], 1, #KEYS[1] - 6)
local a = cjson.decode(ARGV[1])
local now = tonumber(a.now)

local cv = tonumber(redis.call('GET', KEYS[1]) or '0')
if a.ver and tonumber(a.ver) > 0 and tonumber(a.ver) < cv then
  return cjson.encode({st = 'STALE', ver = cv})
end

local function leadkey(id) return P .. 'lead:' .. id end

local function record(id)
  local f = redis.call('HMGET', leadkey(id), 'st', 'rep', 'seq', 'dec', 'fta', 'ftd', 'tch', 'treq', 'rea', 'req', 'last', 'tp', 'pol', 'tdue')
  return {st = f[1], rep = f[2] or '', seq = tonumber(f[3] or '0') or 0, dec = f[4] or '', fta = tonumber(f[5] or '0') or 0,
    ftd = tonumber(f[6] or '0') or 0, tch = tonumber(f[7] or '0') or 0, treq = tonumber(f[8] or '0') or 0,
    rea = tonumber(f[9] or '0') or 0, req = f[10] or '', last = f[11] or '', tp = f[12] or '', pol = f[13] or '',
    tdue = tonumber(f[14] or '0') or 0}
end

-- perrep reads the candidates' numbers from the team's hash key (rep →
-- number; 0 when absent).
local function perrep(key, cands)
  local out = {}
  if #cands == 0 then return out end
  local ids = {}
  for i, c in ipairs(cands) do ids[i] = c.id end
  local v = redis.call('HMGET', P .. key, unpack(ids))
  for i, c in ipairs(cands) do out[c.id] = tonumber(v[i] or '0') or 0 end
  return out
end

local function excluded(id)
  local s = {}
  for _, r in ipairs(redis.call('SMEMBERS', P .. 'excl:' .. id)) do s[r] = true end
  return s
end

local function breached(id)
  local l = redis.call('SMEMBERS', P .. 'brx:' .. id)
  if #l == 0 then return nil end
  table.sort(l)
  return l
end

local function setlist(s)
  local l = {}
  for k, _ in pairs(s) do table.insert(l, k) end
  if #l == 0 then return nil end
  table.sort(l)
  return l
end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- The round-robin state of the candidates, read once per call and written
-- after each pick (or, in a batch, once at its end).
local swrr, swrrdirty, swrrdefer = nil, {}, false

local function swrrof(cands)
  if not swrr then swrr = perrep('swrr', cands) end
  return swrr
end

local function flushswrr()
  local args = {}
  for id, _ in pairs(swrrdirty) do
    table.insert(args, id)
    table.insert(args, swrr[id])
  end
  if #args > 0 then redis.call('HSET', P .. 'swrr', unpack(args)) end
  swrrdirty = {}
end

-- pick chooses a rep: the preferred rep when it can take the lead (strict:
-- nobody else), else smooth weighted round-robin among the candidates under
-- capacity. Every candidate under capacity earns its weight; the chosen one
-- (never an excluded one) pays the sum. Shares converge to the weights.
local function pick(cands, loads, ex, pref, strict)
  if pref and pref ~= '' then
    for _, c in ipairs(cands) do
      if c.id == pref and (loads[c.id] or 0) < c.cap and not ex[c.id] then return c.id end
    end
    if strict then return nil end
  end
  local free = {}
  for _, c in ipairs(cands) do
    if (loads[c.id] or 0) < c.cap then table.insert(free, c) end
  end
  if #free == 0 then return nil end
  local cur = swrrof(cands)
  local total, best, bestcw = 0, nil, nil
  local cws = {}
  for i, c in ipairs(free) do
    local cw = cur[c.id] + c.w
    cws[i] = cw
    total = total + c.w
    if not ex[c.id] and (best == nil or cw > bestcw) then best, bestcw = i, cw end
  end
  if best == nil then return nil end
  cws[best] = cws[best] - total
  for i, c in ipairs(free) do
    cur[c.id] = cws[i]
    swrrdirty[c.id] = true
  end
  if not swrrdefer then flushswrr() end
  return free[best].id
end

local function inbox(rep, kind, id, dec, extra)
  local args = {P .. 'inbox:' .. rep, 'MAXLEN', '~', 10000, '*', 'k', kind, 'lead', id, 'dec', dec or '', 'at', now}
  if extra then
    for k, v in pairs(extra) do
      table.insert(args, k)
      table.insert(args, v)
    end
  end
  return redis.call('XADD', unpack(args))
end

-- assign gives lead id to rep. route passes the record fields it writes
-- (set, written in the same HSET) and the ones assign needs from them
-- (known, in HMGET's order), so they are not written and read back.
local function assign(id, rep, dec, loads, set, known)
  local L = leadkey(id)
  loads[rep] = (loads[rep] or 0) + 1
  redis.call('HINCRBY', P .. 'load', rep, 1)
  local seq = redis.call('HINCRBY', L, 'seq', 1)
  local f = known or redis.call('HMGET', L, 'ftw', 'tw', 'pol', 'tp', 'heat', 'score', 'org')
  local ftw, tw = tonumber(f[1] or '0') or 0, tonumber(f[2] or '0') or 0
  local ftd, tdue = 0, 0
  if ftw > 0 then ftd = now + ftw end
  if tw > 0 then tdue = now + tw end
  local args = set or {}
  for _, v in ipairs({'st', 'assigned', 'rep', rep, 'at', now, 'dec', dec, 'ftd', ftd, 'tdue', tdue,
    'fta', 0, 'tch', 0, 'acc', 0, 'qat', 0}) do
    args[#args + 1] = v
  end
  redis.call('HSET', L, unpack(args))
  redis.call('ZADD', P .. 'rep:' .. rep, now, id)
  inbox(rep, 'assigned', id, dec)
  return {lead = id, rep = rep, seq = seq, dec = dec, ftd = ftd, tdue = tdue, pol = f[3] or '', tp = f[4] or '',
    heat = tonumber(f[5] or '0') or 0, score = tonumber(f[6] or '0') or 0, org = f[7] or ''}
end

local function unhold(id, r, loads)
  if r.st == 'assigned' or r.st == 'accepted' then
    local n = redis.call('HINCRBY', P .. 'load', r.rep, -1)
    if n < 0 then redis.call('HSET', P .. 'load', r.rep, 0) end
    if loads[r.rep] then loads[r.rep] = math.max(0, loads[r.rep] - 1) end
    redis.call('ZREM', P .. 'rep:' .. r.rep, id)
  elseif r.st == 'queued' then
    redis.call('ZREM', P .. 'queue', id)
  elseif r.st == 'parked' then
    redis.call('ZREM', P .. 'parked', id)
  end
end

-- Queue order: heat (hot first), then score (high first), then arrival.
-- (3-heat)*2^50 + (9999-score)*2^36 + arrival stays below 2^53: exact.
local function enqueue(id)
  local L = leadkey(id)
  local f = redis.call('HMGET', L, 'heat', 'score')
  local heat = math.min(3, math.max(0, tonumber(f[1] or '0') or 0))
  local sc = math.min(9999, math.max(0, tonumber(f[2] or '0') or 0))
  local seq = redis.call('INCR', P .. 'qseq')
  local prio = (3 - heat) * 1125899906842624 + (9999 - sc) * 68719476736 + seq
  redis.call('ZADD', P .. 'queue', string.format('%.0f', prio), id)
  redis.call('HSET', L, 'st', 'queued', 'rep', '', 'qat', now, 'ftd', 0, 'tdue', 0)
end

-- drain hands queued leads, in queue order, to reps with free capacity, one
-- decision id per lead handed out. A lead every free rep is excluded from is
-- skipped (it keeps its place).
local function drain(cands, loads, decs, out)
  local di = 1
  while decs and di <= #decs do
    local free = false
    for _, c in ipairs(cands) do
      if (loads[c.id] or 0) < c.cap then free = true break end
    end
    if not free then break end
    local ids = redis.call('ZRANGE', P .. 'queue', 0, 199)
    if #ids == 0 then break end
    local got = false
    for _, id in ipairs(ids) do
      local ex = excluded(id)
      local before = copy(loads)
      local rep = pick(cands, loads, ex, nil, false)
      if rep then
        redis.call('ZREM', P .. 'queue', id)
        local x = assign(id, rep, decs[di], loads)
        di = di + 1
        x.loads = before
        x.excl = setlist(ex)
        x.brx = breached(id)
        table.insert(out, x)
        got = true
        break
      end
    end
    if not got then break end
  end
end

local function result(t, loads, drained)
  t.loads = loads
  if drained and #drained > 0 then t.drained = drained end
  return cjson.encode(t)
end

local cands = a.cands or {}
local loads = perrep('load', cands)
local out = {}
local L = a.lead and leadkey(a.lead) or nil

-- route routes one lead (request a, profile pb, score sb) and answers
-- without the loads.
local function route(a, pb, sb)
  local L = leadkey(a.lead)
  local r = record(a.lead)
  if r.st == 'queued' or r.st == 'assigned' or r.st == 'accepted' or r.st == 'parked' or
      (r.st and a.req ~= '' and r.req == a.req) then
    return {st = 'EXISTING', state = r.st, rep = r.rep, dec = r.dec, seq = r.seq}
  end
  local ex = {}
  local rep
  if a.force and a.pref and a.pref ~= '' then
    rep = a.pref
  else
    rep = pick(cands, loads, ex, a.pref, a.strict)
    if not rep and a.strict then
      return {st = 'NOPREF'}
    end
  end
  if r.st then
    redis.call('DEL', P .. 'excl:' .. a.lead, P .. 'touch:' .. a.lead, P .. 'brx:' .. a.lead)
  end
  local set = {'lead', a.lead, 'team', a.team, 'tp', a.tp, 'heat', a.heat, 'score', a.score,
    'p', pb, 's', sb, 'r', a.r, 'req', a.req, 'pol', a.pol, 'ftw', a.ftw, 'tw', a.tw,
    'treq', a.treq, 'rea', 0, 'rat', now, 'dec', a.dec, 'last', '', 'org', a.org}
  if rep then
    local x = assign(a.lead, rep, a.dec, loads, set, {a.ftw, a.tw, a.pol, a.tp, a.heat, a.score, a.org})
    x.st = 'ASSIGNED'
    return x
  end
  redis.call('HSET', L, unpack(set))
  enqueue(a.lead)
  return {st = 'QUEUED', lead = a.lead}
end

if a.op == 'route' then
  local x = route(a, ARGV[2], ARGV[3])
  if x.st == 'EXISTING' then return cjson.encode(x) end
  return result(x, loads)
end

if a.op == 'routes' then
  local before = copy(loads)
  local items = {}
  swrrdefer = true
  for i, it in ipairs(a.items) do
    now = tonumber(it.now)
    it.team = a.team
    items[i] = route(it, ARGV[2 * i], ARGV[2 * i + 1])
  end
  flushswrr()
  return cjson.encode({st = 'OK', loads = before, items = items})
end

if a.op == 'drain' then
  drain(cands, loads, a.decs, out)
  return result({st = 'OK'}, loads, out)
end

local r = record(a.lead)
if not r.st then
  return cjson.encode({st = 'NOTFOUND'})
end

if a.op == 'release' then
  -- mode: release (scoring), giveback (the holder), moveout (to another team)
  if a.mode == 'giveback' then
    if r.st == 'given_back' and r.last == a.rep then
      return cjson.encode({st = 'ALREADY', state = r.st, seq = r.seq, rep = a.rep})
    end
    if (r.st ~= 'assigned' and r.st ~= 'accepted') or r.rep ~= a.rep then
      return cjson.encode({st = 'NOTHOLDER', state = r.st, rep = r.rep})
    end
  elseif r.st == 'released' or r.st == 'given_back' or r.st == 'moved' then
    return cjson.encode({st = 'ALREADY', state = r.st, seq = r.seq, rep = ''})
  end
  unhold(a.lead, r, loads)
  redis.call('HSET', L, 'st', a.newst, 'rep', '', 'last', r.rep, 'relr', a.reason or '', 'relat', now)
  if r.rep ~= '' and a.mode ~= 'giveback' then
    inbox(r.rep, 'revoked', a.lead, r.dec, {note = a.reason or ''})
  end
  drain(cands, loads, a.decs, out)
  return result({st = 'RELEASED', rep = r.rep, seq = r.seq, prev = r.st, tp = r.tp}, loads, out)
end

if a.op == 'accept' then
  if r.st == 'accepted' and r.rep == a.rep then
    return cjson.encode({st = 'ALREADY', seq = r.seq, rep = r.rep, tp = r.tp})
  end
  if r.st ~= 'assigned' or r.rep ~= a.rep then
    return cjson.encode({st = 'NOTHOLDER', state = r.st, rep = r.rep})
  end
  redis.call('HSET', L, 'st', 'accepted', 'acc', now)
  return cjson.encode({st = 'OK', seq = r.seq, rep = r.rep, tp = r.tp})
end

if a.op == 'touch' then
  if (r.st ~= 'assigned' and r.st ~= 'accepted') or r.rep ~= a.rep then
    return cjson.encode({st = 'NOTHOLDER', state = r.st, rep = r.rep})
  end
  if a.tid and a.tid ~= '' then
    if redis.call('SADD', P .. 'touch:' .. a.lead, a.tid) == 0 then
      return cjson.encode({st = 'DUP', seq = r.seq, rep = r.rep, tp = r.tp, tch = r.tch, treq = r.treq})
    end
  end
  local tch = redis.call('HINCRBY', L, 'tch', 1)
  local first = r.fta == 0
  if first then redis.call('HSET', L, 'fta', now) end
  local within = r.ftd == 0 or now <= r.ftd
  return cjson.encode({st = 'OK', first = first, within = within, tch = tch, treq = r.treq, seq = r.seq,
    rep = r.rep, tp = r.tp, ftd = r.ftd, tdue = r.tdue})
end

if a.op == 'move' then
  local ex = excluded(a.lead)
  local from = r.rep
  if a.mode == 'reject' then
    if r.st ~= 'assigned' or r.rep ~= a.rep then
      return cjson.encode({st = 'NOTHOLDER', state = r.st, rep = r.rep})
    end
    redis.call('SADD', P .. 'excl:' .. a.lead, a.rep)
    ex[a.rep] = true
    redis.call('HSET', L, 'lastrej', a.reason or '')
  elseif a.mode == 'breach' then
    if (r.st ~= 'assigned' and r.st ~= 'accepted') or r.seq ~= tonumber(a.seq) then
      return cjson.encode({st = 'NOOP', state = r.st})
    end
    -- held: the assignment stands, so its other SLA timer is still due
    if a.kind == 'first_touch' and r.fta ~= 0 then
      return cjson.encode({st = 'NOOP', state = r.st, held = true})
    end
    if a.kind == 'touches' and r.tch >= r.treq then
      return cjson.encode({st = 'NOOP', state = r.st, held = true})
    end
    -- once per assignment and kind, whatever the action
    if redis.call('HSETNX', L, 'br:' .. a.kind .. ':' .. r.seq, now) == 0 then
      return cjson.encode({st = 'NOOP', state = r.st, held = true})
    end
    if a.action == 'notify' then
      return cjson.encode({st = 'NOTIFIED', rep = r.rep, seq = r.seq, tp = r.tp})
    end
    redis.call('SADD', P .. 'excl:' .. a.lead, r.rep)
    redis.call('SADD', P .. 'brx:' .. a.lead, r.rep)
    ex[r.rep] = true
    if a.action == 'park' or (tonumber(a.parkafter or 0) > 0 and r.rea >= tonumber(a.parkafter)) then
      unhold(a.lead, r, loads)
      redis.call('ZADD', P .. 'parked', now, a.lead)
      redis.call('HSET', L, 'st', 'parked', 'rep', '', 'last', from, 'qat', now, 'ftd', 0, 'tdue', 0, 'dec', a.dec)
      inbox(from, 'revoked', a.lead, r.dec, {note = 'sla breach: parked'})
      drain(cands, loads, a.decs, out)
      return result({st = 'PARKED', dec = a.dec, from = from, seq = r.seq, prevseq = r.seq, tp = r.tp, pol = r.pol, excl = setlist(ex), brx = breached(a.lead), before = copy(loads)}, loads, out)
    end
    redis.call('HINCRBY', L, 'rea', 1)
  elseif a.mode == 'manual' then
    if r.st ~= 'assigned' and r.st ~= 'accepted' and r.st ~= 'queued' and r.st ~= 'parked' then
      return cjson.encode({st = 'BADSTATE', state = r.st})
    end
    if a.to ~= '' and a.to == r.rep then
      return cjson.encode({st = 'ALREADY', rep = r.rep, seq = r.seq, dec = r.dec})
    end
    if a.to ~= '' then
      redis.call('SREM', P .. 'excl:' .. a.lead, a.to)
      redis.call('SREM', P .. 'brx:' .. a.lead, a.to)
      ex[a.to] = nil
      if not a.force then
        local ok = false
        for _, c in ipairs(cands) do
          if c.id == a.to and (loads[c.id] or 0) < c.cap then ok = true end
        end
        if not ok then
          return result({st = 'NOTELIGIBLE', excl = setlist(ex)}, loads)
        end
      end
    end
  else
    return cjson.encode({st = 'BADOP'})
  end
  local before = copy(loads)
  unhold(a.lead, r, loads)
  if from ~= '' and a.mode ~= 'reject' then
    inbox(from, 'revoked', a.lead, r.dec, {note = a.mode})
  end
  local rep
  if a.mode == 'manual' and a.to ~= '' then
    rep = a.to
  else
    -- never straight back to the rep it is taken from
    local ex2 = copy(ex)
    if from ~= '' then ex2[from] = true end
    rep = pick(cands, loads, ex2, nil, false)
  end
  local res
  if rep then
    res = assign(a.lead, rep, a.dec, loads)
    res.st = 'ASSIGNED'
  else
    enqueue(a.lead)
    redis.call('HSET', L, 'dec', a.dec)
    res = {st = 'QUEUED', lead = a.lead, tp = r.tp, dec = a.dec}
  end
  res.from = from
  res.prevseq = r.seq
  res.excl = setlist(ex)
  res.brx = breached(a.lead)
  res.before = before
  drain(cands, loads, a.decs, out)
  return result(res, loads, out)
end

return cjson.encode({st = 'BADOP'})
