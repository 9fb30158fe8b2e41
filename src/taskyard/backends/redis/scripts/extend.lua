-- Heartbeat. ARGV[4] now (µs, '' = this server's clock), [5] lease (µs), then (id, token)
-- pairs. Returns {lost ids, ids whose cancellation was requested}.
local expires = I(clock(ARGV[4]) + tonumber(ARGV[5]))
local lost, cancel = {}, {}
for i = 6, #ARGV, 2 do
  local id = ARGV[i]
  local jk = P .. id
  if not owned(jk, ARGV[i + 1]) then
    lost[#lost + 1] = id
  else
    redis.call('HSET', jk, 'le', expires)
    redis.call('ZADD', K_RUNNING, expires, id)
    if redis.call('HGET', jk, 'cr') == '1' then
      cancel[#cancel + 1] = id
    end
  end
end
return {lost, cancel}
