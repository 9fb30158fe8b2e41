-- Read-only: up to ARGV[5] running jobs whose lease expired before ARGV[4] (µs, '' = this
-- server's clock). Returns {the time used (µs), {id, fields} per job}.
local now = clock(ARGV[4])
local ids = redis.call('ZRANGEBYSCORE', K_RUNNING, '-inf', '(' .. I(now), 'LIMIT', 0, tonumber(ARGV[5]))
local out = {}
for _, id in ipairs(ids) do
  out[#out + 1] = {id, redis.call('HGETALL', P .. id)}
end
return {I(now), out}
