-- Delete finished jobs of status ARGV[4]: all but the newest ARGV[5] ('' = no rule) and/or
-- those finished before ARGV[6] (µs, '' = no rule); at most ARGV[7] per call. Workflow steps
-- (hash field `wf`) are passed over: they go with their workflow (workflows_prune); the
-- oldest entries are read a page at a time, up to 10 pages, so steps at the head of the index
-- do not stop the jobs behind them from being pruned. `keep_last` counts the steps it passes
-- over among the jobs it keeps. Returns the deleted ids.
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
      if not redis.call('HGET', P .. id, 'wf') then
        doomed[#doomed + 1] = id
      end
    end
  end
end
if ARGV[6] ~= '' then
  for page = 0, 9 do
    local ids = redis.call('ZRANGEBYSCORE', key, '-inf', '(' .. ARGV[6], 'LIMIT', page * cap, cap)
    take(ids)
    if #doomed >= cap or #ids < cap then
      break
    end
  end
end
if ARGV[5] ~= '' then
  local extra = redis.call('ZCARD', key) - tonumber(ARGV[5])
  local page = 0
  while extra > page * cap and #doomed < cap and page < 10 do
    take(redis.call('ZRANGE', key, page * cap, math.min(extra, (page + 1) * cap) - 1))
    page = page + 1
  end
end
for _, id in ipairs(doomed) do
  redis.call('ZREM', key, id)
  redis.call('ZREM', K_ALL, id)
  redis.call('DEL', P .. id)
end
return doomed
