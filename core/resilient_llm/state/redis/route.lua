-- One route's shared state: its sliding-window limiter log, its circuit breaker and its
-- retry-after pause. Every change happens here, atomically, in one call per decision.
-- The rules mirror resilient_llm/limiter.py and resilient_llm/breaker.py step by step, so
-- the memory and Redis backends admit the same requests at the same times (the test suite
-- runs the same sequences against both and compares).
--
-- KEYS: 1 log (zset id -> admission time), 2 tokens (hash id -> tokens, and id:settled
--       -> 1 once settled), 3 meta (hash: horizon, total, seq, born, and offset and last
--       for server time), 4 breaker (hash, with the epoch of its ids),
--       5 outcomes (zset), 6 live (hash permit key -> a probe's grant time, else 0),
--       7 pause (string: end time), 8 peers (zset route object id -> its last decision)
-- ARGV: 1 op, 2 time (a number: the caller's clock; "@shift:lo:hi" or "": the Redis
--       server's clock, see server_time), 3 window, 4 rpm, 5 tpm ("" = none),
--       6 failure threshold, 7 failure rate ("" = none), 8 breaker window, 9 cooldown,
--       10 probes, then the op's own arguments from 11.
local K_LOG, K_TOK, K_META, K_BRK, K_OUT, K_LIVE, K_PAUSE =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
-- ARGV[1] is the op, then '|' and the id of the route object asking: a breaker move
-- records its mover, so a process can tell its own changes from others' in any order.
-- Then '|' and a random nonce of this call: the keys may be flushed or lost in a restart
-- at any time, and every counter with them, so ids made of counters alone would meet ids
-- handed out before, still held by callers; the nonce keeps them apart.
local op, mover, nonce = string.match(ARGV[1], '^([^|]+)|?([^|]*)|?([^|]*)$')

-- The server's clock may step (NTP, a failover to a replica whose clock differs): the
-- decisions run on TIME + an offset kept in meta. The offset moves so time never goes back
-- (a step back loses only the time since the last call) and, when the caller sends bounds
-- (lo, hi: the time of a reply it read plus what its own monotonic clock counted since it
-- read it, and since it sent the request), so time stays within them but for SLACK: a step
-- either way is undone by the first caller that talked to the route before it. ``shift``
-- is for tests: seconds added to TIME, standing for a step.
local SLACK = 1.0
local function server_time(shift, lo, hi)
  local now = redis.call('TIME')
  local raw = tonumber(now[1]) + tonumber(now[2]) / 1000000 + (shift or 0)
  local kept = redis.call('HMGET', K_META, 'offset', 'last')
  local offset, last = tonumber(kept[1] or '') or 0, tonumber(kept[2] or '')
  local at, moved = raw + offset, false
  if lo ~= nil and at < lo - SLACK then
    at, moved = lo, true
  elseif hi ~= nil and at > hi + SLACK then
    at, moved = hi, true
  end
  if last ~= nil and at < last then at, moved = last, true end
  if moved then redis.call('HSET', K_META, 'offset', string.format('%.17g', at - raw)) end
  redis.call('HSET', K_META, 'last', string.format('%.17g', at))
  return at
end

local t
if ARGV[2] == '' or string.sub(ARGV[2], 1, 1) == '@' then
  local shift, lo, hi = string.match(ARGV[2], '^@([^:]*):?([^:]*):?([^:]*)$')
  t = server_time(tonumber(shift), tonumber(lo), tonumber(hi))
else
  t = tonumber(ARGV[2])
end
local WINDOW, RPM, TPM = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local THRESHOLD, RATE = tonumber(ARGV[6]), tonumber(ARGV[7])
local B_WINDOW, COOLDOWN, PROBES = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])

-- Numbers handed to redis.call become strings with 14 digits, too few for server times
-- with microseconds: every time is formatted here, with all 17.
local function fmt(x) return string.format('%.17g', x) end
local function num(v, default) return tonumber(v or '') or default end

-- limiter -----------------------------------------------------------------------------

local function entries(from, count)
  local raw = redis.call('ZRANGE', K_LOG, from, from + count - 1, 'WITHSCORES')
  local out = {}
  if #raw == 0 then return out end
  local ids = {}
  for i = 1, #raw, 2 do ids[#ids + 1] = raw[i] end
  local toks = redis.call('HMGET', K_TOK, unpack(ids))
  for i = 1, #ids do
    out[i] = {id = ids[i], at = tonumber(raw[2 * i]), tokens = num(toks[i], 0)}
  end
  return out
end

local function prune()
  local horizon = num(redis.call('HGET', K_META, 'horizon'), nil)
  local dropped = 0
  while true do
    local batch = entries(0, 64)
    local stale = 0
    for _, e in ipairs(batch) do
      if e.at + WINDOW > t then break end
      stale = stale + 1
      dropped = dropped + e.tokens
      redis.call('ZREM', K_LOG, e.id)
      redis.call('HDEL', K_TOK, e.id, e.id .. ':settled')
      if horizon == nil or e.at + WINDOW > horizon then horizon = e.at + WINDOW end
    end
    if stale < 64 then break end
  end
  if horizon ~= nil then redis.call('HSET', K_META, 'horizon', fmt(horizon)) end
  if dropped ~= 0 then redis.call('HINCRBY', K_META, 'total', -dropped) end
end

local function admission_time(tokens, not_before)
  local at = t
  if not_before ~= nil and not_before > at then at = not_before end
  local horizon = num(redis.call('HGET', K_META, 'horizon'), nil)
  if horizon ~= nil and horizon > at then at = horizon end
  local n = redis.call('ZCARD', K_LOG)
  if n > 0 then
    local last = tonumber(redis.call('ZRANGE', K_LOG, -1, -1, 'WITHSCORES')[2])
    if last > at then at = last end
  end
  if RPM ~= nil and n >= RPM then
    local back = tonumber(redis.call('ZRANGE', K_LOG, n - RPM, n - RPM, 'WITHSCORES')[2])
    if back + WINDOW > at then at = back + WINDOW end
  end
  if TPM ~= nil then
    local used = num(redis.call('HGET', K_META, 'total'), 0)
    local first, batch, i = 0, entries(0, 64), 1
    local function current()
      if i > #batch then
        batch, i = entries(first, 64), 1
      end
      return batch[i]
    end
    local function step(e)
      used = used - e.tokens
      first = first + 1
      i = i + 1
    end
    while first < n do
      local e = current()
      if e.at + WINDOW > at then break end
      step(e)
    end
    while used + tokens > TPM do
      local e = current()
      if e == nil then break end
      at = e.at + WINDOW
      step(e)
    end
  end
  return at
end

local function reserve(tokens, at)
  local seq = redis.call('HINCRBY', K_META, 'seq', 1)
  -- seq keeps the log in admission order among equal times; the nonce keeps ids unique.
  local id = string.format('%016d', seq) .. ':' .. nonce
  redis.call('ZADD', K_LOG, fmt(at), id)
  redis.call('HSET', K_TOK, id, tokens)
  redis.call('HINCRBY', K_META, 'total', tokens)
  return id
end

-- A settled entry was sent: cancelling it is a no-op, as in limiter.py.
local function cancel(id)
  local tokens = redis.call('HGET', K_TOK, id)
  if tokens and redis.call('HEXISTS', K_TOK, id .. ':settled') == 0 then
    redis.call('ZREM', K_LOG, id)
    redis.call('HDEL', K_TOK, id)
    -- 0 - x, not -x: Lua writes -0 as "-0", which HINCRBY refuses.
    redis.call('HINCRBY', K_META, 'total', 0 - tonumber(tokens))
  end
end

local function settle(id, tokens)
  local old = redis.call('HGET', K_TOK, id)
  if old then
    if tokens < 0 then tokens = 0 end
    redis.call('HSET', K_TOK, id, tokens, id .. ':settled', 1)
    redis.call('HINCRBY', K_META, 'total', tokens - tonumber(old))
  end
end

-- breaker -----------------------------------------------------------------------------

local changes = {}
local b = redis.call('HMGET', K_BRK, 'state', 'opened_at', 'failures', 'probes', 'epoch')
local state = b[1] or 'closed'
local opened_at = num(b[2], nil)
local failures = num(b[3], 0)
local probes = num(b[4], 0)
-- The breaker's generation restarts when its hash is lost: the epoch, made anew then,
-- tells the processes that read a generation to start counting again.
local epoch = b[5]
if not epoch then
  epoch = nonce
  redis.call('HSET', K_BRK, 'epoch', epoch)
end
local dirty = false

local function move(new, reason)
  if state ~= new then
    changes[#changes + 1] = {state, new, fmt(t), reason}
  end
  state = new
  redis.call('HINCRBY', K_BRK, 'gen', 1)
  redis.call('HSET', K_BRK, 'mover', mover)
  redis.call('DEL', K_LIVE)
  probes = 0
  if new == 'open' then
    opened_at = t
  elseif new == 'closed' then
    opened_at = nil
    redis.call('DEL', K_OUT)
    failures = 0
  end
  dirty = true
end

local function advance()
  local horizon = t - B_WINDOW
  local old = redis.call('ZRANGEBYSCORE', K_OUT, '-inf', fmt(horizon))
  if #old > 0 then
    for _, member in ipairs(old) do
      if string.sub(member, -1) == '0' then failures = failures - 1 end
    end
    redis.call('ZREMRANGEBYSCORE', K_OUT, '-inf', fmt(horizon))
    dirty = true
  end
  if state == 'open' and t >= opened_at + COOLDOWN then move('half_open', 'cooldown elapsed') end
  -- A probe not reported within a cooldown is forgotten: a process that died holding
  -- one must not keep the breaker half-open for every other process.
  if state == 'half_open' and probes > 0 then
    local live = redis.call('HGETALL', K_LIVE)
    for i = 1, #live, 2 do
      local stamp = live[i + 1]
      if stamp ~= '0' and tonumber(stamp) + COOLDOWN <= t then
        redis.call('HDEL', K_LIVE, live[i])
        probes = probes - 1
        dirty = true
      end
    end
  end
end

local function ready_at()
  if state == 'open' then return opened_at + COOLDOWN end
  if state == 'half_open' and probes >= PROBES then return math.huge end
  return t
end

local function acquire()
  if state == 'open' or (state == 'half_open' and probes >= PROBES) then return nil end
  local id = redis.call('HINCRBY', K_BRK, 'next_id', 1)
  local probe = 0
  local stamp = '0'
  if state == 'half_open' then
    probe = 1
    stamp = fmt(t)
  end
  -- The key a permit is handed back by carries the nonce, as reservation ids do.
  local key = id .. ':' .. nonce
  redis.call('HSET', K_LIVE, key, stamp)
  probes = probes + probe
  dirty = true
  return {tostring(id), probe, redis.call('HGET', K_BRK, 'gen') or '0', key}
end

-- Only this generation's unused permits are live: stale or reused ones do nothing.
local function take(key)
  local stamp = redis.call('HGET', K_LIVE, key)
  if not stamp then return false end
  redis.call('HDEL', K_LIVE, key)
  local probe = stamp ~= '0'
  if probe then probes = probes - 1 end
  dirty = true
  return true, probe
end

local function record(id, ok)
  local live, probe = take(id)
  if not live then return end
  if probe then
    if ok then move('closed', 'probe succeeded') else move('open', 'probe failed') end
    return
  end
  local seq = redis.call('HINCRBY', K_BRK, 'oseq', 1)
  redis.call('ZADD', K_OUT, fmt(t), seq .. ':' .. (ok and '1' or '0'))
  if not ok then
    failures = failures + 1
    local calls = redis.call('ZCARD', K_OUT)
    if failures >= THRESHOLD and (RATE == nil or failures / calls >= RATE) then
      local counted
      if RATE == nil then
        counted = failures .. ' failures'
      else
        counted = failures .. ' of ' .. calls .. ' calls failed'
      end
      move('open', counted .. ' in ' .. string.format('%g', B_WINDOW) .. 's')
    end
  end
end

local function paused_until()
  return num(redis.call('GET', K_PAUSE), -math.huge)
end

-- What the provider's headers said is left holds admissions back (ARGV[12]: seconds from
-- now, "" for no hold), as in the memory route.
local function held_back()
  local wait = tonumber(ARGV[12] or '')
  if wait == nil then return nil end
  return t + wait
end

-- ops ---------------------------------------------------------------------------------

-- Giving back and pausing take no time of their own, as in the memory breaker: only the
-- decisions and outcomes move it along (and announce a cooldown's end).
if op ~= 'release' and op ~= 'cancel' and op ~= 'withdraw' and op ~= 'pause' then advance() end
local result = {}
if op == 'look' then
  prune()
  local wait = admission_time(tonumber(ARGV[11]), held_back()) - t
  result = {fmt(ready_at()), fmt(paused_until()), fmt(wait)}
elseif op == 'admit' then
  prune()
  local tokens = tonumber(ARGV[11])
  local at = admission_time(tokens, held_back())
  if at > t then
    result = {reserve(tokens, at), fmt(at)}
  elseif paused_until() > t then
    result = {}
  else
    local permit = acquire()
    if permit == nil then
      result = {}
    else
      result = {reserve(tokens, at), fmt(at), permit[1], permit[2], permit[3], permit[4]}
    end
  end
elseif op == 'acquire' then
  if paused_until() <= t then
    result = acquire() or {}
  end
elseif op == 'ready' then
  result = {fmt(ready_at())}
elseif op == 'succeed' then
  record(ARGV[12], true)
  if ARGV[13] ~= '' then settle(ARGV[11], tonumber(ARGV[13])) end
elseif op == 'fail' then
  record(ARGV[12], false)
elseif op == 'release' then
  take(ARGV[12])
elseif op == 'cancel' then
  cancel(ARGV[11])
elseif op == 'withdraw' then
  cancel(ARGV[11])
  take(ARGV[12])
elseif op == 'pause' then
  local until_ = t + tonumber(ARGV[11])
  if until_ > paused_until() then
    redis.call('SET', K_PAUSE, fmt(until_), 'PX', math.ceil((until_ - t) * 1000) + 1000)
  end
elseif op == 'snapshot' then
  prune()
  local admitted, used, first_at = 0, 0, nil
  local from = 0
  while true do
    local batch = entries(from, 64)
    local stop = false
    for _, e in ipairs(batch) do
      if e.at > t then stop = true break end
      if first_at == nil then first_at = e.at end
      admitted = admitted + 1
      used = used + e.tokens
    end
    if stop or #batch < 64 then break end
    from = from + 64
  end
  result = {
    admitted, used, redis.call('ZCARD', K_LOG), num(redis.call('HGET', K_META, 'total'), 0),
    first_at and fmt(first_at) or '', failures, redis.call('ZCARD', K_OUT),
    opened_at and fmt(opened_at) or '', probes, fmt(paused_until()),
  }
elseif op == 'reset' then
  move('closed', 'reset')
elseif op == 'seed' then
  -- What a process admitted within the window, sent once Redis answers after an outage
  -- (triples from ARGV[11]: id here or "" if admitted from memory, seconds from now,
  -- tokens). Those admitted here before this log began (a Redis restarted empty) are
  -- logged again; ids cannot tell, as they restart with the log.
  prune()
  local born = num(redis.call('HGET', K_META, 'born'), math.huge)
  for i = 11, #ARGV - 2, 3 do
    local at = t + tonumber(ARGV[i + 1])
    if at + WINDOW > t and (ARGV[i] == '' or at < born) then
      reserve(tonumber(ARGV[i + 2]), at)
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
local ttl = math.ceil((ahead + 2 * math.max(WINDOW, B_WINDOW, COOLDOWN)) * 1000) + 1000
for i = 1, 6 do redis.call('PEXPIRE', KEYS[i], ttl) end
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
