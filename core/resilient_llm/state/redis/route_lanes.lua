-- Part of the route script (route.lua first, then the files RedisState lists after it):
-- the lanes' records. Concatenated, the parts are one script, run atomically.

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
    if lane.slice == 0 and lane.s + MOST_EXTRA > keep then keep = lane.s + MOST_EXTRA end
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
