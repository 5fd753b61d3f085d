-- The lockout window of one account, decided atomically. The transitions are
-- exactly those of LockoutState in the actors crate (policy/lockout.rs).
-- KEYS[1] the account's hash; ARGV: op ('reserve'|'failure'|'success'|'lock'), now (ms), max, lockout (ms), [lock: until (ms)]
-- Returns: reserve {1, attempt} allowed | {0, retry ms} locked | {2, 0} pending;
--          failure {1, until ms} locked by this failure | {0, failures} counted;
--          success {1, 0}; lock {0, retry ms}.
local key = KEYS[1]
local op = ARGV[1]
if op == 'success' then
  redis.call('DEL', key)
  return {1, 0}
end
local now = tonumber(ARGV[2])
local max = tonumber(ARGV[3])
local lock = tonumber(ARGV[4])
local h = redis.call('HMGET', key, 'a', 'f', 'w', 'l')
local a = tonumber(h[1]) or 0
local f = tonumber(h[2]) or 0
local w = tonumber(h[3])
local l = tonumber(h[4])

local function save()
  redis.call('DEL', key)
  local fields = {'a', string.format('%d', a), 'f', string.format('%d', f)}
  if w then table.insert(fields, 'w'); table.insert(fields, string.format('%d', w)) end
  if l then table.insert(fields, 'l'); table.insert(fields, string.format('%d', l)) end
  redis.call('HSET', key, unpack(fields))
  redis.call('PEXPIRE', key, 2 * lock)
end

local function expire()
  if l and l <= now then
    a, f, w, l = 0, 0, nil, nil
  elseif (not l) and w and now >= w + lock then
    a, f, w = 0, 0, nil
  end
end

if op == 'lock' then
  -- A lock known to the database but not here (Redis lost its data).
  a, f, w, l = max, max, now, tonumber(ARGV[5])
  save()
  return {0, l - now}
end

if op == 'reserve' then
  if l and l > now then
    return {0, l - now}
  end
  expire()
  if a >= max then
    -- No lock in force, so fewer than max failures: every attempt of the
    -- window is held by a check still in flight. Pending: nothing changes.
    return {2, 0}
  end
  a = a + 1
  if not w then w = now end
  save()
  return {1, a}
elseif op == 'failure' then
  expire()
  if not w then w = now end
  f = f + 1
  if f == max then
    local fresh = now + lock
    if l and l > fresh then fresh = l end
    l = fresh
    save()
    return {1, l}
  end
  save()
  return {0, f}
end
return redis.error_reply('unknown op')
