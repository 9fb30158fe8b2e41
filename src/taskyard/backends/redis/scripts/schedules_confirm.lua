-- Confirm declarations: `confirmed_at` (hash field `conf`, µs) = now on the schedules among
-- ARGV[3..] whose source is "code". KEYS[1] declared zset (code schedule name -> confirmed µs,
-- -1 when never confirmed); ARGV[1] key base, ARGV[2] now (µs, or '' for the server's clock).
-- A code schedule stored before the zset existed is recognised by its document and indexed.
-- Returns how many were confirmed.
local base = ARGV[1]
local now = ARGV[2]
if now == '' then
  local t = redis.call('TIME')
  now = string.format('%d', tonumber(t[1]) * 1000000 + tonumber(t[2]))
end
local n = 0
for i = 3, #ARGV do
  local name = ARGV[i]
  local key = sched_key(base, name)
  local code = redis.call('ZSCORE', KEYS[1], name)
  if not code then
    local doc = redis.call('HGET', key, 'doc')
    code = doc and is_code(doc)
  end
  if code and redis.call('EXISTS', key) == 1 then
    redis.call('HSET', key, 'conf', now)
    redis.call('ZADD', KEYS[1], now, name)
    n = n + 1
  end
end
return n
