-- Enqueue in one step on a single Redis server (a script there may touch keys of several hash
-- slots): the directory entry, the unique key and the job itself, atomically, so a batch is
-- stored whole or not at all. KEYS[1] directory hash, KEYS[2] queue set, KEYS[3] unique hash.
-- ARGV[1] the key prefix, ARGV[2] the wake-up channel, ARGV[3] a JSON array with one array
-- per draft: [id, queue, unique key ('' none), status, score, field, value, ...]; or, for a
-- single draft, ARGV[3] = '' and that array's items as ARGV[4], ARGV[5], ... (no JSON).
-- Returns per draft {stored queue, state, holder id, holder queue, 0, fields} where state is
-- 'created', 'exists' (the id was stored: fields are its hash) or 'holder' (an active job
-- holds the unique key: the draft is not written, the holder's id, queue and hash answer it).
-- A key whose holder is finished or gone is taken over. (On one server every enqueue writes
-- key and job in one script, so a holder without a job is never an enqueue in flight.)
local now_ms
local function clock_ms()
  if not now_ms then
    local t = redis.call('TIME')
    now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now_ms
end
local ACTIVE = {scheduled = true, pending = true, running = true}
local prefix, channel = ARGV[1], ARGV[2]
local function job_key(queue, id)
  return queue_base(prefix, queue) .. 'job:' .. id
end
-- The active job holding unique key `ukey` other than `id`, as {id, queue}, or nil.
local function active_holder(ukey, id)
  local cur = redis.call('HGET', KEYS[3], ukey)
  if not cur then
    return nil
  end
  local holder = string.sub(cur, string.find(cur, ':', 1, true) + 1)
  if holder == id then
    return nil
  end
  local hq = redis.call('HGET', KEYS[1], holder)
  if hq and ACTIVE[redis.call('HGET', job_key(hq, holder), 's')] then
    return {holder, hq}
  end
  return nil
end
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
  elseif ukey ~= '' then
    local h = active_holder(ukey, id)
    if h then
      reply = {queue, 'holder', h[1], h[2], 0, redis.call('HGETALL', job_key(h[2], h[1]))}
    else
      redis.call('HSET', KEYS[3], ukey, string.format('%.0f', clock_ms()) .. ':' .. id)
    end
  end
  if not reply then
    if not stored then
      redis.call('HSET', KEYS[1], id, queue)
    end
    local jk = job_key(queue, id)
    if redis.call('EXISTS', jk) == 1 then
      reply = {queue, 'exists', '', '', 0, redis.call('HGETALL', jk)}
    else
      local base = queue_base(prefix, queue)
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
    queues[queue] = true
  end
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
