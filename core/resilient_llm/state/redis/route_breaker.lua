-- Part of the route script (after route_lanes_decide.lua): the circuit breaker.

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
