-- Resume the workflow ARGV[5] (home queue QUEUE) at ARGV[4] (µs): clear cancelled_at, then, in
-- step order, retry every failed or cancelled step with no failed edge into it (`step_retry`).
-- Returns the workflow after (`wf_snapshot`), or false when there is none.
local R = rules()
local now = ARGV[4]
local W = R.wf_base(QUEUE, ARGV[5])
local header = string.sub(W, 1, -2)
if redis.call('EXISTS', header) == 0 then
  return false
end
redis.call('HDEL', header, 'x')
local queues = {}
local flat = redis.call('HGETALL', W .. 'steps')
for i = 1, #flat, 2 do
  queues[flat[i]] = flat[i + 1]
end
for _, id in ipairs(redis.call('LRANGE', W .. 'order', 0, -1)) do
  local f = redis.call('HMGET', R.qbase(queues[id]) .. 'job:' .. id, 's', 'wx')
  if (f[1] == 'failed' or f[1] == 'cancelled') and (tonumber(f[2]) or 0) == 0 then
    R.step_retry(id, queues[id], f[1], now)
  end
end
wake_steps()
return R.wf_snapshot(W)
