-- Cluster-wide: store schedules, first deleting every schedule of an owner when ARGV[2] ~= ''.
-- KEYS[1] names set, KEYS[2] due zset, KEYS[3] declared zset. ARGV[1] key base (`P{g}:`),
-- ARGV[2] owner to replace, then groups of name, doc JSON, last (µs or ''), next (µs or ''),
-- enabled ('1'/'0'), owner (''), declared ('' unless source is "code": confirmed µs, or -1).
local base = ARGV[1]
local function remove(name)
  local key = base .. 'sched:' .. name
  local owner = redis.call('HGET', key, 'owner')
  if owner and owner ~= '' then
    redis.call('SREM', base .. 'sched:owner:' .. owner, name)
  end
  redis.call('DEL', key)
  redis.call('SREM', KEYS[1], name)
  redis.call('ZREM', KEYS[2], name)
  redis.call('ZREM', KEYS[3], name)
end
if ARGV[2] ~= '' then
  for _, name in ipairs(redis.call('SMEMBERS', base .. 'sched:owner:' .. ARGV[2])) do
    remove(name)
  end
end
for i = 3, #ARGV, 7 do
  local name, doc, last, nxt, enabled, owner = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local declared = ARGV[i + 6]
  remove(name)
  local key = base .. 'sched:' .. name
  redis.call('HSET', key, 'doc', doc, 'last', last, 'next', nxt, 'enabled', enabled, 'owner', owner)
  redis.call('SADD', KEYS[1], name)
  if owner ~= '' then
    redis.call('SADD', base .. 'sched:owner:' .. owner, name)
  end
  if enabled == '1' and nxt ~= '' then
    redis.call('ZADD', KEYS[2], nxt, name)
  end
  if declared ~= '' then
    redis.call('ZADD', KEYS[3], declared, name)
  end
end
return 1
