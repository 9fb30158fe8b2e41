-- Schema 1 -> 2 (names in keys, see keys.py): move the keys of the names whose key changed
-- and rebuild the schedule indexes that a schema-1 name could have clobbered. Idempotent, and
-- one script, so it is applied whole or not at all. KEYS[1] schedule names set, KEYS[2] due
-- zset, KEYS[3] queue set, KEYS[4] schema version; ARGV[1] key base (`P{g}:`), ARGV[2] the key
-- prefix, ARGV[3] the new version, then the per-queue key names (keys.QUEUE_KEY_NAMES).
-- Returns {schedules moved, queues moved}.
local base, prefix = ARGV[1], ARGV[2]
local function is_type(key, want)
  return redis.call('TYPE', key)['ok'] == want
end
local function move(old, new)
  if old ~= new and redis.call('EXISTS', old) == 1 and redis.call('EXISTS', new) == 0 then
    redis.call('RENAME', old, new)
    return 1
  end
  return 0
end

-- Schedules: `due` and `owner:*` used to land on the due zset and the owner sets (a failed
-- store could leave its hash there); names starting with '~' are escaped now.
local names = is_type(KEYS[1], 'set') and redis.call('SMEMBERS', KEYS[1]) or {}
-- Passes repeat while they make progress: a name's new key may still be another name's old
-- key (`due` -> `~647565`, itself a name that moves on), and each move frees one.
local schedules, moved = 0, 1
while moved > 0 do
  moved = 0
  for _, name in ipairs(names) do
    local old = base .. 'sched:' .. name
    local new = sched_key(base, name)
    if old ~= new and is_type(old, 'hash') then
      local doc = redis.call('HGET', old, 'doc')
      local ok, decoded = pcall(cjson.decode, doc or '')
      if ok and type(decoded) == 'table' and decoded['name'] == name then
        moved = moved + move(old, new)
      end
    end
  end
  schedules = schedules + moved
end
-- Rebuild the due zset and every owner set from the schedule hashes.
local due, owners = {}, {}
for _, name in ipairs(names) do
  local key = sched_key(base, name)
  if is_type(key, 'hash') then
    local f = redis.call('HMGET', key, 'enabled', 'next', 'owner')
    if f[1] == '1' and f[2] and tonumber(f[2]) then
      due[#due + 1] = f[2]
      due[#due + 1] = name
    end
    if f[3] and f[3] ~= '' then
      owners[f[3]] = owners[f[3]] or {}
      table.insert(owners[f[3]], name)
    end
  end
end
redis.call('DEL', KEYS[2])
for i = 1, #due, 2000 do
  redis.call('ZADD', KEYS[2], unpack(due, i, math.min(i + 1999, #due)))
end
for owner, members in pairs(owners) do
  local key = owner_key(base, owner)
  if not is_type(key, 'hash') then  -- a hash there is a schedule whose document disagrees
    redis.call('DEL', key)
    for i = 1, #members, 1000 do
      redis.call('SADD', key, unpack(members, i, math.min(i + 999, #members)))
    end
  end
end

-- Queues: a name with a brace (or a leading '~') now has an escaped hash tag.
local queue_names = is_type(KEYS[3], 'set') and redis.call('SMEMBERS', KEYS[3]) or {}
local touched, queues = {}, 0
moved = 1
while moved > 0 do
  moved = 0
  for _, queue in ipairs(queue_names) do
    local old = prefix .. '{q:' .. queue .. '}:'
    local new = queue_base(prefix, queue)
    if old ~= new then
      local n = 0
      if is_type(old .. 'all', 'zset') then
        for _, id in ipairs(redis.call('ZRANGE', old .. 'all', 0, -1)) do
          n = n + move(old .. 'job:' .. id, new .. 'job:' .. id)
        end
      end
      for i = 4, #ARGV do
        n = n + move(old .. ARGV[i], new .. ARGV[i])
      end
      if n > 0 and not touched[queue] then
        touched[queue] = true
        queues = queues + 1
      end
      moved = moved + n
    end
  end
end
redis.call('SET', KEYS[4], ARGV[3])
return {schedules, queues}
