-- Resume the workflow ARGV[5] (home queue QUEUE) at ARGV[4] (µs): clear cancelled_at, then, in
-- step order, retry every failed or cancelled step with no failed edge into it (`step_retry`).
-- Returns the workflow after (`wf_snapshot`), or false when there is none.
local now = ARGV[4]
local W = wf_base(QUEUE, ARGV[5])
local header = string.sub(W, 1, -2)
if redis.call('EXISTS', header) == 0 then
  return false
end
redis.call('HDEL', header, 'x')
local queues, ids = {}, {}
local flat = redis.call('HGETALL', W .. 'steps')
for i = 1, #flat, 2 do
  ids[#ids + 1] = flat[i]
  queues[flat[i]] = flat[i + 1]
end
table.sort(ids)
for _, id in ipairs(ids) do
  local f = redis.call('HMGET', qbase(queues[id]) .. 'job:' .. id, 's', 'wx')
  if (f[1] == 'failed' or f[1] == 'cancelled') and (tonumber(f[2]) or 0) == 0 then
    step_retry(id, queues[id], f[1], now)
  end
end
wake_steps()
return wf_snapshot(W)
