-- Acquire or renew a leadership lease. KEYS[1] the lease hash; ARGV[1] holder, [2] now (µs;
-- empty: the server's clock, so a process whose clock is off cannot take a live lease),
-- [3] ttl (µs), [4] ttl (ms, for PEXPIRE). Returns 1 when ARGV[1] holds it, else 0.
local now = tonumber(ARGV[2])
if ARGV[2] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local cur = redis.call('HMGET', KEYS[1], 'h', 'e', 'x')
local live = cur[1] and tonumber(cur[3]) > now
local expires = string.format('%.0f', now + tonumber(ARGV[3]))
if live and cur[1] == ARGV[1] then
  redis.call('HSET', KEYS[1], 'x', expires)
elseif not live then
  redis.call('HSET', KEYS[1], 'h', ARGV[1], 'e', string.format('%.0f', now), 'x', expires)
else
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
