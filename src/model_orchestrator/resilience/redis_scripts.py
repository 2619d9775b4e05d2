"""The Lua scripts the Redis state store runs: the rate windows (``request_log`` / ``sliding_window`` run on
the server, so a window is checked and counted in one atomic step) and the compare-and-set behind
``RedisStateStore.update``.

The scripts keep the window layout exactly as ``state_codec`` writes it. Lua's cjson writes numbers with
14 significant digits (wall times to 0.1 ms): send times are rounded up, so a slot may leave its window up
to 0.1 ms later than exact, never sooner.
"""

# Mirrors request_log.request_ready_at / take_request and sliding_window.pruned / ready_at / take, for one
# or more windows at once: every window counts its units, or none does.
# KEYS[i]: the i-th window; ARGV[1]: now; then per window: kind ("requests" | "units"), limit ("" = none),
# amount, the number n of held-back corrections of a units window (slot index, delta pairs, as ADJUST's),
# then those 2n values (applied and written first, whatever the outcome).
# Returns 3 values per window: "1", slot or "", previous last_sent or "" when it fits; "0", ready_at or ""
# (never fits), "" when it does not. Only when every window fits is anything counted.
TAKE = """
local WINDOW, SLOT = 60, 1
local now = tonumber(ARGV[1])
-- cjson keeps 14 significant digits (0.1 ms for wall times): round the send time up, never down, so a
-- slot leaves the window no sooner than it would in Python.
local stamp = math.ceil(now * 10000) / 10000

local function adjust(key, value, log, at, n)
  for i = at, at + 2 * n - 1, 2 do
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
  if n > 0 and value then redis.call('SET', key, cjson.encode(value)) end
end

-- The window's new value if the units fit, with the reply's three fields; else nil and the fields.
local function plan(key, kind, limit, amount, at, n)
  local raw = redis.call('GET', key)
  local value = raw and cjson.decode(raw) or nil
  local req, log
  if kind == 'requests' then
    req = value or {__t='RequestLog', last_sent=cjson.null, not_before=0, pace_interval=0, pace_until=0,
                    window={__t='WindowLog', slots={}, total=0}}
    log = req.window
  else
    log = value or {__t='WindowLog', slots={}, total=0}
  end
  adjust(key, value, log, at, n)
  local slots, total, alive = {}, log.total, false
  for _, s in ipairs(log.slots) do
    if alive or s.last + WINDOW > now then alive = true; slots[#slots + 1] = s
    else total = total - s.amount end
  end
  local ready = now
  if req then
    if req.not_before > ready then ready = req.not_before end
    if req.last_sent ~= cjson.null and now < req.pace_until then
      ready = math.max(ready, req.last_sent + req.pace_interval)
    end
  end
  if limit then
    if amount > limit then return nil, {'0', '', ''} end
    local used = total
    if used + amount > limit then
      for _, s in ipairs(slots) do
        used = used - s.amount
        if used + amount <= limit then ready = math.max(ready, s.last + WINDOW); break end
      end
    end
  end
  if ready > now then return nil, {'0', string.format('%.17g', ready), ''} end
  local slot = ''
  if limit then
    local index = math.floor(now / SLOT)
    local last = #slots
    if last > 0 and slots[last].index == index then
      slots[last] = {__t='Slot', index=index, last=math.max(slots[last].last, stamp),
                     amount=slots[last].amount + amount}
    else
      slots[last + 1] = {__t='Slot', index=index, last=stamp, amount=amount}
    end
    total = total + amount
    slot = string.format('%d', index)
  end
  log.slots, log.total = slots, total
  if not req then return log, {'1', slot, ''} end
  local previous = req.last_sent ~= cjson.null and string.format('%.17g', req.last_sent) or ''
  req.last_sent, req.window = stamp, log
  return req, {'1', slot, previous}
end

local values, reply, fits, at = {}, {}, true, 2
for i, key in ipairs(KEYS) do
  local n = tonumber(ARGV[at + 3])
  local value, fields = plan(key, ARGV[at], tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]), at + 4, n)
  values[i], fits = value, fits and value ~= nil
  for _, field in ipairs(fields) do reply[#reply + 1] = field end
  at = at + 4 + 2 * n
end
if fits then
  for i, key in ipairs(KEYS) do redis.call('SET', key, cjson.encode(values[i])) end
end
return reply
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
