-- One route's shared state: its sliding-window limiter log, its circuit breaker and its
-- retry-after pause. Every change happens here, atomically, in one call per decision.
-- This file is the script's first part (the clock and the one-window limiter); RedisState
-- joins it with route_lanes.lua, route_lanes_decide.lua, route_breaker.lua and
-- route_ops.lua, in that order, into the one script each call runs.
-- The rules mirror resilient_llm/limiter.py and resilient_llm/breaker.py step by step, so
-- the memory and Redis backends admit the same requests at the same times (the test suite
-- runs the same sequences against both and compares).
--
-- KEYS: 1 log (zset id -> admission time), 2 tokens (hash id -> tokens, or "r,t,i,o|..."
--       on the lanes' path, see lanes; and id:settled -> 1 once settled), 3 meta (hash:
--       horizon, total, seq, born, adopted (windows a 429 named), and offset and last for
--       server time), 4 breaker (hash, with the epoch of its ids),
--       5 outcomes (zset), 6 live (hash permit key -> a probe's grant time, else 0),
--       7 pause (string: end time), 8 peers (zset route object id -> its last decision),
--       9 slices (hash "seconds|start" -> "r,t,i,o": what one window alone counts, a slice
--       of a long window or what a 429 said was used), 10 pending (zset id -> admission
--       time: entries the log no longer reads, kept for a late settle of their slices)
-- ARGV: 1 op, 2 time (a number: the caller's clock; "@shift:lo:hi" or "": the Redis
--       server's clock, see server_time), 3 the limiter: "window" or
--       "window~in_flight~windows" (see lanes), 4 rpm, 5 tpm ("" = none),
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
local W_ARG, E_ARG, SPEC = string.match(ARGV[3], '^([^~]+)~?([^~]*)~?(.*)$')
local WINDOW, RPM, TPM = tonumber(W_ARG), tonumber(ARGV[4]), tonumber(ARGV[5])
-- A request counts from its admission until its window and the time it may take to reach
-- the provider have passed (the in-flight time the caller learnt, as in limiter.py; ""
-- when it counts none).
local COUNTING = E_ARG ~= ''
local E_NOW, E_MOST = string.match(E_ARG, '^([^/]*)/?(.*)$')
local EXTRA = tonumber(E_NOW) or 0
local SPAN = WINDOW + EXTRA
-- An entry is kept while the in-flight time may still grow to count it ("in_flight/most").
local MOST_EXTRA = tonumber(E_MOST) or EXTRA
local HOLD = WINDOW + MOST_EXTRA
local K_SLICE, K_PENDING = KEYS[9], KEYS[10]
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
      if e.at + HOLD > t then break end
      stale = stale + 1
      dropped = dropped + e.tokens
      redis.call('ZREM', K_LOG, e.id)
      redis.call('HDEL', K_TOK, e.id, e.id .. ':settled')
      if horizon == nil or e.at + HOLD > horizon then horizon = e.at + HOLD end
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
    if back + SPAN > at then at = back + SPAN end
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
      if e.at + SPAN > at then break end
      step(e)
    end
    while used + tokens > TPM do
      local e = current()
      if e == nil then break end
      at = e.at + SPAN
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
