-- Hand a running job back at shutdown: -> pending, attempt - 1. ARGV[5] id, [6] token.
-- Returns 1, or 0 when the lease was already lost (ignored).
local id = ARGV[5]
local jk = P .. id
local f = owned(jk, ARGV[6])
if not f then
  return 0
end
leave_running(id, jk, true)
redis.call('HSET', jk, 'a', math.max((tonumber(f[4]) or 0) - 1, 0))
make_pending(id, jk)
wake()
return 1
