-- Newest-first page of one queue's jobs. ARGV[4] cursor id ('' = from the newest), [5] how many
-- to return, [6] status, [7] task, [8] created after, [9] created before (µs; '' = any).
-- Returns {id, fields} for the matching jobs, at most ARGV[5].
local want = tonumber(ARGV[5])
local status, task = ARGV[6], ARGV[7]
local after, before = tonumber(ARGV[8]), tonumber(ARGV[9])
local max = ARGV[4] == '' and '+' or ('(' .. ARGV[4])
local out = {}

local function consider(id)
  local f = redis.call('HMGET', P .. id, 's', 't', 'c')
  local ok = f[1]
    and (status == '' or f[1] == status)
    and (task == '' or f[2] == task)
    and (not after or tonumber(f[3]) >= after)
    and (not before or tonumber(f[3]) < before)
  if ok then
    out[#out + 1] = {id, redis.call('HGETALL', P .. id)}
  end
  return #out >= want
end

-- A status much rarer than the queue's whole history is read from its own index (sorted
-- here by id) instead of scanning every job newest-first.
local index = ({scheduled = K_SCHEDULED, pending = K_PENDING, running = K_RUNNING})[status] or K_DONE[status]
if index and redis.call('ZCARD', index) * 8 < redis.call('ZCARD', K_ALL) then
  local ids = redis.call('ZRANGE', index, 0, -1)
  table.sort(ids, function(a, b) return a > b end)
  for _, id in ipairs(ids) do
    if (ARGV[4] == '' or id < ARGV[4]) and consider(id) then
      break
    end
  end
  return out
end

local chunk = 256
while #out < want do
  local ids = redis.call('ZRANGE', K_ALL, max, '-', 'BYLEX', 'REV', 'LIMIT', 0, chunk)
  for _, id in ipairs(ids) do
    if consider(id) then
      break
    end
  end
  if #ids < chunk then
    break
  end
  max = '(' .. ids[#ids]
end
return out
