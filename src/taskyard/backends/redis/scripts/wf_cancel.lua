-- Cancel the workflow ARGV[5] (home queue QUEUE) at ARGV[4] (µs): cancelled_at on its header
-- (kept when set), blocked, scheduled and pending steps cancelled, running ones asked to stop
-- (cr). Returns the workflow after (`wf_snapshot`), or false when there is none.
local R = rules()
local now = ARGV[4]
local W = R.wf_base(QUEUE, ARGV[5])
local header = string.sub(W, 1, -2)
if redis.call('EXISTS', header) == 0 then
  return false
end
redis.call('HSETNX', header, 'x', now)
local flat = redis.call('HGETALL', W .. 'steps')
for i = 1, #flat, 2 do
  local id, b = flat[i], R.qbase(flat[i + 1])
  local jk = b .. 'job:' .. id
  local status = redis.call('HGET', jk, 's')
  if status == 'blocked' or status == 'scheduled' or status == 'pending' then
    redis.call('ZREM', b .. status, id)
    redis.call('HSET', jk, 's', 'cancelled', 'f', now)
    redis.call('ZADD', b .. 'done:cancelled', now, id)
  elseif status == 'running' then
    redis.call('HSET', jk, 'cr', '1')
  end
end
return R.wf_snapshot(W)
