-- Newest-first page of one queue's jobs. ARGV[4] cursor id ('' = from the newest), [5] how many
-- to return, [6] status, [7] task, [8] created after, [9] created before (µs; '' = any),
-- [10] search text, lower case ('' = any), [11] how many jobs a search may read in this call.
-- Returns {{id, fields}...} for the matching jobs (at most ARGV[5]) and the id of the last
-- job read when a search stopped at its budget ('' when the queue was read to its end or
-- the page filled up): jobs from that id on were all considered.
local want = tonumber(ARGV[5])
local status, task = ARGV[6], ARGV[7]
local after, before = tonumber(ARGV[8]), tonumber(ARGV[9])
local q = ARGV[10]
local budget = q ~= '' and tonumber(ARGV[11]) or math.huge
local read, stop = 0, ''
local max = ARGV[4] == '' and '+' or ('(' .. ARGV[4])
local out = {}

-- The fields a search looks in (id, task, queue, unique key, payload, errors).
local function found(id, f)
  for _, text in ipairs({id, f[2], QUEUE, f[4], f[5], f[6]}) do
    if text and string.find(string.lower(text), q, 1, true) then
      return true
    end
  end
  return false
end

local function consider(id)
  local f = redis.call('HMGET', P .. id, 's', 't', 'c', 'u', 'p', 'e')
  local ok = f[1]
    and (status == '' or f[1] == status)
    and (task == '' or f[2] == task)
    and (not after or tonumber(f[3]) >= after)
    and (not before or tonumber(f[3]) < before)
    and (q == '' or found(id, f))
  if ok then
    out[#out + 1] = {id, redis.call('HGETALL', P .. id)}
  end
  read = read + 1
  if #out < want and read >= budget then
    stop = id
    return true
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
  return {out, stop}
end

local chunk = 256
while #out < want do
  local ids = redis.call('ZRANGE', K_ALL, max, '-', 'BYLEX', 'REV', 'LIMIT', 0, chunk)
  for _, id in ipairs(ids) do
    if consider(id) then
      break
    end
  end
  if #ids < chunk or stop ~= '' then
    break
  end
  max = '(' .. ids[#ids]
end
return {out, stop}
