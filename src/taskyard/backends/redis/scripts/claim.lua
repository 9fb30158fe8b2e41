-- Claim up to `limit` due jobs of one queue, honouring pause, concurrency and the rate window.
-- ARGV[4] now (µs, '' = this server's clock), [5] limit, [6] worker id, [7] lease (µs), [8] token base, [9] promote cap,
-- [10] score bound ('' = none): claim only jobs whose pending score is <= it (the best job of
-- the worker's next queue), so a caller merging several queues keeps priority order.
-- Returns {{id, fields} per claimed job, best first; the best remaining score when the bound
-- (not the limit, pause, concurrency or rate) stopped the claim, else false}.
local now = clock(ARGV[4])
local settings = redis.call('HMGET', K_SETTINGS, 'paused', 'conc', 'rl', 'rpu')
if settings[1] == '1' then
  return {{}, false}
end
promote(I(now), tonumber(ARGV[9]))
local budget = tonumber(ARGV[5])
if settings[2] then
  budget = math.min(budget, tonumber(settings[2]) - redis.call('ZCARD', K_RUNNING))
end
local window, count = nil, 0
if settings[3] then
  local period = tonumber(settings[4])
  window = now - (now % period)
  local rate = redis.call('HMGET', K_RATE, 'w', 'n')
  if rate[1] and tonumber(rate[1]) == window then
    count = tonumber(rate[2]) or 0
  end
  budget = math.min(budget, tonumber(settings[3]) - count)
end
if budget <= 0 then
  return {{}, false}
end
local popped
if ARGV[10] == '' then
  popped = redis.call('ZPOPMIN', K_PENDING, budget)
else
  popped = redis.call('ZRANGEBYSCORE', K_PENDING, '-inf', ARGV[10], 'WITHSCORES', 'LIMIT', 0, budget)
  for k = 1, #popped, 2 do
    redis.call('ZREM', K_PENDING, popped[k])
  end
end
local expires = I(now + tonumber(ARGV[7]))
local out = {}
for k = 1, #popped, 2 do
  local id = popped[k]
  local jk = P .. id
  local attempt = (tonumber(redis.call('HGET', jk, 'a')) or 0) + 1
  redis.call('HSET', jk, 's', 'running', 'a', attempt, 'st', I(now), 'w', ARGV[6],
    'lt', ARGV[8] .. tostring(#out + 1), 'le', expires)
  redis.call('HDEL', jk, 'cr')
  redis.call('ZADD', K_RUNNING, expires, id)
  out[#out + 1] = {id, redis.call('HGETALL', jk)}
end
if window and #out > 0 then
  redis.call('HSET', K_RATE, 'w', I(window), 'n', count + #out)
end
local rest = false
if ARGV[10] ~= '' and #out < budget then
  local top = redis.call('ZRANGE', K_PENDING, 0, 0, 'WITHSCORES')
  if top[2] then
    rest = top[2]
  end
end
return {out, rest}
