-- Compare-and-set a schedule's fire bookkeeping. KEYS[1] its hash, KEYS[2] the due zset;
-- ARGV[1] name, [2] fire time (µs), [3] next fire (µs or ''). Returns 1 when recorded, else 0.
local f = redis.call('HMGET', KEYS[1], 'last', 'enabled')
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if f[1] and f[1] ~= '' and tonumber(f[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], 'last', ARGV[2], 'next', ARGV[3])
if f[2] == '1' and ARGV[3] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
else
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return 1
