-- Expire declarations: delete the code schedules confirmed before now - grace, and set
-- `conf` = now on those never confirmed (their grace starts). KEYS[1] names set, KEYS[2] due
-- zset, KEYS[3] declared zset; ARGV[1] key base, ARGV[2] now (µs, or '' for the server's
-- clock), ARGV[3] grace (µs). The first run after an upgrade indexes the code schedules stored
-- before the declared zset existed (`scheds:indexed` marks it done). Returns the
-- deleted names.
local base = ARGV[1]
local now = ARGV[2]
if now == '' then
  local t = redis.call('TIME')
  now = string.format('%d', tonumber(t[1]) * 1000000 + tonumber(t[2]))
end
local marker = base .. 'scheds:indexed'
if redis.call('EXISTS', marker) == 0 then
  for _, name in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    if not redis.call('ZSCORE', KEYS[3], name) then
      local doc = redis.call('HGET', sched_key(base, name), 'doc')
      if doc and is_code(doc) then
        redis.call('ZADD', KEYS[3], -1, name)
      end
    end
  end
  redis.call('SET', marker, '1')
end
for _, name in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], -1, -1)) do
  redis.call('HSET', sched_key(base, name), 'conf', now)
  redis.call('ZADD', KEYS[3], now, name)
end
local cutoff = string.format('%d', tonumber(now) - tonumber(ARGV[3]))
local gone = {}
for _, name in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], 0, '(' .. cutoff)) do
  local key = sched_key(base, name)
  local owner = redis.call('HGET', key, 'owner')
  if owner and owner ~= '' then
    redis.call('SREM', owner_key(base, owner), name)
  end
  if redis.call('DEL', key) == 1 then
    gone[#gone + 1] = name
  end
  redis.call('SREM', KEYS[1], name)
  redis.call('ZREM', KEYS[2], name)
  redis.call('ZREM', KEYS[3], name)
end
return gone
