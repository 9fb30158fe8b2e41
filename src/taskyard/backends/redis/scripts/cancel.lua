-- Cancel a job. ARGV[4] now, [5] id. Returns {'OK', fields}, {'NOTFOUND'} or {'INVALID', status}.
local id = ARGV[5]
local jk = P .. id
local status = redis.call('HGET', jk, 's')
if not status then
  return {'NOTFOUND'}
end
if status == 'scheduled' or status == 'pending' then
  redis.call('ZREM', K_SCHEDULED, id)
  redis.call('ZREM', K_PENDING, id)
  finish(id, jk, 'cancelled', ARGV[4])
elseif status == 'running' then
  redis.call('HSET', jk, 'cr', '1')
elseif status ~= 'cancelled' then
  return {'INVALID', status}
end
return {'OK', redis.call('HGETALL', jk)}
