-- Part of the route script (last): the ops, each one decision.

-- ops ---------------------------------------------------------------------------------

-- Giving back and pausing take no time of their own, as in the memory breaker: only the
-- decisions and outcomes move it along (and announce a cooldown's end).
if op ~= 'release' and op ~= 'cancel' and op ~= 'withdraw' and op ~= 'pause' then advance() end
local result = {}
-- The one-window path (a log and a running total) or the lanes'.
local function limiter_prune()
  if MULTI then prune_lanes() else prune() end
end

local function admission(v, not_before)
  if MULTI then return lanes_admission_time(need_of(v), not_before) end
  return admission_time(total_of(v), not_before)
end

local function admitted(v, at)
  if MULTI then return lanes_reserve(need_of(v), at) end
  return reserve(total_of(v), at)
end

local function give_back(id)
  if MULTI then lanes_cancel(id) else cancel(id) end
end

-- The running sum is made (once) before anything changes the log.
if MULTI then lsum() end

if op == 'look' then
  limiter_prune()
  local wait = admission(ARGV[11], held_back()) - t
  result = {fmt(ready_at()), fmt(paused_until()), fmt(wait)}
elseif op == 'admit' then
  limiter_prune()
  local at = admission(ARGV[11], held_back())
  if at > t then
    result = {admitted(ARGV[11], at), fmt(at)}
  elseif paused_until() > t then
    result = {}
  else
    local permit = acquire()
    if permit == nil then
      result = {}
    else
      result = {admitted(ARGV[11], at), fmt(at), permit[1], permit[2], permit[3], permit[4]}
    end
  end
elseif op == 'acquire' then
  -- ARGV[11] "1": the caller's in-flight time grew since its admissions, look for an
  -- overdraft (reading the window); else none can be.
  if paused_until() <= t and not (ARGV[11] == '1' and overdrawn()) then
    result = acquire() or {}
  end
elseif op == 'ready' then
  result = {fmt(ready_at())}
elseif op == 'succeed' then
  record(ARGV[12], true)
  if ARGV[13] ~= '' then
    if MULTI then lanes_settle(ARGV[11], ARGV[13]) else settle(ARGV[11], total_of(ARGV[13])) end
  end
elseif op == 'fail' then
  record(ARGV[12], false)
elseif op == 'release' then
  take(ARGV[12])
elseif op == 'cancel' then
  give_back(ARGV[11])
elseif op == 'withdraw' then
  give_back(ARGV[11])
  take(ARGV[12])
elseif op == 'pause' then
  local until_ = t + tonumber(ARGV[11])
  if until_ > paused_until() then
    redis.call('SET', K_PAUSE, fmt(until_), 'PX', math.ceil((until_ - t) * 1000) + 1000)
  end
elseif op == 'snapshot' then
  limiter_prune()
  local first, per = lanes_snapshot()
  result = first
  for _, v in ipairs({
    failures, redis.call('ZCARD', K_OUT), opened_at and fmt(opened_at) or '', probes,
    fmt(paused_until()),
  }) do
    result[#result + 1] = v
  end
  for _, v in ipairs(per) do result[#result + 1] = v end
elseif op == 'exhausted' then
  -- ARGV[11] the dimension (1 requests .. 4 output tokens), 12 the window's seconds,
  -- 13 its limit, 14 the seconds until the provider frees one ("" if not trusted).
  exhausted(tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13]), tonumber(ARGV[14]))
elseif op == 'reset' then
  move('closed', 'reset')
elseif op == 'seed' then
  -- What a process admitted within the window, sent once Redis answers after an outage
  -- (triples from ARGV[11]: id here or "" if admitted from memory, seconds from now,
  -- tokens). Those admitted here before this log began (a Redis restarted empty) are
  -- logged again; ids cannot tell, as they restart with the log.
  limiter_prune()
  local born = num(redis.call('HGET', K_META, 'born'), math.huge)
  for i = 11, #ARGV - 2, 3 do
    local at = t + tonumber(ARGV[i + 1])
    if at + SPAN > t and (ARGV[i] == '' or at < born) then
      admitted(ARGV[i + 2], at)
    end
  end
else
  return redis.error_reply('unknown op ' .. op)
end

if dirty then
  local fields = {'state', state, 'failures', failures, 'probes', probes}
  if opened_at ~= nil then
    fields[#fields + 1] = 'opened_at'
    fields[#fields + 1] = fmt(opened_at)
  else
    redis.call('HDEL', K_BRK, 'opened_at')
  end
  redis.call('HSET', K_BRK, unpack(fields))
end
-- When this route's state began here: a seed tells admissions this log never had by it.
redis.call('HSETNX', K_META, 'born', fmt(t))
-- Idle keys expire; each write pushes the expiry past anything still queued, the
-- breaker's window and its cooldown, so nothing live is ever dropped.
local last = redis.call('ZRANGE', K_LOG, -1, -1, 'WITHSCORES')
local ahead = 0
if #last > 0 then ahead = math.max(0, tonumber(last[2]) - t) end
local ttl = math.ceil((ahead + 2 * math.max(longest() + EXTRA, B_WINDOW, COOLDOWN)) * 1000) + 1000
for i = 1, 6 do redis.call('PEXPIRE', KEYS[i], ttl) end
if K_SLICE and MULTI then
  redis.call('PEXPIRE', K_SLICE, ttl)
  redis.call('PEXPIRE', K_PENDING, ttl)
end
-- Who decided on this route in the last two windows (one id per route object, that is per
-- process): while Redis is away, each of them falls back to 1 / this count of the quota.
local peers = 0
if KEYS[8] then
  if mover ~= '' and (op == 'look' or op == 'admit' or op == 'acquire') then
    redis.call('ZADD', KEYS[8], fmt(t), mover)
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', '(' .. fmt(t - 2 * WINDOW))
  peers = redis.call('ZCARD', KEYS[8])
  redis.call('PEXPIRE', KEYS[8], ttl)
end
-- The breaker's generation orders replies: one read after a newer one is stale.
local now_brk = redis.call('HMGET', K_BRK, 'gen', 'mover')
return {fmt(t), state, changes, result, now_brk[1] or '0', now_brk[2] or '', epoch, peers}
