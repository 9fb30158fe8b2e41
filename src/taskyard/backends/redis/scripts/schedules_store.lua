-- Cluster-wide: store schedules, first deleting every schedule of an owner when ARGV[2] ~= ''.
-- KEYS[1] names set, KEYS[2] due zset, KEYS[3] declared zset. ARGV[1] key base (`P{g}:`),
-- ARGV[2] owner to replace, then groups of name, doc JSON, last (µs or ''), next (µs or ''),
-- enabled ('1'/'0'), owner (''), declared ('' unless source is "code": confirmed µs, or -1).
-- Every argument and every key it writes is checked before the first write, so the script
-- stores all the schedules or, answering an error, changes nothing.
local base = ARGV[1]
local function number_or_empty(v)
  return v == '' or tonumber(v) ~= nil
end
local function kind(key, want)
  local t = redis.call('TYPE', key)['ok']
  return t == 'none' or t == want
end
if (#ARGV - 2) % 7 ~= 0 then
  return redis.error_reply('schedules_store: arguments must come in groups of 7')
end
if not kind(KEYS[1], 'set') or not kind(KEYS[2], 'zset') or not kind(KEYS[3], 'zset')
  or (ARGV[2] ~= '' and not kind(owner_key(base, ARGV[2]), 'set')) then
  return redis.error_reply('schedules_store: a schedule index key holds another type')
end
for i = 3, #ARGV, 7 do
  if not (number_or_empty(ARGV[i + 2]) and number_or_empty(ARGV[i + 3]) and number_or_empty(ARGV[i + 6])) then
    return redis.error_reply('schedules_store: last, next and declared must be integers or empty')
  end
  if not kind(sched_key(base, ARGV[i]), 'hash')
    or (ARGV[i + 5] ~= '' and not kind(owner_key(base, ARGV[i + 5]), 'set')) then
    return redis.error_reply('schedules_store: the key of schedule ' .. ARGV[i] .. ' holds another type')
  end
end

local function remove(name)
  local key = sched_key(base, name)
  local owner = redis.call('HGET', key, 'owner')
  if owner and owner ~= '' then
    redis.call('SREM', owner_key(base, owner), name)
  end
  redis.call('DEL', key)
  redis.call('SREM', KEYS[1], name)
  redis.call('ZREM', KEYS[2], name)
  redis.call('ZREM', KEYS[3], name)
end
if ARGV[2] ~= '' then
  for _, name in ipairs(redis.call('SMEMBERS', owner_key(base, ARGV[2]))) do
    remove(name)
  end
end
for i = 3, #ARGV, 7 do
  local name, doc, last, nxt, enabled, owner = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local declared = ARGV[i + 6]
  remove(name)
  local key = sched_key(base, name)
  redis.call('HSET', key, 'doc', doc, 'last', last, 'next', nxt, 'enabled', enabled, 'owner', owner)
  redis.call('SADD', KEYS[1], name)
  if owner ~= '' then
    redis.call('SADD', owner_key(base, owner), name)
  end
  if enabled == '1' and nxt ~= '' then
    redis.call('ZADD', KEYS[2], nxt, name)
  end
  if declared ~= '' then
    redis.call('ZADD', KEYS[3], declared, name)
  end
end
return 1
