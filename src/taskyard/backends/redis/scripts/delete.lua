-- Delete the finished jobs among ARGV[4...] (ids); a job in any other status, or unknown,
-- is left as it is. Returns the deleted ids.
local deleted = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local status = redis.call('HGET', P .. id, 's')
  local done = status and K_DONE[status]
  if done then
    redis.call('ZREM', done, id)
    redis.call('ZREM', K_ALL, id)
    redis.call('DEL', P .. id)
    deleted[#deleted + 1] = id
  end
end
return deleted
