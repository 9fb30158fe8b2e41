-- Remove workers whose last heartbeat is before ARGV[1] (µs). KEYS[1] workers hash,
-- KEYS[2] heartbeat zset. Returns how many.
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])
for _, id in ipairs(stale) do
  redis.call('HDEL', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
end
return #stale
