-- Record a failed attempt. ARGV[4] now, [5] id, [6] token, [7] error JSON, [8] retry_at (µs)
-- or '' for no retry. Returns the job's fields, or nil when the lease is lost.
local id = ARGV[5]
local jk = P .. id
local f = owned(jk, ARGV[6])
if not f then
  return nil
end
leave_running(id, jk, false)
append_error(jk, ARGV[7])
if ARGV[8] == '' then
  finish(id, jk, 'failed', ARGV[4])
else
  redis.call('HSET', jk, 's', 'scheduled', 'ra', ARGV[8])
  redis.call('ZADD', K_SCHEDULED, ARGV[8], id)
end
return redis.call('HGETALL', jk)
