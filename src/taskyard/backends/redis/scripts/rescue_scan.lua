-- Read-only: up to ARGV[5] running jobs whose lease expired before ARGV[4] (µs), {id, fields}.
local ids = redis.call('ZRANGEBYSCORE', K_RUNNING, '-inf', '(' .. ARGV[4], 'LIMIT', 0, tonumber(ARGV[5]))
local out = {}
for _, id in ipairs(ids) do
  out[#out + 1] = {id, redis.call('HGETALL', P .. id)}
end
return out
