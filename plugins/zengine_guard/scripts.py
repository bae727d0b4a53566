"""The guard's steps as Redis Lua scripts (:class:`zengine_guard.redis_state.RedisState` runs
them): each step is atomic on the server, so every worker and instance sees one lockout."""

_BACKOFF = """
local function backoff(count, threshold, base, max)
  if count < threshold then return 0 end
  local steps = math.min(count - threshold, 32)
  return math.min(base * 2 ^ steps, max)
end
"""

# Locks hold the time they end (ms); their TTL only collects them. KEYS: acct, ulock, lock,
# fam, addr, (optional) a key to read when the login may go ahead (the user's verified-login
# cache entry). ARGV: now_ms, addr, window_ms, hard_cap, familiar_ms, address_max, the
# password's tag ("": none), familiar_refresh_ms, threshold, pending_ttl_ms.
# A login whose password's tag is the entry's (the last password verified for this user)
# and whose success would change nothing the next check reads (no failures of this
# address, the address familiar since less than familiar_refresh_ms) is "settled": no
# in-flight mark, and no SUCCEED owed (RedisState.check_reading).
CHECK = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[3])
local function until_of(key)
  local v = redis.call('GET', key)
  if v then return tonumber(v) end
  return 0
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {'locked', 'hard_cap', tonumber(oldest[2]) + window - now}
end
local u = until_of(KEYS[2])
if u > now then return {'locked', 'user_address', u - now} end
local seen = redis.call('ZSCORE', KEYS[4], ARGV[2])
local familiar = seen and tonumber(seen) > now - tonumber(ARGV[5])
u = until_of(KEYS[3])
if u > now and not familiar then return {'locked', 'account', u - now} end
local pending_key = KEYS[3] .. ':pending'
redis.call('ZREMRANGEBYSCORE', pending_key, '-inf', now - tonumber(ARGV[10]))
local pending = redis.call('ZCARD', pending_key)
local room = math.max(1, tonumber(ARGV[9]) - redis.call('ZCARD', KEYS[1]))
if not familiar and pending >= room then
  return {'locked', 'account', tonumber(ARGV[10])}
end
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now - window)
if redis.call('ZCARD', KEYS[5]) >= tonumber(ARGV[6]) then
  local oldest = redis.call('ZRANGE', KEYS[5], 0, 0, 'WITHSCORES')
  return {'limited', 'address', tonumber(oldest[2]) + window - now}
end
local entry = false
if KEYS[6] then
  -- The login cache's entry for this user, read in the same round trip (see check_reading).
  entry = redis.call('GET', KEYS[6])
  if entry and ARGV[7] ~= '' and string.sub(entry, 33) == ARGV[7] then
    local settled = true
    local familiar_ms = tonumber(ARGV[5])
    if familiar_ms > 0 and not (seen and tonumber(seen) > now - tonumber(ARGV[8])) then
      settled = false  -- SUCCEED would make the address familiar, or refresh it
    end
    if settled and redis.call('ZCARD', KEYS[1]) > 0 then
      local prefix = ARGV[2] .. '|'
      for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
        if string.sub(member, 1, #prefix) == prefix then
          settled = false  -- SUCCEED would clear this address's failures
          break
        end
      end
    end
    if settled then return {'ok', '', 0, 1, entry, 1} end
  end
end
local seq = redis.call('INCR', pending_key .. ':seq')
redis.call('PEXPIRE', pending_key .. ':seq', tonumber(ARGV[10]))
redis.call('ZADD', pending_key, now, seq)
redis.call('PEXPIRE', pending_key, tonumber(ARGV[10]))
if KEYS[6] then
  if entry then return {'ok', '', 0, 1, entry, 0} end
  return {'ok', '', 0, 0}
end
return {'ok', '', 0}
"""

# KEYS: flood (a prefix: one counter per flood window), lock (its ":pending" set).
# ARGV: now_ms, flood_max, flood_ms, in_flight ("0": the check settled the login and left no
# in-flight mark). Refused: the login is no longer in flight, so its mark goes; a settled
# login has none, and the oldest mark would then be another login's.
VERIFICATION = """
local now = tonumber(ARGV[1])
local flood_ms = tonumber(ARGV[3])
local bucket = math.floor(now / flood_ms)
local flood = KEYS[1] .. ':' .. bucket
local c = tonumber(redis.call('GET', flood) or '0')
if c >= tonumber(ARGV[2]) then
  if ARGV[4] ~= '0' then redis.call('ZPOPMIN', KEYS[2] .. ':pending') end
  return {'limited', 'flood', (bucket + 1) * flood_ms - now}
end
redis.call('INCR', flood)
if c == 0 then redis.call('PEXPIRE', flood, 2 * flood_ms) end
return {'ok', '', 0}
"""

# KEYS: acct, addr, lock, ulock.  ARGV: now_ms, addr, user, digest, window_ms, threshold,
# base_ms, max_ms, in_flight ("0": the check settled the login and left no in-flight mark)
FAIL = _BACKOFF + """
if ARGV[9] ~= '0' then redis.call('ZPOPMIN', KEYS[3] .. ':pending') end
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[5])
redis.call('ZADD', KEYS[2], 'NX', now, ARGV[3] .. '|' .. ARGV[4])
redis.call('PEXPIRE', KEYS[2], window)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local added = redis.call('ZADD', KEYS[1], 'NX', now, ARGV[2] .. '|' .. ARGV[4])
redis.call('PEXPIRE', KEYS[1], window)
if added == 0 then return 0 end
local threshold, base, max = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local function lock(key, ms)
  local current = tonumber(redis.call('GET', key) or '0')
  if now + ms > current then redis.call('SET', key, now + ms, 'PX', ms + 60000) end
end
local locked = 0
local n = redis.call('ZCARD', KEYS[1])
local ms = backoff(n, threshold, base, max)
if ms > 0 then
  lock(KEYS[3], ms)
  locked = ms
end
local prefix = ARGV[2] .. '|'
local mine = 0
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.sub(member, 1, #prefix) == prefix then mine = mine + 1 end
end
ms = backoff(mine, threshold, base, max)
if ms > 0 then
  lock(KEYS[4], ms)
  locked = math.max(locked, ms)
end
return locked
"""

# KEYS: acct, ulock, lock (its ":pending" counter), fam.  ARGV: now_ms, addr, familiar_ms
SUCCEED = """
redis.call('ZPOPMIN', KEYS[3] .. ':pending')
local prefix = ARGV[2] .. '|'
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.sub(member, 1, #prefix) == prefix then redis.call('ZREM', KEYS[1], member) end
end
redis.call('DEL', KEYS[2])
if tonumber(ARGV[3]) > 0 then
  redis.call('ZADD', KEYS[4], ARGV[1], ARGV[2])
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[3]))
  redis.call('PEXPIRE', KEYS[4], ARGV[3])
end
return 1
"""
