-- Rescue expired leases as the caller decided (core.job.rescue_decision), fenced by the token
-- seen by rescue_scan and by the lease still being expired (a heartbeat in between wins).
-- ARGV[4] now (µs), then (id, token, status, attempt, rescues, error JSON) sextuples.
-- Returns {rescued ids, failed ids}.
local now = tonumber(ARGV[4])
local rescued, failed = {}, {}
for i = 5, #ARGV, 6 do
  local id = ARGV[i]
  local jk = P .. id
  local le = tonumber(redis.call('HGET', jk, 'le'))
  local f = owned(jk, ARGV[i + 1])
  if f and le and le < now then
    append_error(jk, ARGV[i + 5])
    redis.call('HSET', jk, 'a', ARGV[i + 3], 'rs', ARGV[i + 4])
    if ARGV[i + 2] == 'failed' then
      leave_running(id, jk, false)
      finish(id, jk, 'failed', ARGV[4])
      after_finish(id, QUEUE, f[6], ARGV[4])
      failed[#failed + 1] = id
    else
      leave_running(id, jk, true)
      make_pending(id, jk)
      rescued[#rescued + 1] = id
    end
  end
end
if #rescued > 0 then
  wake()
end
wake_steps()
return {rescued, failed}
