-- running -> completed for each (id, token, result JSON or '', last progress JSON or '' = keep
-- the stored one) still owned; ARGV[4] now (µs). Returns the ids refused (lease lost).
local now = ARGV[4]
local lost = {}
for i = 5, #ARGV, 4 do
  local id, token, result, progress = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local jk = P .. id
  local f = owned(jk, token)
  if not f then
    lost[#lost + 1] = id
  else
    leave_running(id, jk, false)
    if result ~= '' then
      redis.call('HSET', jk, 'r', result)
    else
      redis.call('HDEL', jk, 'r')
    end
    if progress ~= '' then
      redis.call('HSET', jk, 'pg', progress)
    end
    finish(id, jk, 'completed', now)
  end
end
return lost
