-- Record progress of a running job. ARGV[5] id, [6] token, [7] progress JSON. Returns 1 or 0 (lost).
local jk = P .. ARGV[5]
if not owned(jk, ARGV[6]) then
  return 0
end
redis.call('HSET', jk, 'pg', ARGV[7])
return 1
