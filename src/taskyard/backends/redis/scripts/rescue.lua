-- Rescue expired leases, fenced by the token seen by rescue_scan. ARGV[4] now (µs), then
-- (id, token, error JSON) triples. Returns {rescued ids, failed ids}.
local now = tonumber(ARGV[4])
local rescued, failed = {}, {}
for i = 5, #ARGV, 3 do
  local id = ARGV[i]
  local jk = P .. id
  local f = owned(jk, ARGV[i + 1])
  local le = tonumber(redis.call('HGET', jk, 'le'))
  if f and le and le < now then
    append_error(jk, ARGV[i + 2])
    if (tonumber(f[4]) or 0) >= (tonumber(f[5]) or 1) then
      leave_running(id, jk, false)
      finish(id, jk, 'failed', ARGV[4])
      failed[#failed + 1] = id
    else
      leave_running(id, jk, true)
      make_pending(id, jk)
      rescued[#rescued + 1] = id
    end
  end
end
if #rescued > 0 then
  wake()
end
return {rescued, failed}
