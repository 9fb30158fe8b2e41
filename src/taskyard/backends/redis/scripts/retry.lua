-- Manual retry. ARGV[4] now (µs), [5] id, or '' for the failed jobs among the JSON list of ids
-- in ARGV[6] (the caller took their unique keys first).
-- One id: {'OK', fields}, {'NOTFOUND'}, {'INVALID', status} or, for a workflow step whose
-- parent failed it, {'PARENT', parent id, step name}. Several: {'N', count}.
local now = ARGV[4]

local function retry_one(id, jk, status)
  redis.call('ZREM', K_DONE[status], id)
  redis.call('HSET', jk, 'a', 0, 'ra', now)
  redis.call('HDEL', jk, 'f', 'r', 'pg', 'cr', 'w', 'lt', 'le', 'rs')
  make_pending(id, jk)
end

if ARGV[5] ~= '' then
  local id = ARGV[5]
  local jk = P .. id
  local f = redis.call('HMGET', jk, 's', 'wf', 'sn')
  local status = f[1]
  if not status then
    return {'NOTFOUND'}
  end
  if status ~= 'failed' and status ~= 'cancelled' then
    return {'INVALID', status}
  end
  if f[2] then
    local parent = rules().step_retry(id, QUEUE, status, now)
    if parent then
      return {'PARENT', parent, f[3] or ''}
    end
    wake_steps()
  else
    retry_one(id, jk, status)
    wake()
  end
  return {'OK', redis.call('HGETALL', jk)}
end
local n = 0
for _, id in ipairs(cjson.decode(ARGV[6])) do
  local f = redis.call('HMGET', P .. id, 's', 'wf')
  if f[1] == 'failed' and not f[2] then
    retry_one(id, P .. id, 'failed')
    n = n + 1
  elseif f[1] == 'failed' and not rules().step_retry(id, QUEUE, 'failed', now) then
    n = n + 1
  end
end
if n > 0 then
  wake()
end
wake_steps()
return {'N', n}
