-- Cluster-wide: delete schedules by name (ARGV[2..]) or, when ARGV[2] is '', every schedule of
-- owner ARGV[3]. KEYS[1] names set, KEYS[2] due zset, KEYS[3] declared zset, ARGV[1] key base.
-- Returns how many.
local base = ARGV[1]
local names
if ARGV[2] == '' then
  names = redis.call('SMEMBERS', owner_key(base, ARGV[3]))
else
  names = {}
  for i = 2, #ARGV do
    names[#names + 1] = ARGV[i]
  end
end
local n = 0
for _, name in ipairs(names) do
  local key = sched_key(base, name)
  local owner = redis.call('HGET', key, 'owner')
  if owner and owner ~= '' then
    redis.call('SREM', owner_key(base, owner), name)
  end
  n = n + redis.call('DEL', key)
  redis.call('SREM', KEYS[1], name)
  redis.call('ZREM', KEYS[2], name)
  redis.call('ZREM', KEYS[3], name)
end
return n
