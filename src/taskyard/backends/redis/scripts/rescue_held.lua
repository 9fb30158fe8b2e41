-- The holder of a running job saw it lost (its child process died): carry out the caller's
-- core.job.rescue_decision, fenced by the token, as rescue.lua does for expired leases.
-- ARGV[4] now (µs), [5] id, [6] token, [7] status, [8] attempt, [9] rescues, [10] error JSON.
-- Returns the job's fields, or nil when the lease is lost.
local id = ARGV[5]
local jk = P .. id
if not owned(jk, ARGV[6]) then
  return nil
end
append_error(jk, ARGV[10])
redis.call('HSET', jk, 'a', ARGV[8], 'rs', ARGV[9])
if ARGV[7] == 'failed' then
  leave_running(id, jk, false)
  finish(id, jk, 'failed', ARGV[4])
else
  leave_running(id, jk, true)
  make_pending(id, jk)
  wake()
end
return redis.call('HGETALL', jk)
