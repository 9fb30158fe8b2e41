-- running -> cancelled once the handler stopped. ARGV[4] now, [5] id, [6] token, [7] result JSON.
-- Returns the job's fields, or nil when the lease is lost.
local id = ARGV[5]
local jk = P .. id
local f = owned(jk, ARGV[6])
if not f then
  return nil
end
leave_running(id, jk, false)
redis.call('HSET', jk, 'r', ARGV[7])
finish(id, jk, 'cancelled', ARGV[4])
return redis.call('HGETALL', jk)
