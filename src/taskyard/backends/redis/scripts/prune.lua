-- Delete finished jobs of status ARGV[4]: all but the newest ARGV[5] ('' = no rule) and/or
-- those finished before ARGV[6] (µs, '' = no rule); at most ARGV[7] per call.
-- Returns the deleted ids.
local key = K_DONE[ARGV[4]]
local cap = tonumber(ARGV[7])
local doomed = {}
local seen = {}
local function take(list)
  for _, id in ipairs(list) do
    if #doomed >= cap then
      return
    end
    if not seen[id] then
      seen[id] = true
      doomed[#doomed + 1] = id
    end
  end
end
if ARGV[6] ~= '' then
  take(redis.call('ZRANGEBYSCORE', key, '-inf', '(' .. ARGV[6], 'LIMIT', 0, cap))
end
if ARGV[5] ~= '' then
  local extra = redis.call('ZCARD', key) - tonumber(ARGV[5])
  if extra > 0 then
    take(redis.call('ZRANGE', key, 0, math.min(extra, cap) - 1))
  end
end
for _, id in ipairs(doomed) do
  redis.call('ZREM', key, id)
  redis.call('ZREM', K_ALL, id)
  redis.call('DEL', P .. id)
end
return doomed
