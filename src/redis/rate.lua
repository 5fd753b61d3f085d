-- One fixed rate window: count this request, and say how many came before.
-- KEYS[1] the window's counter; ARGV: window length (ms)
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
end
return n
