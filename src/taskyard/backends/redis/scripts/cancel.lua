-- Cancel a job (a workflow step's children follow, see _graph.lua). ARGV[4] now, [5] id. Returns {'OK', fields}, {'NOTFOUND'} or {'INVALID', status}.
local id = ARGV[5]
local jk = P .. id
local f = redis.call('HMGET', jk, 's', 'wf')
local status = f[1]
if not status then
  return {'NOTFOUND'}
end
if status == 'scheduled' or status == 'pending' or status == 'blocked' then
  redis.call('ZREM', K_SCHEDULED, id)
  redis.call('ZREM', K_PENDING, id)
  redis.call('ZREM', K_BLOCKED, id)
  finish(id, jk, 'cancelled', ARGV[4])
  after_finish(id, QUEUE, f[2], ARGV[4])
  wake_steps()
elseif status == 'running' then
  redis.call('HSET', jk, 'cr', '1')
elseif status ~= 'cancelled' then
  return {'INVALID', status}
end
return {'OK', redis.call('HGETALL', jk)}
