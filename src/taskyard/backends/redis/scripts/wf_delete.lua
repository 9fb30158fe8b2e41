-- Delete the workflow ARGV[5] (home queue QUEUE) when no step is left to run and its last step
-- finished (or, with no step, it was created) before ARGV[4] (µs): its header, steps (job
-- hashes and their places in their queues' indexes) and edges. Returns the deleted step ids,
-- or false when it is not due (or gone).
local R = rules()
local cut = tonumber(ARGV[4])
local W = R.wf_base(QUEUE, ARGV[5])
local header = string.sub(W, 1, -2)
local created = redis.call('HGET', header, 'c')
if not created then
  return false
end
local last = tonumber(created)
local flat = redis.call('HGETALL', W .. 'steps')
for i = 1, #flat, 2 do
  local fields = redis.call('HMGET', R.qbase(flat[i + 1]) .. 'job:' .. flat[i], 's', 'f')
  local status = fields[1]
  if status and not K_DONE[status] then
    return false
  end
  if fields[2] and tonumber(fields[2]) > last then
    last = tonumber(fields[2])
  end
end
if last >= cut then
  return false
end
local ids = {}
for i = 1, #flat, 2 do
  local id, b = flat[i], R.qbase(flat[i + 1])
  local status = redis.call('HGET', b .. 'job:' .. id, 's')
  if status then
    redis.call('ZREM', b .. 'done:' .. status, id)
  end
  redis.call('ZREM', b .. 'all', id)
  redis.call('DEL', b .. 'job:' .. id, W .. 'kids:' .. id, W .. 'pars:' .. id)
  ids[#ids + 1] = id
end
redis.call('DEL', header, W .. 'steps', W .. 'order', W .. 'edges')
return ids
