-- Cluster-wide first step of an enqueue: record id -> queue in the directory and take each
-- draft's unique key. KEYS[1] directory hash, KEYS[2] queue set, KEYS[3] unique hash.
-- ARGV[1] a JSON array [id, queue, unique key ('' none), ...].
-- Returns per draft {stored queue, state, holder id, holder queue, holder age ms} where state is
-- 'known' (the id existed: the queue's script answers it), 'go' (create it) or 'held' (the
-- key belongs to another job, which the caller checks).
local now_ms = (function()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end)()
local args = cjson.decode(ARGV[1])
local out = {}
local queues = {}
for i = 1, #args, 3 do
  local id, queue, ukey = args[i], args[i + 1], args[i + 2]
  local stored = redis.call('HGET', KEYS[1], id)
  local state = 'go'
  local holder, holder_queue, age = '', '', 0
  if stored then
    state = 'known'
  else
    redis.call('HSET', KEYS[1], id, queue)
    stored = queue
    if ukey ~= '' then
      local cur = redis.call('HGET', KEYS[3], ukey)
      local sep = cur and string.find(cur, ':', 1, true)
      if cur and string.sub(cur, sep + 1) ~= id then
        state = 'held'
        holder = string.sub(cur, sep + 1)
        holder_queue = redis.call('HGET', KEYS[1], holder) or ''
        age = now_ms - tonumber(string.sub(cur, 1, sep - 1))
      else
        redis.call('HSET', KEYS[3], ukey, string.format('%.0f', now_ms) .. ':' .. id)
      end
    end
  end
  queues[stored] = true
  out[#out + 1] = {stored, state, holder, holder_queue, age}
end
for queue in pairs(queues) do
  redis.call('SADD', KEYS[2], queue)
end
return out
