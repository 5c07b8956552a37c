-- One route's shared state: its sliding-window limiter log, its circuit breaker and its
-- retry-after pause. Every change happens here, atomically, in one call per decision.
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
local EXTRA = tonumber(E_ARG) or 0
local SPAN = WINDOW + EXTRA
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
      if e.at + SPAN > t then break end
      stale = stale + 1
      dropped = dropped + e.tokens
      redis.call('ZREM', K_LOG, e.id)
      redis.call('HDEL', K_TOK, e.id, e.id .. ':settled')
      if horizon == nil or e.at + SPAN > horizon then horizon = e.at + SPAN end
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

-- lanes: every window of a limit ----------------------------------------------------
-- A limit of several windows, of input or output tokens, or of a window longer than
-- EXACT_UP_TO (and any route a provider taught a window of, kept in meta 'adopted') is
-- enforced as in limiter.py: each window is a lane; a request is admitted at the earliest
-- time it fits every lane in every dimension (requests, tokens, input, output), or not at
-- all. The log keeps one entry per admission ("r,t,i,o|seconds of the sliced lanes it was
-- charged to"), read by lanes of up to EXACT_UP_TO; a longer lane counts in slices (a
-- SLICES-th of it, every admission of a slice counted from the slice's end), so a day
-- costs at most SLICES fields, not an entry per request. The log keeps an entry while a
-- lane reads it, and meta 'lsum' sums the log, so a decision reads only the oldest entries
-- (those that left a lane, and those a request waits for), however full the window; an
-- entry charged to slices then waits KEEP seconds in the pending set, so a late settle or
-- cancel still finds its slices.
-- SPEC: "seconds:r:t:i:o" per window, comma-separated ("" for none).

local EXACT_UP_TO, SLICES, KEEP = 3600, 240, 900
local ADOPTED = redis.call('HGET', K_META, 'adopted')
local MULTI = SPEC ~= '' or ADOPTED ~= false

-- "t" or "t,i,o" (a request's tokens: a total that says no more is charged in full to
-- every token dimension), as {1, t, i, o}.
local function need_of(v)
  local a, b2, c = string.match(v, '^([^,]*),?([^,]*),?([^,]*)$')
  local total = tonumber(a) or 0
  if total < 0 then total = 0 end
  return {1, total, tonumber(b2) or total, tonumber(c) or total}
end

local function total_of(v)
  return need_of(v)[2]
end

local function parse_windows(spec, into)
  for part in string.gmatch(spec, '[^,]+') do
    local s, r, tk, i, o = string.match(part, '^([^:]+):([^:]*):([^:]*):([^:]*):([^:]*)$')
    s = tonumber(s)
    local lim = {tonumber(r), tonumber(tk), tonumber(i), tonumber(o)}
    local found = nil
    for _, lane in ipairs(into) do
      if lane.s == s then found = lane end
    end
    if into.merge and found then
      -- A window the provider named over a span already limited: the tighter figure.
      for d = 1, 4 do
        local a, b2 = found.lim[d], lim[d]
        if a == nil or (b2 ~= nil and b2 < a) then found.lim[d] = b2 end
      end
    else
      into[#into + 1] = {s = s, lim = lim}
    end
  end
end

local function spec_of(lanes)
  local parts = {}
  for _, lane in ipairs(lanes) do
    local f = {fmt(lane.s)}
    for d = 1, 4 do f[d + 1] = lane.lim[d] and tostring(lane.lim[d]) or '' end
    parts[#parts + 1] = table.concat(f, ':')
  end
  return table.concat(parts, ',')
end

local LANES = nil
local function lanes()
  if LANES ~= nil then return LANES end
  local out = {}
  if SPEC ~= '' then
    parse_windows(SPEC, out)
  else
    out[1] = {s = WINDOW, lim = {RPM, TPM, nil, nil}}
  end
  if ADOPTED then
    out.merge = true
    parse_windows(ADOPTED, out)
    out.merge = nil
  end
  for _, lane in ipairs(out) do
    lane.key = fmt(lane.s)
    lane.span = lane.s + EXTRA
    lane.slice = lane.s > EXACT_UP_TO and lane.s / SLICES or 0
  end
  LANES = out
  return out
end

local function longest()
  local most = WINDOW
  if MULTI then
    for _, lane in ipairs(lanes()) do
      if lane.s > most then most = lane.s end
    end
  end
  return most
end

-- A log entry's value: {r, t, i, o} and the lanes whose slices it was charged to. An entry
-- written by the one-window path holds its tokens alone.
local function decode(v)
  local r0, t0, i0, o0, rest = string.match(v, '^(%d+),(%d+),(%d+),(%d+)|?(.*)$')
  if r0 then return {tonumber(r0), tonumber(t0), tonumber(i0), tonumber(o0)}, rest end
  local amounts, sliced = string.match(v, '^([^|]*)|?(.*)$')
  local r, tk, i, o = string.match(amounts, '^([^,]*),?([^,]*),?([^,]*),?([^,]*)$')
  local c
  if tk == '' then
    local n = tonumber(r) or 0
    c = {1, n, n, n}
  else
    c = {tonumber(r) or 0, tonumber(tk) or 0, tonumber(i) or 0, tonumber(o) or 0}
  end
  return c, sliced
end

local function encode(c)
  return c[1] .. ',' .. c[2] .. ',' .. c[3] .. ',' .. c[4]
end

-- How long the log keeps an entry: while a lane reads it. One charged to slices then
-- waits in the pending set (KEEP seconds from its admission) for a late settle or cancel.
local function retained()
  local keep = 0
  for _, lane in ipairs(lanes()) do
    if lane.slice == 0 and lane.span > keep then keep = lane.span end
  end
  return keep
end

-- The running sum of every entry in the log (r, t, i, o), so a lane reads only the few
-- entries at its oldest end: those that left it, and those a request waits for.
local LSUM = nil
local function lsum()
  if LSUM ~= nil then return LSUM end
  local kept = redis.call('HGET', K_META, 'lsum')
  if kept then
    LSUM = (decode(kept))
    return LSUM
  end
  -- Made once, when the route first takes the lanes' path.
  LSUM = {0, 0, 0, 0}
  local raw = redis.call('ZRANGE', K_LOG, 0, -1)
  if #raw > 0 then
    local vals = redis.call('HMGET', K_TOK, unpack(raw))
    for k = 1, #raw do
      local c = decode(vals[k] or '0')
      for d = 1, 4 do LSUM[d] = LSUM[d] + c[d] end
    end
  end
  return LSUM
end

local function lsum_add(c, sign)
  local sum = lsum()
  for d = 1, 4 do sum[d] = sum[d] + sign * c[d] end
  redis.call('HSET', K_META, 'lsum', encode(sum))
end

-- The log's oldest entries, read in batches as far as a lane needs them.
local FRONT = nil
local function front(k)
  if FRONT == nil then FRONT = {n = 0, done = false} end
  while FRONT.n < k and not FRONT.done do
    local raw = redis.call('ZRANGE', K_LOG, FRONT.n, FRONT.n + 63, 'WITHSCORES')
    if #raw < 128 then FRONT.done = true end
    if #raw > 0 then
      local ids = {}
      for i = 1, #raw, 2 do ids[#ids + 1] = raw[i] end
      local vals = redis.call('HMGET', K_TOK, unpack(ids))
      for i = 1, #ids do
        FRONT.n = FRONT.n + 1
        FRONT[FRONT.n] = {start = tonumber(raw[2 * i]), c = (decode(vals[i] or '0'))}
      end
    end
  end
  return FRONT[k]
end

local function slice_start(at, slice)
  return math.ceil(at / slice) * slice
end

-- Add sign * c to one lane's entry at start (made if missing, dropped when empty).
local function add_to(key, start, c, sign)
  local field = key .. '|' .. fmt(start)
  local old = redis.call('HGET', K_SLICE, field)
  local have = old and decode(old) or {0, 0, 0, 0}
  local empty = true
  for d = 1, 4 do
    have[d] = have[d] + sign * c[d]
    if have[d] < 0 then have[d] = 0 end
    if have[d] ~= 0 then empty = false end
  end
  if empty and old then
    redis.call('HDEL', K_SLICE, field)
  elseif not empty then
    redis.call('HSET', K_SLICE, field, encode(have))
  end
end

local function lane_horizon(horizon, stop)
  if horizon == nil or stop > horizon then return stop end
  return horizon
end

local function prune_lanes()
  local horizon = num(redis.call('HGET', K_META, 'horizon'), nil)
  local keep = retained()
  local old = redis.call('ZRANGEBYSCORE', K_LOG, '-inf', fmt(t - keep), 'WITHSCORES')
  if #old > 0 then
    local ids = {}
    for i = 1, #old, 2 do ids[#ids + 1] = old[i] end
    local vals = redis.call('HMGET', K_TOK, unpack(ids))
    local gone = {0, 0, 0, 0}
    for k, id in ipairs(ids) do
      local at = tonumber(old[2 * k])
      if at + keep <= t then
        local c, sliced = decode(vals[k] or '0')
        for d = 1, 4 do gone[d] = gone[d] + c[d] end
        redis.call('ZREM', K_LOG, id)
        if sliced ~= '' then
          redis.call('ZADD', K_PENDING, fmt(at), id)
        else
          redis.call('HDEL', K_TOK, id, id .. ':settled')
        end
        horizon = lane_horizon(horizon, at + keep)
      end
    end
    lsum_add(gone, -1)
    FRONT = nil
  end
  local lapsed = redis.call('ZRANGEBYSCORE', K_PENDING, '-inf', fmt(t - KEEP))
  for _, id in ipairs(lapsed) do
    redis.call('HDEL', K_TOK, id, id .. ':settled')
    redis.call('ZREM', K_PENDING, id)
  end
  local all = redis.call('HGETALL', K_SLICE)
  for i = 1, #all, 2 do
    local s, start = string.match(all[i], '^([^|]+)|(.+)$')
    local stop = tonumber(start) + (tonumber(s) + EXTRA)
    if stop <= t then
      redis.call('HDEL', K_SLICE, all[i])
      horizon = lane_horizon(horizon, stop)
    end
  end
  if horizon ~= nil then redis.call('HSET', K_META, 'horizon', fmt(horizon)) end
end

-- Every lane's entries ({start, c}) in start order: the log's for lanes of up to
-- EXACT_UP_TO, and each lane's own.
local function load_lanes()
  local ls = lanes()
  local reach = 0
  for _, lane in ipairs(ls) do
    if lane.slice == 0 and lane.span > reach then reach = lane.span end
  end
  local records = {}
  if reach > 0 then
    -- A second more than needed: the lanes compare ``start + span`` themselves.
    local raw = redis.call('ZRANGEBYSCORE', K_LOG, '(' .. fmt(t - reach - 1), '+inf', 'WITHSCORES')
    if #raw > 0 then
      local ids = {}
      for i = 1, #raw, 2 do ids[#ids + 1] = raw[i] end
      local vals = redis.call('HMGET', K_TOK, unpack(ids))
      for k = 1, #ids do
        local c = decode(vals[k] or '0')
        records[k] = {start = tonumber(raw[2 * k]), c = c}
      end
    end
  end
  local own = {}
  if MULTI then
    local all = redis.call('HGETALL', K_SLICE)
    for i = 1, #all, 2 do
      local s, start = string.match(all[i], '^([^|]+)|(.+)$')
      local list = own[s]
      if list == nil then
        list = {}
        own[s] = list
      end
      list[#list + 1] = {start = tonumber(start), c = (decode(all[i + 1]))}
    end
  end
  local lists = {}
  for k, lane in ipairs(ls) do
    local extra = own[lane.key]
    if extra == nil then
      -- Read only: lanes without entries of their own share the log's.
      lists[k] = lane.slice == 0 and records or {}
    else
      local list = {}
      if lane.slice == 0 then
        for j = 1, #records do list[j] = records[j] end
      end
      for _, e in ipairs(extra) do list[#list + 1] = e end
      table.sort(list, function(a, b2) return a.start < b2.start end)
      lists[k] = list
    end
  end
  return lists
end

-- The earliest time from ``at`` at which ``need`` fits every limit of one lane.
local function lane_earliest(lane, list, at, need)
  local span = lane.span
  local first = 1
  while first <= #list and list[first].start + span <= at do first = first + 1 end
  -- One pass sums every dimension.
  local sum = {0, 0, 0, 0}
  for k = first, #list do
    local c = list[k].c
    sum[1], sum[2], sum[3], sum[4] = sum[1] + c[1], sum[2] + c[2], sum[3] + c[3], sum[4] + c[4]
  end
  for d = 1, 4 do
    local limit = lane.lim[d]
    if limit ~= nil then
      -- A request bigger than the limit waits until it has the window to itself.
      if need[d] > limit then limit = need[d] end
      local used = sum[d]
      local f = first
      while used + need[d] > limit do
        local e = list[f]
        if e == nil then break end
        if e.start + span > at then at = e.start + span end
        used = used - e.c[d]
        f = f + 1
      end
    end
  end
  return at
end

-- Each lane's own entries (slices, and what 429s said was used), by lane, in start order.
local function own_entries()
  local own = {}
  local all = redis.call('HGETALL', K_SLICE)
  for i = 1, #all, 2 do
    local s2, start = string.match(all[i], '^([^|]+)|(.+)$')
    local list = own[s2]
    if list == nil then
      list = {}
      own[s2] = list
    end
    list[#list + 1] = {start = tonumber(start), c = (decode(all[i + 1]))}
  end
  for _, list in pairs(own) do
    table.sort(list, function(a, b2) return a.start < b2.start end)
  end
  return own
end

-- lane_earliest for a lane that reads the log: what it counts is the log's running sum and
-- its own entries, less the oldest entries that left it by ``at``; only those, and the ones
-- a request waits for, are read. Entries are taken oldest first from the log and the
-- lane's own list together, as one list would be.
local function exact_earliest(lane, mine, at, need)
  local span = lane.span
  local sum = lsum()
  local used = {sum[1], sum[2], sum[3], sum[4]}
  for _, e in ipairs(mine) do
    for d = 1, 4 do used[d] = used[d] + e.c[d] end
  end
  local function next_of(i, j)
    local a, b2 = front(i), mine[j]
    if a ~= nil and (b2 == nil or a.start <= b2.start) then return a, i + 1, j end
    if b2 ~= nil then return b2, i, j + 1 end
    return nil, i, j
  end
  local i, j = 1, 1
  while true do
    local e, ni, nj = next_of(i, j)
    if e == nil or e.start + span > at then break end
    for d = 1, 4 do used[d] = used[d] - e.c[d] end
    i, j = ni, nj
  end
  for d = 1, 4 do
    local limit = lane.lim[d]
    if limit ~= nil then
      if need[d] > limit then limit = need[d] end
      local u, fi, fj = used[d], i, j
      while u + need[d] > limit do
        local e, ni, nj = next_of(fi, fj)
        if e == nil then break end
        if e.start + span > at then at = e.start + span end
        u = u - e.c[d]
        fi, fj = ni, nj
      end
    end
  end
  return at
end

local function lanes_admission_time(need, not_before)
  local at = t
  if not_before ~= nil and not_before > at then at = not_before end
  local horizon = num(redis.call('HGET', K_META, 'horizon'), nil)
  if horizon ~= nil and horizon > at then at = horizon end
  local last = redis.call('ZRANGE', K_LOG, -1, -1, 'WITHSCORES')
  if #last > 0 and tonumber(last[2]) > at then at = tonumber(last[2]) end
  local ls, own = lanes(), own_entries()
  -- All lanes at once: moving ``at`` for one may need another to look again.
  while true do
    local moved = at
    for _, lane in ipairs(ls) do
      local mine = own[lane.key] or {}
      if lane.slice > 0 then
        moved = lane_earliest(lane, mine, moved, need)
      else
        moved = exact_earliest(lane, mine, moved, need)
      end
    end
    if moved == at then return at end
    at = moved
  end
end

local function lanes_reserve(need, at)
  local seq = redis.call('HINCRBY', K_META, 'seq', 1)
  local id = string.format('%016d', seq) .. ':' .. nonce
  local sliced = {}
  for _, lane in ipairs(lanes()) do
    if lane.slice > 0 then
      add_to(lane.key, slice_start(at, lane.slice), need, 1)
      sliced[#sliced + 1] = lane.key
    end
  end
  redis.call('ZADD', K_LOG, fmt(at), id)
  redis.call('HSET', K_TOK, id, encode(need) .. '|' .. table.concat(sliced, ','))
  lsum_add(need, 1)
  FRONT = nil
  return id
end

-- Where an entry is: its admission time, and whether the log still holds it (else it
-- waits in the pending set for its slices' sake).
local function located(id)
  local at = tonumber(redis.call('ZSCORE', K_LOG, id))
  if at ~= nil then return at, true end
  return tonumber(redis.call('ZSCORE', K_PENDING, id)), false
end

-- Give an entry's amounts back to (sign -1) or charge them to (+1) its slices.
local function to_slices(at, sliced, c, sign)
  for s in string.gmatch(sliced, '[^,]+') do
    add_to(s, slice_start(at, tonumber(s) / SLICES), c, sign)
  end
end

local function lanes_cancel(id)
  local v = redis.call('HGET', K_TOK, id)
  if v and redis.call('HEXISTS', K_TOK, id .. ':settled') == 0 then
    local at, in_log = located(id)
    local c, sliced = decode(v)
    if at ~= nil then to_slices(at, sliced, c, -1) end
    if in_log then
      lsum_add(c, -1)
      redis.call('ZREM', K_LOG, id)
      FRONT = nil
    else
      redis.call('ZREM', K_PENDING, id)
    end
    redis.call('HDEL', K_TOK, id)
  end
end

local function lanes_settle(id, usage)
  local v = redis.call('HGET', K_TOK, id)
  if v then
    local at, in_log = located(id)
    local c, sliced = decode(v)
    local new = need_of(usage)
    new[1] = c[1]
    if at ~= nil then
      to_slices(at, sliced, c, -1)
      to_slices(at, sliced, new, 1)
    end
    if in_log then
      lsum_add(c, -1)
      lsum_add(new, 1)
      FRONT = nil
    end
    redis.call('HSET', K_TOK, id, encode(new) .. '|' .. sliced, id .. ':settled', 1)
  end
end

-- Whether what is due by now passes a limit, counting the in-flight time learnt since the
-- later of them were queued (limiter.py's overdrawn): a queued request waking into that
-- gives its slot back and queues again.
local function overdrawn()
  if not COUNTING then return false end
  local ls, lists = lanes(), load_lanes()
  for k, lane in ipairs(ls) do
    local used, largest = {0, 0, 0, 0}, {0, 0, 0, 0}
    for _, e in ipairs(lists[k]) do
      if e.start <= t and t < e.start + lane.span then
        for d = 1, 4 do
          used[d] = used[d] + e.c[d]
          if e.c[d] > largest[d] then largest[d] = e.c[d] end
        end
      end
    end
    for d = 1, 4 do
      local limit = lane.lim[d]
      if limit ~= nil and used[d] > math.max(limit, largest[d]) then return true end
    end
  end
  return false
end

-- A 429 named the provider's quota of dimension d over s seconds, with its limit: enforce
-- that window from now on for every process, counted as full until a window from now but
-- for the one request ``retry`` (seconds, trusted) frees (limiter.py's exhausted).
local function exhausted(d, s, limit, retry)
  local adopted = {}
  if ADOPTED then parse_windows(ADOPTED, adopted) end
  adopted.merge = true
  local lim = {}
  for k = 1, 4 do lim[k] = '' end
  lim[d] = tostring(limit)
  parse_windows(fmt(s) .. ':' .. table.concat(lim, ':'), adopted)
  adopted.merge = nil
  ADOPTED = spec_of(adopted)
  MULTI, LANES = true, nil
  redis.call('HSET', K_META, 'adopted', ADOPTED)
  local key = fmt(s)
  local c = {0, 0, 0, 0}
  local freed = 0
  if retry ~= nil and limit > 1 then
    freed = 1
    c[d] = 1
    add_to(key, t + retry - s, c, 1)
  end
  c[d] = limit - freed
  add_to(key, t, c, 1)
end

-- The snapshot's figures from the lanes: the first lane's admitted and queued amounts,
-- then per lane its limits, what it counts now and when it takes another request.
local function lanes_snapshot()
  local ls, lists = lanes(), load_lanes()
  local first, span = lists[1], ls[1].span
  local ar, at_, er, et, refill = 0, 0, 0, 0, nil
  for _, e in ipairs(first) do
    if e.start + span > t then
      er, et = er + e.c[1], et + e.c[2]
      if e.start <= t then
        ar, at_ = ar + e.c[1], at_ + e.c[2]
        if refill == nil then refill = e.start + span end
      end
    end
  end
  local queued = redis.call('ZCOUNT', K_LOG, '(' .. fmt(t), '+inf')
  local out = {ar, at_, queued, er, et, refill and fmt(refill) or ''}
  local per = {}
  for k, lane in ipairs(ls) do
    local used = {0, 0, 0, 0}
    for _, e in ipairs(lists[k]) do
      if e.start + lane.span > t then
        for d = 1, 4 do used[d] = used[d] + e.c[d] end
      end
    end
    per[#per + 1] = spec_of({lane})
    per[#per + 1] = encode(used)
    per[#per + 1] = fmt(lane_earliest(lane, lists[k], t, {1, 0, 0, 0}))
  end
  return out, per
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
