-- Enqueue in one step on a single Redis server (a script there may touch keys of several hash
-- slots): the directory entry and unique key of reserve.lua, then the job itself as in
-- enqueue.lua, atomically. KEYS[1] directory hash, KEYS[2] queue set, KEYS[3] unique hash.
-- ARGV[1] the key prefix, ARGV[2] the wake-up channel, ARGV[3] a JSON array with one array
-- per draft: [id, queue, unique key ('' none), status, score, field, value, ...]; or, for a
-- single draft, ARGV[3] = '' and that array's items as ARGV[4], ARGV[5], ... (no JSON).
-- Returns per draft {stored queue, state, holder id, holder queue, holder age ms, fields}
-- where state is 'created', 'exists' (the id was stored: fields are its hash) or 'held' (the
-- key belongs to another job, which the caller checks; the draft is not written).
local now_ms
local function clock_ms()
  if not now_ms then
    local t = redis.call('TIME')
    now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now_ms
end
local prefix, channel = ARGV[1], ARGV[2]
local out = {}
local queues = {}
local woken = {}
local drafts
if ARGV[3] == '' then
  drafts = {{unpack(ARGV, 4)}}
else
  drafts = cjson.decode(ARGV[3])
end
for _, d in ipairs(drafts) do
  local id, queue, ukey, status, score = d[1], d[2], d[3], d[4], d[5]
  local stored = redis.call('HGET', KEYS[1], id)
  local reply
  if stored then
    queue = stored
  else
    redis.call('HSET', KEYS[1], id, queue)
    if ukey ~= '' then
      local cur = redis.call('HGET', KEYS[3], ukey)
      local sep = cur and string.find(cur, ':', 1, true)
      if cur and string.sub(cur, sep + 1) ~= id then
        local holder = string.sub(cur, sep + 1)
        local age = clock_ms() - tonumber(string.sub(cur, 1, sep - 1))
        reply = {queue, 'held', holder, redis.call('HGET', KEYS[1], holder) or '', age}
      else
        redis.call('HSET', KEYS[3], ukey, string.format('%.0f', clock_ms()) .. ':' .. id)
      end
    end
  end
  if not reply then
    local base = prefix .. '{q:' .. queue .. '}:'
    local jk = base .. 'job:' .. id
    if redis.call('EXISTS', jk) == 1 then
      reply = {queue, 'exists', '', '', 0, redis.call('HGETALL', jk)}
    else
      redis.call('HSET', jk, unpack(d, 6))
      if status == 'scheduled' then
        redis.call('ZADD', base .. 'scheduled', score, id)
      else
        redis.call('ZADD', base .. 'pending', score, id)
        woken[queue] = true
      end
      redis.call('ZADD', base .. 'all', 0, id)
      reply = {queue, 'created'}
    end
  end
  queues[queue] = true
  out[#out + 1] = reply
end
for queue in pairs(queues) do
  if redis.call('SISMEMBER', KEYS[2], queue) == 0 then
    redis.call('SADD', KEYS[2], queue)
  end
end
for queue in pairs(woken) do
  redis.call('PUBLISH', channel, queue)
end
return out
