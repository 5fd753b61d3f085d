-- Session liveness in Redis, shared by every instance (each instance decides
-- most requests from its own memory and asks here once per revalidation
-- interval per session; see security/sessions.rs).
-- KEYS[1] the session's hash: la (last activity ms), ex (absolute end ms),
--   rv (revoked), ck (when the database last confirmed the session, ms)
-- ARGV: op ('touch'|'seed'|'peek'|'revoke'|'bump'), now (ms), idle (ms),
--   ttl (ms), la (ms, seed and bump), ex (ms, seed), recheck (ms, touch)
-- Returns {code, la, ex}. touch: 1 live (this activity recorded), 0 unknown
-- here (ask the database), 2 live here but not confirmed by the database for
-- `recheck` ms (ask it; nothing recorded), -1 revoked, -2 idle too long,
-- -3 past its absolute end. seed: 1 (or -1 when revoked meanwhile).
-- peek: 1 with la (0 unknown, -1 revoked). revoke: -1.
-- bump: activity an instance saw in memory, written in batches: la becomes
-- the later of the two (1), nothing when the session is unknown here (0) or
-- revoked (-1).
-- `ttl` renews on every use: a session in use stays here, which is why touch
-- sends it back to the database every `recheck` ms.
local key = KEYS[1]
local op = ARGV[1]
local now = tonumber(ARGV[2])
local idle = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
-- A live session seen at `t`: its last activity moves forward to `t` (never
-- back) and its ttl renews.
local function live(la, ex, t)
  if t > la then
    redis.call('HSET', key, 'la', string.format('%d', t))
    la = t
  end
  redis.call('PEXPIRE', key, ttl)
  return {1, la, ex}
end
if op == 'revoke' then
  redis.call('HSET', key, 'rv', '1')
  redis.call('PEXPIRE', key, ttl)
  return {-1, 0, 0}
end
if op == 'seed' then
  if redis.call('HEXISTS', key, 'rv') == 1 then return {-1, 0, 0} end
  local la = tonumber(ARGV[5])
  local old = tonumber(redis.call('HGET', key, 'la'))
  if old and old > la then la = old end
  redis.call('HSET', key, 'la', string.format('%d', la), 'ex', ARGV[6],
    'ck', string.format('%d', now))
  redis.call('PEXPIRE', key, ttl)
  return {1, la, tonumber(ARGV[6])}
end
local v = redis.call('HMGET', key, 'la', 'ex', 'rv', 'ck')
if v[3] then return {-1, 0, 0} end
if not v[1] then return {0, 0, 0} end
local la = tonumber(v[1])
local ex = tonumber(v[2]) or 0
if op == 'peek' then return {1, la, ex} end
if op == 'bump' then return live(la, ex, tonumber(ARGV[5])) end
if ex > 0 and now >= ex then return {-3, la, ex} end
if now - la >= idle then return {-2, la, ex} end
if now - (tonumber(v[4]) or 0) >= tonumber(ARGV[7]) then return {2, la, ex} end
return live(la, ex, now)
