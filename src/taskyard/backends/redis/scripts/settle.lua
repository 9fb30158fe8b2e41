-- The one owned write (core.settle): each record whose token still owns its running job moves
-- the job as its kind says. ARGV[4] now (µs), then records of 7 fields: kind, id, token, and
--   completed  result JSON or '', last progress JSON or '' (keep the stored one)
--   failed     error JSON, retry_at (µs) or '' (no retry: failed)
--   snoozed    run_at (µs)
--   cancelled  result JSON
--   released   (nothing)
--   rescued    the caller's core.job.rescue_decision: status, attempt, rescues, error JSON
-- Returns one reply per record: 0 refused (the lease is lost), 1 completed, else the job's
-- fields after the write. A workflow step that finished moves its children (_graph.lua).
local now = ARGV[4]
local KINDS = {completed = 1, failed = 1, snoozed = 1, cancelled = 1, released = 1, rescued = 1}
for i = 5, #ARGV, 7 do
  if not KINDS[ARGV[i]] then
    return redis.error_reply('settle: unknown kind ' .. tostring(ARGV[i]))
  end
end

local out, woke = {}, false
for i = 5, #ARGV, 7 do
  local kind, id = ARGV[i], ARGV[i + 1]
  local x1, x2, x3, x4 = ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6]
  local jk = P .. id
  local f = owned(jk, ARGV[i + 2])
  if not f then
    out[#out + 1] = 0
  elseif kind == 'completed' then
    leave_running(id, jk, false)
    if x1 ~= '' then
      redis.call('HSET', jk, 'r', x1)
    else
      redis.call('HDEL', jk, 'r')
    end
    if x2 ~= '' then
      redis.call('HSET', jk, 'pg', x2)
    end
    finish(id, jk, 'completed', now)
    after_finish(id, QUEUE, f[6], now)
    out[#out + 1] = 1
  else
    if kind == 'failed' then
      leave_running(id, jk, false)
      append_error(jk, x1)
      if x2 == '' then
        finish(id, jk, 'failed', now)
        after_finish(id, QUEUE, f[6], now)
      else
        redis.call('HSET', jk, 's', 'scheduled', 'ra', x2)
        redis.call('ZADD', K_SCHEDULED, x2, id)
      end
    elseif kind == 'snoozed' then
      leave_running(id, jk, false)
      redis.call('HSET', jk, 's', 'scheduled', 'ra', x1, 'ma', (tonumber(f[5]) or 1) + 1)
      redis.call('ZADD', K_SCHEDULED, x1, id)
    elseif kind == 'cancelled' then
      leave_running(id, jk, false)
      redis.call('HSET', jk, 'r', x1)
      finish(id, jk, 'cancelled', now)
      after_finish(id, QUEUE, f[6], now)
    elseif kind == 'released' then
      leave_running(id, jk, true)
      redis.call('HSET', jk, 'a', math.max((tonumber(f[4]) or 0) - 1, 0))
      make_pending(id, jk)
      woke = true
    else -- rescued
      append_error(jk, x4)
      redis.call('HSET', jk, 'a', x2, 'rs', x3)
      if x1 == 'failed' then
        leave_running(id, jk, false)
        finish(id, jk, 'failed', now)
        after_finish(id, QUEUE, f[6], now)
      else
        leave_running(id, jk, true)
        make_pending(id, jk)
        woke = true
      end
    end
    out[#out + 1] = redis.call('HGETALL', jk)
  end
end
if woke then
  wake()
end
wake_steps()
return out
