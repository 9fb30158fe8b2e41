-- Manual retry. ARGV[4] now (µs), [5] id, or '' for the failed jobs among the JSON list of ids
-- in ARGV[6] (the caller took their unique keys first).
-- One id: {'OK', fields}, {'NOTFOUND'} or {'INVALID', status}. Several: {'N', count}.
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
  local status = redis.call('HGET', jk, 's')
  if not status then
    return {'NOTFOUND'}
  end
  if status ~= 'failed' and status ~= 'cancelled' then
    return {'INVALID', status}
  end
  retry_one(id, jk, status)
  wake()
  return {'OK', redis.call('HGETALL', jk)}
end
local n = 0
for _, id in ipairs(cjson.decode(ARGV[6])) do
  if redis.call('HGET', P .. id, 's') == 'failed' then
    retry_one(id, P .. id, 'failed')
    n = n + 1
  end
end
if n > 0 then
  wake()
end
return {'N', n}
