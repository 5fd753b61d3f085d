-- Session liveness on every authenticated request, one round trip.
-- KEYS[1] the session's hash: la (last activity ms), ex (absolute end ms), rv (revoked)
-- ARGV: op ('touch'|'seed'|'revoke'), now (ms), idle (ms), ttl (ms), [seed: la, ex]
-- touch returns 1 live (activity recorded), 0 unknown here (ask the database),
-- -1 revoked, -2 idle too long, -3 past its absolute end.
local key = KEYS[1]
local op = ARGV[1]
local now = tonumber(ARGV[2])
local idle = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
if op == 'revoke' then
  redis.call('HSET', key, 'rv', '1')
  redis.call('PEXPIRE', key, ttl)
  return -1
end
if op == 'seed' then
  if redis.call('HEXISTS', key, 'rv') == 1 then return -1 end
  local la = tonumber(ARGV[5])
  local old = tonumber(redis.call('HGET', key, 'la'))
  if old and old > la then la = old end
  redis.call('HSET', key, 'la', string.format('%d', la), 'ex', ARGV[6])
  redis.call('PEXPIRE', key, ttl)
  return 1
end
local v = redis.call('HMGET', key, 'la', 'ex', 'rv')
if v[3] then return -1 end
if not v[1] then return 0 end
local la = tonumber(v[1])
local ex = tonumber(v[2])
if ex and now >= ex then return -3 end
if now - la >= idle then return -2 end
if now > la then redis.call('HSET', key, 'la', string.format('%d', now)) end
redis.call('PEXPIRE', key, ttl)
return 1
