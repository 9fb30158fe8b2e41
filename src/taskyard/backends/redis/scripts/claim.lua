-- Claim up to `limit` due jobs of one queue, honouring pause, concurrency and the rate window.
-- ARGV[4] now (µs, '' = this server's clock), [5] limit, [6] worker id, [7] lease (µs), [8] token base, [9] promote cap,
-- [10] score bound ('' = none): claim only jobs whose pending score is <= it (the best job of
-- the worker's next queue), so a caller merging several queues keeps priority order.
-- [11] skip cap ('' = no task filter), [12...] the task names to claim: pending jobs of other
-- tasks are looked past (never removed or changed), at most `skip cap` of them per claim, so a
-- queue full of jobs nobody here knows costs a bounded scan.
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
local rest = false
local attempts = {} -- id -> attempt, read on the way by the filtered walk
if ARGV[11] ~= '' then
  -- Walk the queue in claim order, taking jobs of the wanted tasks and looking past others.
  -- The first page is exactly the budget (the usual case: every job is wanted); scores are
  -- read only when a bound needs them.
  local wanted = {}
  for k = 12, #ARGV do
    wanted[ARGV[k]] = true
  end
  local bound = ARGV[10] ~= '' and tonumber(ARGV[10]) or nil
  local step = bound and 2 or 1
  local skips, seen, size = tonumber(ARGV[11]), 0, budget
  local taken, done = {}, false
  while not done do
    local page
    if bound then
      page = redis.call('ZRANGE', K_PENDING, seen, seen + size - 1, 'WITHSCORES')
    else
      page = redis.call('ZRANGE', K_PENDING, seen, seen + size - 1)
    end
    if #page == 0 then
      break
    end
    seen = seen + #page / step
    for k = 1, #page, step do
      local id = page[k]
      local f = redis.call('HMGET', P .. id, 't', 'a')
      if wanted[f[1]] then
        if bound and tonumber(page[k + 1]) > bound then
          rest = page[k + 1]
          done = true
          break
        end
        taken[#taken + 1] = id
        attempts[id] = tonumber(f[2]) or 0
        if #taken >= budget then
          done = true
          break
        end
      else
        skips = skips - 1
        if skips < 0 then
          done = true
          break
        end
      end
    end
    size = math.min(size * 2 + 16, 256)
  end
  if #taken > 0 then
    redis.call('ZREM', K_PENDING, unpack(taken))
  end
  popped = {}
  for _, id in ipairs(taken) do
    popped[#popped + 1] = id
    popped[#popped + 1] = false -- the score, unused below
  end
elseif ARGV[10] == '' then
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
  local attempt = (attempts[id] or tonumber(redis.call('HGET', jk, 'a')) or 0) + 1
  redis.call('HSET', jk, 's', 'running', 'a', attempt, 'st', I(now), 'w', ARGV[6],
    'lt', ARGV[8] .. tostring(#out + 1), 'le', expires)
  redis.call('HDEL', jk, 'cr')
  redis.call('ZADD', K_RUNNING, expires, id)
  out[#out + 1] = {id, redis.call('HGETALL', jk)}
end
if window and #out > 0 then
  redis.call('HSET', K_RATE, 'w', I(window), 'n', count + #out)
end
if ARGV[10] ~= '' and ARGV[11] == '' and #out < budget then
  local top = redis.call('ZRANGE', K_PENDING, 0, 0, 'WITHSCORES')
  if top[2] then
    rest = top[2]
  end
end
return {out, rest}
