-- Delete the finished jobs among ARGV[4...] (ids); a job in any other status, or unknown,
-- is left as it is, and so is a workflow step (hash field `wf`): it goes with its workflow
-- (workflows_prune). Returns the deleted ids.
local deleted = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local fields = redis.call('HMGET', P .. id, 's', 'wf')
  local status = fields[1]
  local done = status and K_DONE[status]
  if done and not fields[2] then
    redis.call('ZREM', done, id)
    redis.call('ZREM', K_ALL, id)
    redis.call('DEL', P .. id)
    deleted[#deleted + 1] = id
  end
end
return deleted
