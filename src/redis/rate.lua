-- A sliding-window log: at most `limit` requests in any `window` ms, so no
-- window edge lets twice the limit through (as a fixed window would).
-- KEYS[1] a sorted set of this client's admitted request times (ms)
-- ARGV: now (ms), window (ms), limit, a member unique to this request
-- Returns {admitted 0|1, requests in the window, time of the oldest (ms)}.
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local admitted = 0
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  count = count + 1
  admitted = 1
end
redis.call('PEXPIRE', KEYS[1], window)
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local oldest_ms = now
if oldest[2] then
  oldest_ms = tonumber(oldest[2])
end
return {admitted, count, oldest_ms}
