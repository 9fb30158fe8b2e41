-- RetryLater: running -> scheduled at ARGV[7] (µs), max_attempts + 1. ARGV[5] id, [6] token.
-- Returns the job's fields, or nil when the lease is lost.
local id = ARGV[5]
local jk = P .. id
local f = owned(jk, ARGV[6])
if not f then
  return nil
end
leave_running(id, jk, false)
redis.call('HSET', jk, 's', 'scheduled', 'ra', ARGV[7], 'ma', (tonumber(f[5]) or 1) + 1)
redis.call('ZADD', K_SCHEDULED, ARGV[7], id)
return redis.call('HGETALL', jk)
