"""The Lua scripts behind ``SharedBudgetKeeper``: reserve, settle (or release) and seed a shared budget tally.

Each counter is two keys: a hash (``spent``, ``held``: the sum of live holds, ``r:ID``: one hold's amount,
``seeded:LEDGER``: that ledger has added its own spend) and a sorted set of hold ids scored by expiry. A
script runs atomically on the server, so every process sees one order of reservations. Amounts travel as
strings (Lua would truncate a returned number to an integer).
"""

_COMMON = """
local function fmt(x) return string.format('%.17g', x) end

-- Drop holds whose expiry passed (their process died or never settled): they no longer count.
local function sweep(h, z, now)
  local gone = redis.call('ZRANGEBYSCORE', z, '-inf', '(' .. now)
  if #gone == 0 then return end
  for _, id in ipairs(gone) do
    local amount = redis.call('HGET', h, 'r:' .. id)
    if amount then
      redis.call('HINCRBYFLOAT', h, 'held', -tonumber(amount))
      redis.call('HDEL', h, 'r:' .. id)
    end
  end
  redis.call('ZREMRANGEBYSCORE', z, '-inf', '(' .. now)
  if redis.call('ZCARD', z) == 0 then redis.call('HSET', h, 'held', '0') end
end
"""

# KEYS: per limit, its hash and its holds. ARGV: now, the hold's expiry, reservation id, ledger id, then
# per limit: amount, limit, hard ("1"/"0"), when the keys may expire (unix seconds).
# Returns {"unseeded", i...} (limits this ledger has not added its spend to: nothing is held), or
# {"exceeded", i, spent, held} (limit i has no room: nothing is held), or {"ok", spent1, held1, ...}
# (held includes this reservation).
RESERVE = (
    _COMMON
    + """
local now, expires, id, mark = tonumber(ARGV[1]), ARGV[2], ARGV[3], 'seeded:' .. ARGV[4]
local n = #KEYS / 2
local unseeded = {'unseeded'}
for i = 1, n do
  if redis.call('HEXISTS', KEYS[2 * i - 1], mark) == 0 then unseeded[#unseeded + 1] = tostring(i) end
end
if #unseeded > 1 then return unseeded end
local spent, held = {}, {}
for i = 1, n do
  local h, z, at = KEYS[2 * i - 1], KEYS[2 * i], 5 + 4 * (i - 1)
  sweep(h, z, now)
  local amount, limit = tonumber(ARGV[at]), tonumber(ARGV[at + 1])
  spent[i] = tonumber(redis.call('HGET', h, 'spent') or '0')
  held[i] = tonumber(redis.call('HGET', h, 'held') or '0')
  if ARGV[at + 2] == '1' and spent[i] + held[i] + amount > limit + 1e-12 then
    return {'exceeded', tostring(i), fmt(spent[i]), fmt(held[i])}
  end
end
local reply = {'ok'}
for i = 1, n do
  local h, z, at = KEYS[2 * i - 1], KEYS[2 * i], 5 + 4 * (i - 1)
  local total = redis.call('HINCRBYFLOAT', h, 'held', ARGV[at])
  redis.call('HSET', h, 'r:' .. id, ARGV[at])
  redis.call('ZADD', z, expires, id)
  redis.call('EXPIREAT', h, ARGV[at + 3])
  redis.call('EXPIREAT', z, ARGV[at + 3])
  reply[#reply + 1] = fmt(spent[i])
  reply[#reply + 1] = total
end
return reply
"""
)

# KEYS: as RESERVE's. ARGV: now, reservation id, ledger id, then per limit: the amount to charge ("0" to
# release), when the keys may expire. A charge lands only where this ledger's spend is already in the
# tally: after a Redis restart lost the counter, the ledger's own rows (added when it seeds) carry it.
SETTLE = (
    _COMMON
    + """
local now, id, mark = tonumber(ARGV[1]), ARGV[2], 'seeded:' .. ARGV[3]
for i = 1, #KEYS / 2 do
  local h, z, at = KEYS[2 * i - 1], KEYS[2 * i], 4 + 2 * (i - 1)
  sweep(h, z, now)
  local amount = redis.call('HGET', h, 'r:' .. id)
  if amount then
    redis.call('HDEL', h, 'r:' .. id)
    redis.call('ZREM', z, id)
    if redis.call('ZCARD', z) == 0 then redis.call('HSET', h, 'held', '0')
    else redis.call('HINCRBYFLOAT', h, 'held', -tonumber(amount)) end
  end
  if tonumber(ARGV[at]) > 0 and redis.call('HEXISTS', h, mark) == 1 then
    redis.call('HINCRBYFLOAT', h, 'spent', ARGV[at])
    redis.call('EXPIREAT', h, ARGV[at + 1])
  end
end
return 1
"""
)

# KEYS: one limit's hash and holds. ARGV: ledger id, what that ledger recorded for the period, when the
# keys may expire. Adds the amount once per ledger (the "seeded:" mark makes a second call a no-op).
SEED = """
if redis.call('HSETNX', KEYS[1], 'seeded:' .. ARGV[1], '1') == 1 then
  redis.call('HINCRBYFLOAT', KEYS[1], 'spent', ARGV[2])
  redis.call('EXPIREAT', KEYS[1], ARGV[3])
end
return 1
"""
