-- Heartbeat. ARGV[4] new lease expiry (µs), then (id, token) pairs.
-- Returns {lost ids, ids whose cancellation was requested}.
local lost, cancel = {}, {}
for i = 5, #ARGV, 2 do
  local id = ARGV[i]
  local jk = P .. id
  if not owned(jk, ARGV[i + 1]) then
    lost[#lost + 1] = id
  else
    redis.call('HSET', jk, 'le', ARGV[4])
    redis.call('ZADD', K_RUNNING, ARGV[4], id)
    if redis.call('HGET', jk, 'cr') == '1' then
      cancel[#cancel + 1] = id
    end
  end
end
return {lost, cancel}
