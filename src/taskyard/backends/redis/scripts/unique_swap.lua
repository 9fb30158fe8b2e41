-- Compare-and-set a unique key's holder. KEYS[1] directory hash, KEYS[3] unique hash (KEYS[2]
-- unused, kept for a uniform call). ARGV[1] key, [2] expected holder id ('' = none), [3] new id.
-- Returns {1} when the new id now holds the key, else {0, holder id, holder queue, age ms}.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cur = redis.call('HGET', KEYS[3], ARGV[1])
local holder = ''
local sep
if cur then
  sep = string.find(cur, ':', 1, true)
  holder = string.sub(cur, sep + 1)
end
if holder == ARGV[2] or holder == ARGV[3] then
  redis.call('HSET', KEYS[3], ARGV[1], string.format('%.0f', now_ms) .. ':' .. ARGV[3])
  return {1}
end
return {0, holder, redis.call('HGET', KEYS[1], holder) or '', now_ms - tonumber(string.sub(cur, 1, sep - 1))}
