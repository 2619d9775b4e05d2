"""The Lua scripts the Redis state store runs: the rate windows (``request_log`` / ``sliding_window`` run on
the server, so a window is checked and counted in one atomic step) and the compare-and-set behind
``RedisStateStore.update``.

The scripts keep the window layout exactly as ``state_codec`` writes it. Lua's cjson writes numbers with
14 significant digits (wall times to 0.1 ms): send times are rounded up, so a slot may leave its window up
to 0.1 ms later than exact, never sooner.
"""

# Mirrors request_log.request_ready_at / take_request and sliding_window.pruned / ready_at / take.
# KEYS[1]: the key; ARGV: kind ("requests" | "units"), now, limit ("" = none), amount, then for a units
# window any corrections held back by the store (slot index, delta pairs: ADJUST's), applied first.
# Returns {"1", slot or "", previous last_sent or ""} or {"0", ready_at or "" (never fits)}.
TAKE = """
local WINDOW, SLOT = 60, 1
local kind, now, limit, amount = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local raw = redis.call('GET', KEYS[1])
local value = raw and cjson.decode(raw) or nil
local req, log
if kind == 'requests' then
  req = value or {__t='RequestLog', last_sent=cjson.null, not_before=0, pace_interval=0, pace_until=0,
                  window={__t='WindowLog', slots={}, total=0}}
  log = req.window
else
  log = value or {__t='WindowLog', slots={}, total=0}
end
local adjusted = #ARGV > 4
for i = 5, #ARGV, 2 do
  local index, delta = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  for j = #log.slots, 1, -1 do
    local s = log.slots[j]
    if s.index == index then
      local amount = math.max(0, s.amount + delta)
      log.total = log.total - s.amount + amount
      s.amount = amount
      break
    end
  end
end
local function refuse(ready)
  if adjusted and value then redis.call('SET', KEYS[1], cjson.encode(value)) end
  return {'0', ready}
end
local slots, total, alive = {}, log.total, false
for _, s in ipairs(log.slots) do
  if alive or s.last + WINDOW > now then alive = true; slots[#slots + 1] = s else total = total - s.amount end
end
local ready = now
if req then
  if req.not_before > ready then ready = req.not_before end
  if req.last_sent ~= cjson.null and now < req.pace_until then
    ready = math.max(ready, req.last_sent + req.pace_interval)
  end
end
if limit then
  if amount > limit then return refuse('') end
  local used = total
  if used + amount > limit then
    for _, s in ipairs(slots) do
      used = used - s.amount
      if used + amount <= limit then ready = math.max(ready, s.last + WINDOW); break end
    end
  end
end
if ready > now then return refuse(string.format('%.17g', ready)) end
-- cjson keeps 14 significant digits (0.1 ms for wall times): round the send time up, never down, so a
-- slot leaves the window no sooner than it would in Python.
local stamp = math.ceil(now * 10000) / 10000
local slot = ''
if limit then
  local index = math.floor(now / SLOT)
  local n = #slots
  if n > 0 and slots[n].index == index then
    slots[n].last = math.max(slots[n].last, stamp)
    slots[n].amount = slots[n].amount + amount
  else
    slots[n + 1] = {__t='Slot', index=index, last=stamp, amount=amount}
  end
  total = total + amount
  slot = string.format('%d', index)
end
log.slots, log.total = slots, total
local previous = ''
if req then
  if req.last_sent ~= cjson.null then previous = string.format('%.17g', req.last_sent) end
  req.last_sent, req.window, value = stamp, log, req
else
  value = log
end
redis.call('SET', KEYS[1], cjson.encode(value))
return {'1', slot, previous}
"""

# Mirrors sliding_window.adjust. KEYS[1]: a units window; ARGV: slot index, delta.
ADJUST = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local log = cjson.decode(raw)
local index, delta = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = #log.slots, 1, -1 do
  local s = log.slots[i]
  if s.index == index then
    local amount = math.max(0, s.amount + delta)
    log.total = log.total - s.amount + amount
    s.amount = amount
    redis.call('SET', KEYS[1], cjson.encode(log))
    return 1
  end
end
return 0
"""

# Compare-and-set, the write half of ``update``. KEYS[1]: the key; ARGV: the value expected ("" for none:
# encoded state is never empty), the new value. Returns {1, ""} when written, {0, current value} if not.
SWAP = """
local current = redis.call('GET', KEYS[1]) or ''
if current ~= ARGV[1] then return {0, current} end
redis.call('SET', KEYS[1], ARGV[2])
return {1, ''}
"""
