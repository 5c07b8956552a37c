-- Part of the route script (after route_lanes.lua): the lanes' decisions.

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
